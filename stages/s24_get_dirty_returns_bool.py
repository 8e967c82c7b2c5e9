"""Stage 24: memory: cpu_physical_memory_get_dirty() is used as returning a bool

Upstream: 94833c896 (include/exec/memory-internal.h).

Kind: change of signature (int -> bool) with an early exit.

``cpu_physical_memory_get_dirty`` returns ``True`` at the first dirty page
instead of ORing the whole range.  Behaviour is kept: every caller used the
result as a truth value, and the OR of 0/1 values is true exactly when one
page is dirty.  The walk stops early, so the cost now depends on where the
first dirty page is.
"""

from . import s23_get_dirty_main_function as parent
from .bitmap import test_bit
from .common import (
    TARGET_PAGE_ALIGN, TARGET_PAGE_BITS, TARGET_PAGE_MASK, TARGET_PAGE_SIZE, check_client,
    check_range, dirty_pages,
)


class Stage(parent.Stage):
    STAGE = 24
    TITLE = "memory: cpu_physical_memory_get_dirty() is used as returning a bool"
    UPSTREAM = "94833c896"
    KIND = "change of signature"

    def cpu_physical_memory_get_dirty(self, start: int, length: int, client: int) -> bool:
        check_client(client, self.DIRTY_MEMORY_NUM, "cpu_physical_memory_get_dirty")
        check_range(dirty_pages(self.ram_list), start, length, "cpu_physical_memory_get_dirty")
        end = TARGET_PAGE_ALIGN(start + length)
        start &= TARGET_PAGE_MASK
        addr = start
        while addr < end:
            if test_bit(addr >> TARGET_PAGE_BITS, self.ram_list.dirty_memory[client]):
                return True
            addr += TARGET_PAGE_SIZE
        return False
