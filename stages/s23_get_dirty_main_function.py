"""Stage 23: memory: make cpu_physical_memory_get_dirty() the main function

Upstream: 9f2c43e41 (include/exec/memory-internal.h).

Kind: inversion of a call (the range function becomes the primitive).

``cpu_physical_memory_get_dirty`` now asserts the client and ORs
``test_bit`` over the range itself, and
``cpu_physical_memory_get_dirty_flag(addr, client)`` becomes
``cpu_physical_memory_get_dirty(addr, 1, client)``.  Behaviour is kept: a
range of one byte covers exactly the page of ``addr``, and the assertion
is the same.  ``get_dirty`` still returns an int (0 or 1).
"""

from . import s22_unfold_set_dirty_flag as parent
from .bitmap import test_bit
from .common import (
    TARGET_PAGE_ALIGN, TARGET_PAGE_BITS, TARGET_PAGE_MASK, TARGET_PAGE_SIZE, check_addr,
    check_client, check_range, dirty_pages,
)


class Stage(parent.Stage):
    STAGE = 23
    TITLE = "memory: make cpu_physical_memory_get_dirty() the main function"
    UPSTREAM = "9f2c43e41"
    KIND = "inversion of a call"

    def cpu_physical_memory_get_dirty(self, start: int, length: int, client: int) -> int:
        ret = 0
        check_client(client, self.DIRTY_MEMORY_NUM, "cpu_physical_memory_get_dirty")
        check_range(dirty_pages(self.ram_list), start, length, "cpu_physical_memory_get_dirty")
        end = TARGET_PAGE_ALIGN(start + length)
        start &= TARGET_PAGE_MASK
        addr = start
        while addr < end:
            ret |= test_bit(addr >> TARGET_PAGE_BITS, self.ram_list.dirty_memory[client])
            addr += TARGET_PAGE_SIZE
        return ret

    def cpu_physical_memory_get_dirty_flag(self, addr: int, client: int) -> bool:
        # cpu_physical_memory_get_dirty asserts the client before anything else
        check_client(client, self.DIRTY_MEMORY_NUM, "cpu_physical_memory_get_dirty_flag")
        check_addr(dirty_pages(self.ram_list), addr, "cpu_physical_memory_get_dirty_flag")
        return bool(self.cpu_physical_memory_get_dirty(addr, 1, client))
