"""Stage 19: memory: split dirty bitmap into three

Upstream: 1ab4c8cea (exec.c, include/exec/cpu-all.h,
include/exec/memory-internal.h, include/exec/memory.h).

Kind: change of representation (one byte per page -> three bitmaps).

``ram_list.phys_dirty`` (uint8 per page) becomes
``ram_list.dirty_memory[DIRTY_MEMORY_NUM]``, one bitmap per client (numpy
uint64 words, bit i of word k is page 64k+i).  The three single-flag
accessors become ``test_bit``, ``set_bit`` and ``clear_bit`` on the client's
bitmap, and ``qemu_ram_alloc_from_ptr`` grows each bitmap with
``bitmap_zero_extend(old_ram_size, new_ram_size)``.  The DIRTY_MEMORY_*
constants move to the top of memory.h so cpu-all.h can size the array.

Behaviour is kept: since stage 11 the byte held exactly the three client
bits, and every reader and writer went through these three accessors, so
each client's page set is the same.  Growth now clears bits
``[old_ram_size, new_ram_size)`` rather than the new block's pages; a new
block that extends RAM starts at ``old_ram_size``, so that is the same
range, and its pages are set dirty right after anyway.  Cost: 3 bits per
page instead of 8.
"""

from . import s18_bitmap_zero_extend as parent
from .bitmap import bitmap_new, clear_bit, set_bit, test_bit
from .common import TARGET_PAGE_BITS, check_addr, check_client, dirty_pages


class Stage(parent.Stage):
    STAGE = 19
    TITLE = "memory: split dirty bitmap into three"
    UPSTREAM = "1ab4c8cea"
    KIND = "change of representation"

    def __init__(self, machine):
        super().__init__(machine)
        del self.ram_list.phys_dirty
        self.ram_list.dirty_memory = [bitmap_new(0) for _ in range(self.DIRTY_MEMORY_NUM)]

    def cpu_physical_memory_get_dirty_flag(self, addr: int, client: int) -> bool:
        check_client(client, self.DIRTY_MEMORY_NUM, "cpu_physical_memory_get_dirty_flag")
        check_addr(dirty_pages(self.ram_list), addr, "cpu_physical_memory_get_dirty_flag")
        return test_bit(addr >> TARGET_PAGE_BITS, self.ram_list.dirty_memory[client])

    def cpu_physical_memory_set_dirty_flag(self, addr: int, client: int) -> None:
        check_client(client, self.DIRTY_MEMORY_NUM, "cpu_physical_memory_set_dirty_flag")
        check_addr(dirty_pages(self.ram_list), addr, "cpu_physical_memory_set_dirty_flag")
        set_bit(addr >> TARGET_PAGE_BITS, self.ram_list.dirty_memory[client])

    def cpu_physical_memory_clear_dirty_flag(self, addr: int, client: int) -> None:
        check_client(client, self.DIRTY_MEMORY_NUM, "cpu_physical_memory_clear_dirty_flag")
        check_addr(dirty_pages(self.ram_list), addr, "cpu_physical_memory_clear_dirty_flag")
        clear_bit(addr >> TARGET_PAGE_BITS, self.ram_list.dirty_memory[client])

    def qemu_ram_alloc_from_ptr(self, size: int) -> int:
        old_ram_size = self.machine.last_ram_offset() >> TARGET_PAGE_BITS
        new_block = self.machine.ram_block_add(size)
        size = new_block.length
        new_ram_size = self.machine.last_ram_offset() >> TARGET_PAGE_BITS
        if new_ram_size > old_ram_size:
            for i in range(self.DIRTY_MEMORY_NUM):
                self.ram_list.dirty_memory[i] = self.bitmap_zero_extend(
                    self.ram_list.dirty_memory[i], old_ram_size, new_ram_size)
        self.cpu_physical_memory_set_dirty_range(new_block.offset, size)
        return new_block.offset
