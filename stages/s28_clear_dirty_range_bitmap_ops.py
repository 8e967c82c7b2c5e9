"""Stage 28: memory: cpu_physical_memory_clear_dirty_range() now uses bitmap operations

Upstream: a461e389f (include/exec/memory-internal.h).

Kind: optimisation (page loop -> ``bitmap_clear``).

``cpu_physical_memory_clear_dirty_range`` clears the client's page range
with one ``bitmap_clear``.  Behaviour is kept: same page range, same bits.
"""

from . import s27_set_dirty_range_bitmap_ops as parent
from .bitmap import bitmap_clear
from .common import TARGET_PAGE_ALIGN, TARGET_PAGE_BITS, check_client, check_range, dirty_pages


class Stage(parent.Stage):
    STAGE = 28
    TITLE = "memory: cpu_physical_memory_clear_dirty_range() now uses bitmap operations"
    UPSTREAM = "a461e389f"
    KIND = "optimisation"

    def cpu_physical_memory_clear_dirty_range(self, start: int, length: int, client: int) -> None:
        check_client(client, self.DIRTY_MEMORY_NUM, "cpu_physical_memory_clear_dirty_range")
        check_range(dirty_pages(self.ram_list), start, length,
                    "cpu_physical_memory_clear_dirty_range")
        end = TARGET_PAGE_ALIGN(start + length) >> TARGET_PAGE_BITS
        page = start >> TARGET_PAGE_BITS
        bitmap_clear(self.ram_list.dirty_memory[client], page, end - page)
