"""What every stage module shares: QEMU's page constants and ``removed``.

``removed`` marks a function that a commit deleted: from that stage on,
asking the stage for it raises ``AttributeError`` (so ``hasattr`` is false),
just as the C name no longer links.
"""

from __future__ import annotations

TARGET_PAGE_BITS = 12
TARGET_PAGE_SIZE = 1 << TARGET_PAGE_BITS
TARGET_PAGE_MASK = ~(TARGET_PAGE_SIZE - 1)


def TARGET_PAGE_ALIGN(addr: int) -> int:
    return (addr + TARGET_PAGE_SIZE - 1) & TARGET_PAGE_MASK


class removed:
    """Descriptor for a name a commit removed; reading it raises AttributeError."""

    def __init__(self, why: str = ""):
        self.why = why

    def __set_name__(self, owner, name):
        self.name = name
        self.stage = getattr(owner, "STAGE", None)

    def __get__(self, obj, owner=None):
        raise AttributeError(
            f"{self.name} was removed at stage {self.stage:02d}" + (f" ({self.why})" if self.why else "")
        )


def check_page(array, addr: int, what: str) -> int:
    """The page index of ``addr`` in a per-page array, refusing what C would
    read or write out of bounds (and numpy would wrap round when negative)."""
    page = addr >> TARGET_PAGE_BITS
    if addr < 0 or page >= len(array):
        raise IndexError(f"{what}: ram_addr {addr:#x} is outside the dirty memory of {len(array)} pages")
    return page


def check_client(client: int, num: int, what: str) -> None:
    """C's ``assert(client < DIRTY_MEMORY_NUM)``, with the condition in the message."""
    if not client < num:
        raise AssertionError(f"{what}: assert(client < DIRTY_MEMORY_NUM) failed for client {client}")
