"""Stage 04: exec: use accessor function to know if memory is dirty

Upstream: 06567942e (exec.c).

Kind: use of an accessor (local value -> re-read through the API).

``notdirty_mem_write`` decided whether to drop the NOTDIRTY callback with
``dirty_flags == 0xff`` on its local copy; it now asks
``cpu_physical_memory_is_dirty(ram_addr)``.  Behaviour is kept: the byte was
just written as ``old | dirty_flags`` where ``dirty_flags`` already held the
(re-read) old byte, so the stored byte equals the local copy, and
``is_dirty`` at this stage is exactly ``byte == 0xff``.
"""

from . import s03_set_dirty_range_return_void as parent
from .s00_before_the_series import _store


class Stage(parent.Stage):
    STAGE = 4
    TITLE = "exec: use accessor function to know if memory is dirty"
    UPSTREAM = "06567942e"
    KIND = "use of an accessor"

    def notdirty_mem_write(self, ram_addr: int, size: int) -> None:
        dirty_flags = self.cpu_physical_memory_get_dirty_flags(ram_addr)
        if not dirty_flags & self.CODE_DIRTY_FLAG:
            self.machine.tb_invalidate_phys_page_fast(ram_addr, size)
            dirty_flags = self.cpu_physical_memory_get_dirty_flags(ram_addr)
        _store(size)
        dirty_flags |= 0xFF & ~self.CODE_DIRTY_FLAG
        self.cpu_physical_memory_set_dirty_flags(ram_addr, dirty_flags)
        # we remove the notdirty callback only if the code has been flushed
        if self.cpu_physical_memory_is_dirty(ram_addr):
            self.machine.tlb_set_dirty(ram_addr)       # env->mem_io_vaddr
