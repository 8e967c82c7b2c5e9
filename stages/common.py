"""What every stage module shares: QEMU's page constants, ``removed`` and
the argument checks.

``removed`` marks a function that a commit deleted: from that stage on,
asking the stage for it raises ``AttributeError`` (so ``hasattr`` is false),
just as the C name no longer links.

The ``check_*`` functions refuse, before anything is written, the arguments
with which C would read or write outside the dirty state, and clients the
dirty state cannot hold; tests/test_misuse.py calls every stage's API with
them.  ``check_client`` is C's own assertion (stage 15 on).
``check_flag_client`` is this model's choice for the stages before it, where
C checked nothing: see its docstring for what C did with such a client.

Each check names the function that makes it.  A range function that passes
its client on to code which checks it (C's assertion, or the shift into the
flag byte) checks the client first, by ``check_range``'s ``client``
argument, so that a call wrong in both its client and its range fails on
the client, as the C does: there the client is met before any memory is.
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


# Argument checks.  C takes ram_addr_t (unsigned 64-bit) addresses and
# lengths and reads or writes the dirty state wherever they point; Python
# would index a numpy array with them, where a negative index quietly means
# "from the end" and a slice past the end is quietly cut short.  These refuse
# what C would read or write out of bounds, before anything is written, with
# a message that names the argument: ValueError for a value no unsigned
# 64-bit argument can have, IndexError for one past the dirty state.

RAM_ADDR_MAX = (1 << 64) - 1


def dirty_pages(ram_list) -> int:
    """How many pages the dirty state has room for: its flag bytes
    (``phys_dirty``, stages 00-18), or the bits of its bitmaps
    (``dirty_memory``, stage 19 on; a whole number of 64-bit words)."""
    if hasattr(ram_list, "dirty_memory"):
        return ram_list.dirty_memory[0].size * 64
    return len(ram_list.phys_dirty)


def check_unsigned(value: int, what: str, name: str) -> None:
    """A value a ram_addr_t (or hwaddr) argument can hold."""
    if value < 0:
        raise ValueError(f"{what}: {name} {value:#x} is negative (C's argument is unsigned)")
    if value > RAM_ADDR_MAX:
        raise ValueError(f"{what}: {name} {value:#x} does not fit in 64 bits")


def check_addr(npages: int, addr: int, what: str, name: str = "addr") -> int:
    """The page of ``addr``, refusing a negative address and one past the
    ``npages`` pages of dirty state."""
    check_unsigned(addr, what, name)
    page = addr >> TARGET_PAGE_BITS
    if page >= npages:
        raise IndexError(f"{what}: {name} {addr:#x} is past the end of the dirty memory ({npages} pages)")
    return page


def check_page(array, addr: int, what: str, name: str = "addr") -> int:
    """The page index of ``addr`` in a per-page array (check_addr on its length)."""
    return check_addr(len(array), addr, what, name)


# Clients 0-2 pass the client check of every stage (the flag byte's 0-7 before
# stage 15, client < DIRTY_MEMORY_NUM from it): the range checks call a
# stage's own check only for another client, which keeps the page walks fast.
ANY_STAGE_CLIENTS = 3


def check_range(npages: int, start: int, length: int, what: str,
                start_name: str = "start", length_name: str = "length",
                client: int | None = None, check_client=None) -> None:
    """The pages ``[start >> TARGET_PAGE_BITS, TARGET_PAGE_ALIGN(start +
    length) >> TARGET_PAGE_BITS)`` that a range function walks must lie in the
    dirty state; ``start + length`` must not wrap round 2**64.  An empty walk
    (an aligned start and a length of 0) touches nothing and passes anywhere.

    ``check_client(client, what)``, given, runs first unless ``length`` is 0:
    the stage's check of a client that the range function hands on to code
    which checks it before it touches memory.  A length of 0 is left to the
    C's own checks (an assertion at the top of a function the call reaches),
    since the walk it makes is empty or, from an unaligned start, one page."""
    if check_client is not None and length and not 0 <= client < ANY_STAGE_CLIENTS:
        check_client(client, what)
    check_unsigned(start, what, start_name)
    check_unsigned(length, what, length_name)
    if start + length > RAM_ADDR_MAX + 1:
        raise ValueError(f"{what}: {start_name} {start:#x} + {length_name} {length:#x} "
                         f"overflows a 64-bit ram_addr_t")
    _check_walk(npages, start, length, what, (start_name, start), (length_name, length))


def _check_walk(npages: int, start: int, length: int, what: str,
                start_arg: tuple[str, int], length_arg: tuple[str, int]) -> None:
    """The page walk of ``[start, start + length)`` must stay inside the
    ``npages`` pages; else the argument that takes it out is named with the
    value the caller passed: ``start_arg`` when the walk starts past the end,
    ``length_arg`` otherwise."""
    first, end = start >> TARGET_PAGE_BITS, TARGET_PAGE_ALIGN(start + length) >> TARGET_PAGE_BITS
    if first < end and end > npages:
        name, value = start_arg if first >= npages else length_arg
        raise IndexError(f"{what}: {name} {value:#x} takes the range [{start:#x}, {start + length:#x}) "
                         f"past the end of the dirty memory ({npages} pages)")


def check_end(npages: int, start: int, end: int, what: str,
              client: int | None = None, check_client=None) -> None:
    """check_range for the ``(start, end)`` of cpu_physical_memory_reset_dirty
    before stage 30: an ``end`` before ``start`` is refused (C's unsigned
    ``end - start`` would be a length of nearly 2**64).  ``client`` and
    ``check_client`` as for check_range, the length being ``end - start``."""
    if check_client is not None and end != start and not 0 <= client < ANY_STAGE_CLIENTS:
        check_client(client, what)
    check_unsigned(start, what, "start")
    check_unsigned(end, what, "end")
    if end < start:
        raise ValueError(f"{what}: end {end:#x} is before start {start:#x}")
    _check_walk(npages, start, end - start, what, ("start", start), ("end", end))


def check_region(npages: int, mr, addr: int, size: int, what: str,
                 addr_name: str = "addr", size_name: str = "size",
                 client: int | None = None, check_client=None) -> None:
    """check_range for the ``(addr, size)`` of a memory_region_* call, which
    are relative to ``mr``: the walk is from ``mr->ram_addr + addr``.
    ``client`` and ``check_client`` as for check_range."""
    if check_client is not None and size and not 0 <= client < ANY_STAGE_CLIENTS:
        check_client(client, what)
    check_unsigned(addr, what, addr_name)
    check_unsigned(size, what, size_name)
    start = mr.ram_addr + addr
    if start > RAM_ADDR_MAX:
        raise ValueError(f"{what}: mr->ram_addr + {addr_name} {addr:#x} overflows a 64-bit ram_addr_t")
    if start + size > RAM_ADDR_MAX + 1:
        raise ValueError(f"{what}: mr->ram_addr + {addr_name} {addr:#x} + {size_name} {size:#x} "
                         f"overflows a 64-bit ram_addr_t")
    _check_walk(npages, start, size, what, (addr_name, addr), (size_name, size))


def check_section(npages: int, section, what: str, bitmap=None, pages: int = 0) -> None:
    """check_region for the part of guest RAM a MemoryRegionSection covers,
    and, given the KVM log ``bitmap``, that it has the words ``pages`` bits need."""
    check_region(npages, section.mr, section.offset_within_region, section.size, what,
                 "section.offset_within_region", "section.size")
    if bitmap is not None and len(bitmap) < (pages + 63) // 64:
        raise IndexError(f"{what}: bitmap has {len(bitmap)} words, {pages} pages need {(pages + 63) // 64}")


def check_lebitmap(npages: int, bitmap, start: int, pages: int, hpratio: int, what: str) -> None:
    """cpu_physical_memory_set_dirty_lebitmap(bitmap, start, pages): ``pages``
    host pages of ``hpratio`` target pages from ``start``, read from the
    ``BITS_TO_LONGS(pages)`` first words of ``bitmap``."""
    check_unsigned(pages, what, "pages")
    check_unsigned(start, what, "start")
    length = pages * hpratio * TARGET_PAGE_SIZE
    if start + length > RAM_ADDR_MAX + 1:
        raise ValueError(f"{what}: start {start:#x} + pages {pages:#x} host pages overflows a 64-bit ram_addr_t")
    _check_walk(npages, start, length, what, ("start", start), ("pages", pages))
    words = (pages + 63) // 64
    if len(bitmap) < words:
        raise IndexError(f"{what}: bitmap has {len(bitmap)} words, {pages} pages need {words}")


def check_client(client: int, num: int, what: str) -> None:
    """C's ``assert(client < DIRTY_MEMORY_NUM)``, with the condition in the
    message; ``client`` is unsigned in C, so a negative one fails it too."""
    if not 0 <= client < num:
        raise AssertionError(f"{what}: assert(client < DIRTY_MEMORY_NUM) failed for client {client}")


def check_flag_client(client: int, what: str) -> None:
    """A client shifted into a flag of the byte, ``1 << client`` (memory.c
    up to stage 12, the flag accessors at stages 13 and 14; C checks nothing
    before stage 15).  Clients 0-7 name a bit of the byte: the three clients
    and the spare bits, all accepted.  In C ``client`` is unsigned and ``1``
    an int: a client from 8 to 30 is defined and touches no bit of the byte
    (the uint8_t store, or the mask of the byte, keeps only its low eight
    bits), so it reads as clean and clears and sets nothing; from 31 on (and
    a negative client, a huge unsigned one) the shift of a 32-bit int is
    undefined.  Refusing every client past the byte, with ValueError, is this
    model's choice: such a client can only be a mistake, which C answered
    with silence or worse."""
    if not 0 <= client < 8:
        raise ValueError(f"{what}: client {client} names no bit of the flag byte (1 << client)")
