"""Stage 22: memory: unfold cpu_physical_memory_set_dirty_flag()

Upstream: c1427a3f8 (include/exec/memory-internal.h).

Kind: inline (in one caller; the function stays for the others).

``cpu_physical_memory_set_dirty_range`` calls ``set_bit`` on the three
bitmaps directly instead of going through
``cpu_physical_memory_set_dirty_flag``.  Behaviour is kept: the same bits
are set; only the (constant, always valid) client assertions go.
"""

from . import s21_unfold_set_dirty as parent
from .bitmap import set_bit
from .common import (
    TARGET_PAGE_ALIGN, TARGET_PAGE_BITS, TARGET_PAGE_MASK, TARGET_PAGE_SIZE, check_range,
    dirty_pages,
)


class Stage(parent.Stage):
    STAGE = 22
    TITLE = "memory: unfold cpu_physical_memory_set_dirty_flag()"
    UPSTREAM = "c1427a3f8"
    KIND = "inline"

    def cpu_physical_memory_set_dirty_range(self, start: int, length: int) -> None:
        check_range(dirty_pages(self.ram_list), start, length,
                    "cpu_physical_memory_set_dirty_range")
        end = TARGET_PAGE_ALIGN(start + length)
        start &= TARGET_PAGE_MASK
        dirty_memory = self.ram_list.dirty_memory
        addr = start
        while addr < end:
            set_bit(addr >> TARGET_PAGE_BITS, dirty_memory[self.DIRTY_MEMORY_MIGRATION])
            set_bit(addr >> TARGET_PAGE_BITS, dirty_memory[self.DIRTY_MEMORY_VGA])
            set_bit(addr >> TARGET_PAGE_BITS, dirty_memory[self.DIRTY_MEMORY_CODE])
            addr += TARGET_PAGE_SIZE
        self.machine.xen_modified_memory(addr, length)
