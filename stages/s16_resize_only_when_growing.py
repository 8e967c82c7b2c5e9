"""Stage 16: memory: only resize dirty bitmap when memory size increases

Upstream: 2152f5ca7 (exec.c).

Kind: change of a caller (conditional reallocation).

``qemu_ram_alloc_from_ptr`` notes ``last_ram_offset()`` before adding the
block and reallocates (and zeroes the new block's bytes) only when RAM got
bigger; a block placed in a freed gap keeps the bytes already there.
Behaviour is kept: since stage 11 a byte holds only client bits, and the
``cpu_physical_memory_set_dirty_range`` that follows sets all three of them
on every page of the block, so zeroing first or not ends the same.
"""

from . import s15_client_inside_range as parent
from .common import TARGET_PAGE_BITS
from .s00_before_the_series import _g_realloc


class Stage(parent.Stage):
    STAGE = 16
    TITLE = "memory: only resize dirty bitmap when memory size increases"
    UPSTREAM = "2152f5ca7"
    KIND = "change of a caller"

    def qemu_ram_alloc_from_ptr(self, size: int) -> int:
        old_ram_size = self.machine.last_ram_offset() >> TARGET_PAGE_BITS
        new_block = self.machine.ram_block_add(size)
        size = new_block.length
        new_ram_size = self.machine.last_ram_offset() >> TARGET_PAGE_BITS
        if new_ram_size > old_ram_size:
            self.ram_list.phys_dirty = _g_realloc(self.ram_list.phys_dirty, new_ram_size)
            first = new_block.offset >> TARGET_PAGE_BITS
            self.ram_list.phys_dirty[first:first + (size >> TARGET_PAGE_BITS)] = 0
        self.cpu_physical_memory_set_dirty_range(new_block.offset, size)
        return new_block.offset
