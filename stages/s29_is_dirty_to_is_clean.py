"""Stage 29: memory: s/dirty/clean/ in cpu_physical_memory_is_dirty()

Upstream: a2cd8c852 (cputlb.c, exec.c, include/exec/memory-internal.h).

Kind: rename with negation.

``cpu_physical_memory_is_dirty`` becomes ``cpu_physical_memory_is_clean``,
returning the negation (``!(vga && code && migration)``), and its four
callers flip their tests: tlb_set_page, notdirty_mem_write,
invalidate_and_set_dirty and stl_phys_notdirty.  Behaviour is kept: every
caller asked the negated question anyway (or now negates it itself).
"""

from . import s28_clear_dirty_range_bitmap_ops as parent
from .common import check_range, dirty_pages, removed
from .s00_before_the_series import _store


class Stage(parent.Stage):
    STAGE = 29
    TITLE = "memory: s/dirty/clean/ in cpu_physical_memory_is_dirty()"
    UPSTREAM = "a2cd8c852"
    KIND = "rename with negation"

    DECLARED_IN = {
        **{k: v for k, v in parent.Stage.DECLARED_IN.items() if k != "cpu_physical_memory_is_dirty"},
        "cpu_physical_memory_is_clean": "include/exec/memory-internal.h",
    }

    cpu_physical_memory_is_dirty = removed("became cpu_physical_memory_is_clean")

    def cpu_physical_memory_is_clean(self, addr: int) -> bool:
        vga = self.cpu_physical_memory_get_dirty_flag(addr, self.DIRTY_MEMORY_VGA)
        code = self.cpu_physical_memory_get_dirty_flag(addr, self.DIRTY_MEMORY_CODE)
        migration = self.cpu_physical_memory_get_dirty_flag(addr, self.DIRTY_MEMORY_MIGRATION)
        return not (vga and code and migration)

    def tlb_set_page(self, ram_addr: int) -> bool:
        notdirty = self.cpu_physical_memory_is_clean(ram_addr)
        self.machine.tlb_set_entry(ram_addr, notdirty)
        return notdirty

    def notdirty_mem_write(self, ram_addr: int, size: int) -> None:
        if not self.cpu_physical_memory_get_dirty_flag(ram_addr, self.DIRTY_MEMORY_CODE):
            self.machine.tb_invalidate_phys_page_fast(ram_addr, size)
        _store(size)
        self.cpu_physical_memory_set_dirty_flag(ram_addr, self.DIRTY_MEMORY_MIGRATION)
        self.cpu_physical_memory_set_dirty_flag(ram_addr, self.DIRTY_MEMORY_VGA)
        # we remove the notdirty callback only if the code has been flushed
        if not self.cpu_physical_memory_is_clean(ram_addr):
            self.machine.tlb_set_dirty(ram_addr)       # env->mem_io_vaddr

    def invalidate_and_set_dirty(self, addr: int, length: int) -> None:
        check_range(dirty_pages(self.ram_list), addr, length, "invalidate_and_set_dirty", "addr")
        if self.cpu_physical_memory_is_clean(addr):
            # invalidate code
            self.machine.tb_invalidate_phys_page_range(addr, addr + length, 0)
            # set dirty bit
            self.cpu_physical_memory_set_dirty_flag(addr, self.DIRTY_MEMORY_VGA)
            self.cpu_physical_memory_set_dirty_flag(addr, self.DIRTY_MEMORY_MIGRATION)
        self.machine.xen_modified_memory(addr, length)

    def stl_phys_notdirty(self, addr1: int) -> None:
        if self.in_migration:
            if self.cpu_physical_memory_is_clean(addr1):
                # invalidate code
                self.machine.tb_invalidate_phys_page_range(addr1, addr1 + 4, 0)
                # set dirty bit
                self.cpu_physical_memory_set_dirty_flag(addr1, self.DIRTY_MEMORY_MIGRATION)
                self.cpu_physical_memory_set_dirty_flag(addr1, self.DIRTY_MEMORY_VGA)
