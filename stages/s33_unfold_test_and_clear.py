"""Stage 33: memory: unfold memory_region_test_and_clear()

Upstream: 12291ec18 (arch_init.c, which also starts including the header of
stage 32).

Kind: inline (of a memory.c function into a caller in arch_init.c).

``migration_bitmap_sync`` calls ``cpu_physical_memory_get_dirty`` and
``cpu_physical_memory_reset_dirty`` on ``block->mr->ram_addr + addr`` itself
instead of ``memory_region_test_and_clear_dirty(block->mr, addr, ...)``.
Behaviour is kept: that is exactly the body of the function it replaces.
"""

from . import s32_memory_physical_header as parent
from .common import TARGET_PAGE_SIZE


class Stage(parent.Stage):
    STAGE = 33
    TITLE = "memory: unfold memory_region_test_and_clear()"
    UPSTREAM = "12291ec18"
    KIND = "inline"

    def migration_bitmap_sync(self) -> None:
        """Needs iothread lock!  Page by page over every block."""
        self.machine.address_space_sync_dirty_bitmap()
        for block in self.ram_list.blocks:
            addr = 0
            while addr < block.length:
                if self.cpu_physical_memory_get_dirty(block.mr.ram_addr + addr, TARGET_PAGE_SIZE,
                                                      self.DIRTY_MEMORY_MIGRATION):
                    self.cpu_physical_memory_reset_dirty(block.mr.ram_addr + addr, TARGET_PAGE_SIZE,
                                                         self.DIRTY_MEMORY_MIGRATION)
                    self.migration_bitmap_set_dirty(block.mr, addr)
                addr += TARGET_PAGE_SIZE
