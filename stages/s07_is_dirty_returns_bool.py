"""Stage 07: memory: make cpu_physical_memory_is_dirty return bool

Upstream: 4f08cabe9, its include/exec/memory-internal.h half (series.md,
note B: v2 posted this header change and the exec.c change of stage 08 as
two patches; upstream merged them as one commit, so this split is a
reconstruction along the file boundary).

Kind: change of signature and of meaning (int ``byte == 0xff`` -> bool of
the three client flags).

``cpu_physical_memory_is_dirty`` now returns
``vga && code && migration``, each read with
``cpu_physical_memory_get_dirty_flag``, instead of comparing the whole
byte with 0xff.  Behaviour on the machine is kept because no page of a
block can have the three flags without the five unused bits:
``qemu_ram_alloc_from_ptr`` sets a new block's bytes to 0xff, and only client
bits are ever cleared (``CODE_DIRTY_FLAG`` by ``tlb_protect_code``, ``1 <<
client`` for VGA and migration by memory.c), so the unused bits stay set
from allocation on.  That remains so up to stage 10, although writes then set
single flags (``notdirty_mem_write`` from stage 08; DMA, ``stl_phys_notdirty``
and ``cpu_physical_memory_set_dirty`` from stage 10); stage 11 is the first
where a new block gets the three flags only.  At the API level behaviour is
not kept: a byte with the three flags but not the spare bits (0x0b) was "not
dirty" and is now "dirty" (see the divergence register).
"""

from . import s06_get_single_dirty_bit as parent


class Stage(parent.Stage):
    STAGE = 7
    TITLE = "memory: make cpu_physical_memory_is_dirty return bool"
    UPSTREAM = "4f08cabe9 (header half)"
    KIND = "change of signature (reconstruction of half a commit)"

    def cpu_physical_memory_is_dirty(self, addr: int) -> bool:
        """Read dirty bit (return 0 or 1)."""
        vga = self.cpu_physical_memory_get_dirty_flag(addr, self.VGA_DIRTY_FLAG)
        code = self.cpu_physical_memory_get_dirty_flag(addr, self.CODE_DIRTY_FLAG)
        migration = self.cpu_physical_memory_get_dirty_flag(addr, self.MIGRATION_DIRTY_FLAG)
        return vga and code and migration
