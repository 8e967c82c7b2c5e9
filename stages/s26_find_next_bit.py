"""Stage 26: memory: use find_next_bit() to find dirty bits

Upstream: 1bafff0c7 (include/exec/memory-internal.h).

Kind: optimisation (page walk -> bitmap search).

``cpu_physical_memory_get_dirty`` asks ``find_next_bit`` for the first dirty
page in ``[start >> TARGET_PAGE_BITS, TARGET_PAGE_ALIGN(start + length) >>
TARGET_PAGE_BITS)`` instead of testing page by page.  Behaviour is kept: the
page range is the same one the loop walked (``start >> 12`` is the page of
``start & TARGET_PAGE_MASK``), and "some bit set below end" is what the
loop's early exit answered.  The search skips clean words 64 pages at a time.
"""

from . import s25_rename_mask_to_clear as parent
from .bitmap import find_next_bit
from .common import TARGET_PAGE_ALIGN, TARGET_PAGE_BITS, check_client, check_range, dirty_pages


class Stage(parent.Stage):
    STAGE = 26
    TITLE = "memory: use find_next_bit() to find dirty bits"
    UPSTREAM = "1bafff0c7"
    KIND = "optimisation"

    def cpu_physical_memory_get_dirty(self, start: int, length: int, client: int) -> bool:
        check_client(client, self.DIRTY_MEMORY_NUM, "cpu_physical_memory_get_dirty")
        check_range(dirty_pages(self.ram_list), start, length, "cpu_physical_memory_get_dirty")
        end = TARGET_PAGE_ALIGN(start + length) >> TARGET_PAGE_BITS
        page = start >> TARGET_PAGE_BITS
        next_ = find_next_bit(self.ram_list.dirty_memory[client], end, page)
        return next_ < end
