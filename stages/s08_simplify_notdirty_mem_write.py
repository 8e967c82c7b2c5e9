"""Stage 08: exec: simplify notdirty_mem_write()

Upstream: 4f08cabe9, its exec.c half (series.md, note B; a reconstruction
along the file boundary of the merged commit).

Kind: simplification of a caller (local flag copy -> single-flag calls).

``notdirty_mem_write`` drops its local copy of the flag byte: it tests
CODE with ``cpu_physical_memory_get_dirty_flag``, sets
``MIGRATION_DIRTY_FLAG`` then ``VGA_DIRTY_FLAG`` one by one, and asks
``cpu_physical_memory_is_dirty`` before ``tlb_set_dirty``.  Per client the
behaviour is kept (CODE was never set by the old ``0xff & ~CODE`` either).
A trapped write no longer sets the five unused bits, which stage 07's
three-flag ``is_dirty`` no longer looks at; the bytes on the machine do not
change, since the allocation has set those bits already and nothing clears
them (stage 07).  The raw bytes first differ at stage 11.
"""

from . import s07_is_dirty_returns_bool as parent
from .s00_before_the_series import _store


class Stage(parent.Stage):
    STAGE = 8
    TITLE = "exec: simplify notdirty_mem_write()"
    UPSTREAM = "4f08cabe9 (exec.c half)"
    KIND = "simplification of a caller (reconstruction of half a commit)"

    def notdirty_mem_write(self, ram_addr: int, size: int) -> None:
        if not self.cpu_physical_memory_get_dirty_flag(ram_addr, self.CODE_DIRTY_FLAG):
            self.machine.tb_invalidate_phys_page_fast(ram_addr, size)
        _store(size)
        self.cpu_physical_memory_set_dirty_flag(ram_addr, self.MIGRATION_DIRTY_FLAG)
        self.cpu_physical_memory_set_dirty_flag(ram_addr, self.VGA_DIRTY_FLAG)
        # we remove the notdirty callback only if the code has been flushed
        if self.cpu_physical_memory_is_dirty(ram_addr):
            self.machine.tlb_set_dirty(ram_addr)       # env->mem_io_vaddr
