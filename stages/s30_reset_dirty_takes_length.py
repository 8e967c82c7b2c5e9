"""Stage 30: memory: make cpu_physical_memory_reset_dirty() take a length parameter

Upstream: a2f4d5bef (cputlb.c, exec.c, include/exec/memory-internal.h, memory.c).

Kind: change of signature (end -> length), rounding moved down a level.

``cpu_physical_memory_reset_dirty(start, length, client)`` no longer rounds
``start`` down and ``end`` up before computing the length: it returns at
once when ``length == 0`` and hands the raw ``start, length`` to
``cpu_physical_memory_clear_dirty_range`` (which rounds for itself) and to
``tlb_reset_dirty_range_all(start, length)``, which now computes the aligned
``end`` and ``start`` itself.  Callers pass a length: tlb_protect_code,
memory_region_test_and_clear_dirty, memory_region_reset_dirty.

Behaviour is NOT kept in three places (all registered):

- a zero-length reset at an unaligned address used to round to the whole
  page, clear it and, under TCG, make its TLB entry NOTDIRTY; now it does
  neither;
- ``tlb_reset_dirty_range_all`` rounds ``start`` down but passes the caller's
  unrounded ``length`` to ``cpu_tlb_reset_dirty_all``, so for an unaligned
  range the TLB reset covers ``[start & TARGET_PAGE_MASK, +length)`` and can
  miss the last page whose dirty bit was cleared: that page's TLB entry
  stays dirty and later writes to it are not trapped.  Upstream still passes
  the unrounded length in QEMU 4.1 (2019) and in a recent tree;
- ``tlb_reset_dirty_range_all`` (static in exec.c) called with an unaligned
  ``start`` now resets the TLB from the start of that page, not from the
  address: no caller of stage 29 passed one, so only a direct call shows it.
"""

from . import s29_is_dirty_to_is_clean as parent
from .common import TARGET_PAGE_ALIGN, TARGET_PAGE_MASK, TARGET_PAGE_SIZE, check_region, dirty_pages


class Stage(parent.Stage):
    STAGE = 30
    TITLE = "memory: make cpu_physical_memory_reset_dirty() take a length parameter"
    UPSTREAM = "a2f4d5bef"
    KIND = "change of signature"

    def tlb_reset_dirty_range_all(self, start: int, length: int) -> None:
        end = TARGET_PAGE_ALIGN(start + length)
        start &= TARGET_PAGE_MASK
        block = self.machine.qemu_get_ram_block(start)
        assert block is self.machine.qemu_get_ram_block(end - 1), \
            "assert(block == qemu_get_ram_block(end - 1))"
        start1 = block.host + (start - block.offset)
        self.machine.cpu_tlb_reset_dirty_all(start1, length)

    def cpu_physical_memory_reset_dirty(self, start: int, length: int, client: int) -> None:
        """Note: start and end must be within the same ram block."""
        if length == 0:
            return
        self.cpu_physical_memory_clear_dirty_range(start, length, client)
        if self.machine.tcg_enabled():
            self.tlb_reset_dirty_range_all(start, length)

    def tlb_protect_code(self, ram_addr: int) -> None:
        self.cpu_physical_memory_reset_dirty(ram_addr, TARGET_PAGE_SIZE, self.DIRTY_MEMORY_CODE)

    def memory_region_test_and_clear_dirty(self, mr, addr: int, size: int, client: int) -> bool:
        assert mr.terminates, "assert(mr->terminates)"
        check_region(dirty_pages(self.ram_list), mr, addr, size,
                     "memory_region_test_and_clear_dirty", client=client,
                     check_client=self._check_client)
        ret = self.cpu_physical_memory_get_dirty(mr.ram_addr + addr, size, client)
        if ret:
            self.cpu_physical_memory_reset_dirty(mr.ram_addr + addr, size, client)
        return ret

    def memory_region_reset_dirty(self, mr, addr: int, size: int, client: int) -> None:
        assert mr.terminates, "assert(mr->terminates)"
        check_region(dirty_pages(self.ram_list), mr, addr, size, "memory_region_reset_dirty",
                     client=client, check_client=self._check_client)
        self.cpu_physical_memory_reset_dirty(mr.ram_addr + addr, size, client)
