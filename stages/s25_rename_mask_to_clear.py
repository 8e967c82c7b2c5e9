"""Stage 25: memory: s/mask/clear/ cpu_physical_memory_mask_dirty_range

Upstream: ace694ccc (exec.c, include/exec/memory-internal.h).

Kind: rename.

``cpu_physical_memory_mask_dirty_range`` is renamed
``cpu_physical_memory_clear_dirty_range`` (the counterpart of
``cpu_physical_memory_set_dirty_range``), and
``cpu_physical_memory_reset_dirty`` calls it by its new name.  Behaviour is
kept: same body, written out again under the new name so that its errors
name it.
"""

from . import s24_get_dirty_returns_bool as parent
from .bitmap import clear_bit
from .common import (
    TARGET_PAGE_ALIGN, TARGET_PAGE_BITS, TARGET_PAGE_MASK, TARGET_PAGE_SIZE, check_client, check_end,
    check_range, dirty_pages, removed,
)


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

    cpu_physical_memory_mask_dirty_range = removed("renamed cpu_physical_memory_clear_dirty_range")

    def cpu_physical_memory_clear_dirty_range(self, start: int, length: int, client: int) -> None:
        check_client(client, self.DIRTY_MEMORY_NUM, "cpu_physical_memory_clear_dirty_range")
        check_range(dirty_pages(self.ram_list), start, length,
                    "cpu_physical_memory_clear_dirty_range")
        end = TARGET_PAGE_ALIGN(start + length)
        start &= TARGET_PAGE_MASK
        addr = start
        while addr < end:
            clear_bit(addr >> TARGET_PAGE_BITS, self.ram_list.dirty_memory[client])
            addr += TARGET_PAGE_SIZE

    def cpu_physical_memory_reset_dirty(self, start: int, end: int, client: int) -> None:
        """Note: start and end must be within the same ram block."""
        check_end(dirty_pages(self.ram_list), start, end, "cpu_physical_memory_reset_dirty",
                  client=client, check_client=self._check_client)
        start &= TARGET_PAGE_MASK
        end = TARGET_PAGE_ALIGN(end)
        length = end - start
        if length == 0:
            return
        self.cpu_physical_memory_clear_dirty_range(start, length, client)
        if self.machine.tcg_enabled():
            self.tlb_reset_dirty_range_all(start, end, length)
