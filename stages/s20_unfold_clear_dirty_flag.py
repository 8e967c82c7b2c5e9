"""Stage 20: memory: unfold cpu_physical_memory_clear_dirty_flag() in its only user

Upstream: 86a49582d (include/exec/memory-internal.h).

Kind: inline (a helper folded into its only caller).

``cpu_physical_memory_clear_dirty_flag`` is removed;
``cpu_physical_memory_mask_dirty_range`` asserts the client once and calls
``clear_bit`` per page itself.  Behaviour is kept: the same bits are cleared
in the same order; the assertion now fires before the loop, also for an
empty range.
"""

from . import s19_split_dirty_bitmap as parent
from .bitmap import clear_bit
from .common import (
    TARGET_PAGE_ALIGN, TARGET_PAGE_BITS, TARGET_PAGE_MASK, TARGET_PAGE_SIZE, check_client,
    check_range, dirty_pages, removed,
)


class Stage(parent.Stage):
    STAGE = 20
    TITLE = "memory: unfold cpu_physical_memory_clear_dirty_flag() in its only user"
    UPSTREAM = "86a49582d"
    KIND = "inline"

    DECLARED_IN = {k: v for k, v in parent.Stage.DECLARED_IN.items() if k != "cpu_physical_memory_clear_dirty_flag"}

    cpu_physical_memory_clear_dirty_flag = removed("unfolded into cpu_physical_memory_mask_dirty_range")

    def cpu_physical_memory_mask_dirty_range(self, start: int, length: int, client: int) -> None:
        check_client(client, self.DIRTY_MEMORY_NUM, "cpu_physical_memory_mask_dirty_range")
        check_range(dirty_pages(self.ram_list), start, length,
                    "cpu_physical_memory_mask_dirty_range")
        end = TARGET_PAGE_ALIGN(start + length)
        start &= TARGET_PAGE_MASK
        addr = start
        while addr < end:
            clear_bit(addr >> TARGET_PAGE_BITS, self.ram_list.dirty_memory[client])
            addr += TARGET_PAGE_SIZE
