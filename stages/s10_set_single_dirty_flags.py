"""Stage 10: memory: set single dirty flags when possible

Upstream: 63995cebf (exec.c, include/exec/memory-internal.h).

Kind: callers moved to single-flag calls.

``invalidate_and_set_dirty`` and ``stl_phys_notdirty`` set VGA and MIGRATION
with two ``cpu_physical_memory_set_dirty_flag`` calls instead of
``set_dirty_flags(0xff & ~CODE_DIRTY_FLAG)``, and
``cpu_physical_memory_set_dirty`` sets MIGRATION, VGA and CODE one by one
instead of ``0xff``.  Per client the behaviour is kept.  These paths stop
setting the five unused bits of the byte, but the bytes on the machine do not
change: the allocation has set those bits already and nothing clears them
(stage 07).
(``cpu_physical_memory_set_dirty`` has no caller at this stage.)
"""

from . import s09_get_dirty_single_flag as parent
from .common import check_range, dirty_pages


class Stage(parent.Stage):
    STAGE = 10
    TITLE = "memory: set single dirty flags when possible"
    UPSTREAM = "63995cebf"
    KIND = "callers moved to single-flag calls"

    def cpu_physical_memory_set_dirty(self, addr: int) -> None:
        self.cpu_physical_memory_set_dirty_flag(addr, self.MIGRATION_DIRTY_FLAG)
        self.cpu_physical_memory_set_dirty_flag(addr, self.VGA_DIRTY_FLAG)
        self.cpu_physical_memory_set_dirty_flag(addr, self.CODE_DIRTY_FLAG)

    def invalidate_and_set_dirty(self, addr: int, length: int) -> None:
        check_range(dirty_pages(self.ram_list), addr, length, "invalidate_and_set_dirty", "addr")
        if not self.cpu_physical_memory_is_dirty(addr):
            # invalidate code
            self.machine.tb_invalidate_phys_page_range(addr, addr + length, 0)
            # set dirty bit
            self.cpu_physical_memory_set_dirty_flag(addr, self.VGA_DIRTY_FLAG)
            self.cpu_physical_memory_set_dirty_flag(addr, self.MIGRATION_DIRTY_FLAG)
        self.machine.xen_modified_memory(addr, length)

    def stl_phys_notdirty(self, addr1: int) -> None:
        if self.in_migration:
            if not self.cpu_physical_memory_is_dirty(addr1):
                # invalidate code
                self.machine.tb_invalidate_phys_page_range(addr1, addr1 + 4, 0)
                # set dirty bit
                self.cpu_physical_memory_set_dirty_flag(addr1, self.MIGRATION_DIRTY_FLAG)
                self.cpu_physical_memory_set_dirty_flag(addr1, self.VGA_DIRTY_FLAG)
