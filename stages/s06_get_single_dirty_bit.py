"""Stage 06: exec: create function to get a single dirty bit

Upstream: 7e5609a85 (exec.c, include/exec/memory-internal.h).

Kind: new function, one caller moved to it.

Adds ``cpu_physical_memory_get_dirty_flag(addr, dirty_flag) -> bool`` and
``notdirty_mem_write`` uses it to test ``CODE_DIRTY_FLAG``.  Behaviour is
kept: ``!(dirty_flags & CODE_DIRTY_FLAG)`` on the byte just read is the same
test; the local ``dirty_flags`` is still read (and re-read after the TB
invalidation) for the store that follows.
"""

from . import s05_set_single_dirty_bit as parent
from .common import check_page
from .s00_before_the_series import _store


class Stage(parent.Stage):
    STAGE = 6
    TITLE = "exec: create function to get a single dirty bit"
    UPSTREAM = "7e5609a85"
    KIND = "new function"

    DECLARED_IN = {
        **parent.Stage.DECLARED_IN,
        "cpu_physical_memory_get_dirty_flag": "include/exec/memory-internal.h",
    }

    def cpu_physical_memory_get_dirty_flag(self, addr: int, dirty_flag: int) -> bool:
        phys_dirty = self.ram_list.phys_dirty
        return bool(phys_dirty[check_page(phys_dirty, addr, "cpu_physical_memory_get_dirty_flag")]
                    & dirty_flag)

    def notdirty_mem_write(self, ram_addr: int, size: int) -> None:
        dirty_flags = self.cpu_physical_memory_get_dirty_flags(ram_addr)
        if not self.cpu_physical_memory_get_dirty_flag(ram_addr, self.CODE_DIRTY_FLAG):
            self.machine.tb_invalidate_phys_page_fast(ram_addr, size)
            dirty_flags = self.cpu_physical_memory_get_dirty_flags(ram_addr)
        _store(size)
        dirty_flags |= 0xFF & ~self.CODE_DIRTY_FLAG
        self.cpu_physical_memory_set_dirty_flags(ram_addr, dirty_flags)
        # we remove the notdirty callback only if the code has been flushed
        if self.cpu_physical_memory_is_dirty(ram_addr):
            self.machine.tlb_set_dirty(ram_addr)       # env->mem_io_vaddr
