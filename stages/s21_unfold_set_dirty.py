"""Stage 21: memory: unfold cpu_physical_memory_set_dirty() in its only user

Upstream: 4f13bb80a (include/exec/memory-internal.h).

Kind: inline.

``cpu_physical_memory_set_dirty`` is removed; ``cpu_physical_memory_set_dirty_range``
calls ``cpu_physical_memory_set_dirty_flag`` for MIGRATION, VGA and CODE on
each page itself.  Behaviour is kept: same calls, same order.
"""

from . import s20_unfold_clear_dirty_flag as parent
from .common import (
    TARGET_PAGE_ALIGN, TARGET_PAGE_MASK, TARGET_PAGE_SIZE, check_range, dirty_pages, removed,
)


class Stage(parent.Stage):
    STAGE = 21
    TITLE = "memory: unfold cpu_physical_memory_set_dirty() in its only user"
    UPSTREAM = "4f13bb80a"
    KIND = "inline"

    DECLARED_IN = {k: v for k, v in parent.Stage.DECLARED_IN.items() if k != "cpu_physical_memory_set_dirty"}

    cpu_physical_memory_set_dirty = removed("unfolded into cpu_physical_memory_set_dirty_range")

    def cpu_physical_memory_set_dirty_range(self, start: int, length: int) -> None:
        check_range(dirty_pages(self.ram_list), start, length,
                    "cpu_physical_memory_set_dirty_range")
        end = TARGET_PAGE_ALIGN(start + length)
        start &= TARGET_PAGE_MASK
        addr = start
        while addr < end:
            self.cpu_physical_memory_set_dirty_flag(addr, self.DIRTY_MEMORY_MIGRATION)
            self.cpu_physical_memory_set_dirty_flag(addr, self.DIRTY_MEMORY_VGA)
            self.cpu_physical_memory_set_dirty_flag(addr, self.DIRTY_MEMORY_CODE)
            addr += TARGET_PAGE_SIZE
        self.machine.xen_modified_memory(addr, length)
