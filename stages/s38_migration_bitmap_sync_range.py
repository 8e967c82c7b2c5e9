"""Stage 38: ram: split function that synchronizes a range

Upstream: 791fa2a24 (arch_init.c).

Kind: extract function; change of signature.

The per-block loop of ``migration_bitmap_sync`` moves into
``migration_bitmap_sync_range(start, length)``, called with
``block->mr->ram_addr`` and ``block->length``, and
``migration_bitmap_set_dirty`` takes the ram_addr instead of
``(mr, offset)``.  Behaviour is kept: the same pages are visited in the same
order with the same calls.
"""

from . import s37_lebitmap_word_at_a_time as parent
from .bitmap import test_and_set_bit
from .common import TARGET_PAGE_BITS, TARGET_PAGE_SIZE, check_addr, check_range, dirty_pages


class Stage(parent.Stage):
    STAGE = 38
    TITLE = "ram: split function that synchronizes a range"
    UPSTREAM = "791fa2a24"
    KIND = "extract function"

    DECLARED_IN = {**parent.Stage.DECLARED_IN, "migration_bitmap_sync_range": "arch_init.c"}

    def migration_bitmap_set_dirty(self, addr: int) -> bool:
        check_addr(self.migration_bitmap.size * 64, addr, "migration_bitmap_set_dirty")
        nr = addr >> TARGET_PAGE_BITS
        ret = test_and_set_bit(nr, self.migration_bitmap)
        if not ret:
            self.migration_dirty_pages += 1
        return ret

    def migration_bitmap_sync_range(self, start: int, length: int) -> None:
        check_range(min(dirty_pages(self.ram_list), self.migration_bitmap.size * 64), start, length,
                    "migration_bitmap_sync_range")
        addr = 0
        while addr < length:
            if self.cpu_physical_memory_get_dirty(start + addr, TARGET_PAGE_SIZE,
                                                  self.DIRTY_MEMORY_MIGRATION):
                self.cpu_physical_memory_reset_dirty(start + addr, TARGET_PAGE_SIZE,
                                                     self.DIRTY_MEMORY_MIGRATION)
                self.migration_bitmap_set_dirty(start + addr)
            addr += TARGET_PAGE_SIZE

    def migration_bitmap_sync(self) -> None:
        """Needs iothread lock!"""
        self.machine.address_space_sync_dirty_bitmap()
        for block in self.ram_list.blocks:
            self.migration_bitmap_sync_range(block.mr.ram_addr, block.length)
