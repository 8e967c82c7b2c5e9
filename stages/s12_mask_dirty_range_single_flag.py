"""Stage 12: memory: cpu_physical_memory_mask_dirty_range() always clear a single flag

Upstream: 521591929, its first half (series.md, note C: upstream merged
this v2 patch and stage 13's into one commit; the split is a reconstruction).

Kind: rename (a helper and three parameters: flags -> flag).

``cpu_physical_memory_mask_dirty_range``, ``cpu_physical_memory_reset_dirty``
and their helper take one flag instead of a set: the helper
``cpu_physical_memory_clear_dirty_flags`` becomes
``cpu_physical_memory_clear_dirty_flag(addr, dirty_flag)`` and the parameters
are named ``dirty_flag``.  Behaviour is kept: the code is the same, and every
caller (tlb_protect_code, memory.c) already passed a single flag.  The
conformance vectors run stage 11's code for this stage.
"""

import numpy as np

from . import s11_set_dirty_range_all_flags as parent
from .common import (
    TARGET_PAGE_ALIGN, TARGET_PAGE_MASK, TARGET_PAGE_SIZE, check_end, check_page, check_range,
    dirty_pages, removed,
)


class Stage(parent.Stage):
    STAGE = 12
    TITLE = "memory: cpu_physical_memory_mask_dirty_range() always clear a single flag"
    UPSTREAM = "521591929 (first half)"
    KIND = "rename (reconstruction of half a commit)"

    DECLARED_IN = {
        **{k: v for k, v in parent.Stage.DECLARED_IN.items()
           if k != "cpu_physical_memory_clear_dirty_flags"},
        "cpu_physical_memory_clear_dirty_flag": "include/exec/memory-internal.h",
    }

    cpu_physical_memory_clear_dirty_flags = removed("renamed cpu_physical_memory_clear_dirty_flag")

    def cpu_physical_memory_clear_dirty_flag(self, addr: int, dirty_flag: int) -> int:
        mask = ~dirty_flag
        phys_dirty = self.ram_list.phys_dirty
        page = check_page(phys_dirty, addr, "cpu_physical_memory_clear_dirty_flag")
        phys_dirty[page] &= np.uint8(mask & 0xFF)
        return int(phys_dirty[page])

    def cpu_physical_memory_mask_dirty_range(self, start: int, length: int, dirty_flag: int) -> None:
        check_range(dirty_pages(self.ram_list), start, length,
                    "cpu_physical_memory_mask_dirty_range")
        end = TARGET_PAGE_ALIGN(start + length)
        start &= TARGET_PAGE_MASK
        addr = start
        while addr < end:
            self.cpu_physical_memory_clear_dirty_flag(addr, dirty_flag)
            addr += TARGET_PAGE_SIZE

    def cpu_physical_memory_reset_dirty(self, start: int, end: int, dirty_flag: int) -> None:
        """Note: start and end must be within the same ram block."""
        check_end(dirty_pages(self.ram_list), start, end, "cpu_physical_memory_reset_dirty")
        start &= TARGET_PAGE_MASK
        end = TARGET_PAGE_ALIGN(end)
        length = end - start
        if length == 0:
            return
        self.cpu_physical_memory_mask_dirty_range(start, length, dirty_flag)
        if self.machine.tcg_enabled():
            self.tlb_reset_dirty_range_all(start, end, length)
