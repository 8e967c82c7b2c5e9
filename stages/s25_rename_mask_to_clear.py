"""Stage 25: memory: s/mask/clear/ cpu_physical_memory_mask_dirty_range

Upstream: ace694ccc (exec.c, include/exec/memory-internal.h).

Kind: rename.

``cpu_physical_memory_mask_dirty_range`` is renamed
``cpu_physical_memory_clear_dirty_range`` (the counterpart of
``cpu_physical_memory_set_dirty_range``), and
``cpu_physical_memory_reset_dirty`` calls it by its new name.  Behaviour is
kept: same body.
"""

from . import s24_get_dirty_returns_bool as parent
from .common import TARGET_PAGE_ALIGN, TARGET_PAGE_MASK, check_end, dirty_pages, removed


class Stage(parent.Stage):
    STAGE = 25
    TITLE = "memory: s/mask/clear/ cpu_physical_memory_mask_dirty_range"
    UPSTREAM = "ace694ccc"
    KIND = "rename"

    DECLARED_IN = {
        **{k: v for k, v in parent.Stage.DECLARED_IN.items()
           if k != "cpu_physical_memory_mask_dirty_range"},
        "cpu_physical_memory_clear_dirty_range": "include/exec/memory-internal.h",
    }

    cpu_physical_memory_clear_dirty_range = parent.Stage.cpu_physical_memory_mask_dirty_range
    cpu_physical_memory_mask_dirty_range = removed("renamed cpu_physical_memory_clear_dirty_range")

    def cpu_physical_memory_reset_dirty(self, start: int, end: int, client: int) -> None:
        """Note: start and end must be within the same ram block."""
        check_end(dirty_pages(self.ram_list), start, end, "cpu_physical_memory_reset_dirty")
        start &= TARGET_PAGE_MASK
        end = TARGET_PAGE_ALIGN(end)
        length = end - start
        if length == 0:
            return
        self.cpu_physical_memory_clear_dirty_range(start, length, client)
        if self.machine.tcg_enabled():
            self.tlb_reset_dirty_range_all(start, end, length)
