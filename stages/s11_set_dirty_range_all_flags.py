"""Stage 11: memory: cpu_physical_memory_set_dirty_range() allways dirty all flags

Upstream: 75218e7f2 (exec.c, include/exec/memory-internal.h, memory.c).

Kind: removal of a parameter and of a function.

``cpu_physical_memory_set_dirty_range(start, length)`` loses its flags
parameter (both callers passed all: ``0xff`` and ``-1``) and sets each page
with ``cpu_physical_memory_set_dirty`` (the three client flags).
``cpu_physical_memory_set_dirty_flags`` has no user left and is removed.
Per client the behaviour is kept; the representation changes: new blocks
and ``memory_region_set_dirty`` no longer set the unused bits, so from here
a flag byte holds only client bits.  Xen still hears of the range's end
instead of its start.
"""

from . import s10_set_single_dirty_flags as parent
from .common import (
    TARGET_PAGE_ALIGN, TARGET_PAGE_BITS, TARGET_PAGE_MASK, TARGET_PAGE_SIZE, check_range,
    check_region, dirty_pages, removed,
)
from .s00_before_the_series import _g_realloc


class Stage(parent.Stage):
    STAGE = 11
    TITLE = "memory: cpu_physical_memory_set_dirty_range() allways dirty all flags"
    UPSTREAM = "75218e7f2"
    KIND = "removal of a parameter and of a function"

    DECLARED_IN = {k: v for k, v in parent.Stage.DECLARED_IN.items() if k != "cpu_physical_memory_set_dirty_flags"}

    cpu_physical_memory_set_dirty_flags = removed("every caller sets single flags")

    def cpu_physical_memory_set_dirty_range(self, start: int, length: int) -> None:
        check_range(dirty_pages(self.ram_list), start, length,
                    "cpu_physical_memory_set_dirty_range")
        end = TARGET_PAGE_ALIGN(start + length)
        start &= TARGET_PAGE_MASK
        addr = start
        while addr < end:
            self.cpu_physical_memory_set_dirty(addr)
            addr += TARGET_PAGE_SIZE
        self.machine.xen_modified_memory(addr, length)

    def qemu_ram_alloc_from_ptr(self, size: int) -> int:
        new_block = self.machine.ram_block_add(size)
        size = new_block.length
        self.ram_list.phys_dirty = _g_realloc(
            self.ram_list.phys_dirty, self.machine.last_ram_offset() >> TARGET_PAGE_BITS)
        first = new_block.offset >> TARGET_PAGE_BITS
        self.ram_list.phys_dirty[first:first + (size >> TARGET_PAGE_BITS)] = 0
        self.cpu_physical_memory_set_dirty_range(new_block.offset, size)
        return new_block.offset

    def memory_region_set_dirty(self, mr, addr: int, size: int) -> None:
        assert mr.terminates, "assert(mr->terminates)"
        check_region(dirty_pages(self.ram_list), mr, addr, size, "memory_region_set_dirty")
        self.cpu_physical_memory_set_dirty_range(mr.ram_addr + addr, size)
