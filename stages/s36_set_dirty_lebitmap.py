"""Stage 36: memory: move bitmap synchronization to its own function

Upstream: 5ff7fb77b (include/exec/ram_addr.h, kvm-all.c; memory-physical.h in v2).

Kind: extract function.

The walk over KVM's little-endian log moves out of kvm-all.c into
``cpu_physical_memory_set_dirty_lebitmap(bitmap, start, pages)`` in the new
header, and ``kvm_get_dirty_pages_log_range`` computes ``start`` and
``pages`` and calls it.  Behaviour is kept: the same loop, moved.
"""

from . import s35_kvm_start_address as parent
from .bitmap import HOST_LONG_BITS, each_set_bit_le
from .common import TARGET_PAGE_SIZE, check_lebitmap, check_section, dirty_pages


class Stage(parent.Stage):
    STAGE = 36
    TITLE = "memory: move bitmap synchronization to its own function"
    UPSTREAM = "5ff7fb77b"
    KIND = "extract function"

    DECLARED_IN = {
        **parent.Stage.DECLARED_IN,
        "cpu_physical_memory_set_dirty_lebitmap": "include/exec/memory-physical.h",
    }

    def cpu_physical_memory_set_dirty_lebitmap(self, bitmap, start: int, pages: int) -> None:
        check_lebitmap(dirty_pages(self.ram_list), bitmap, start, pages,
                       self.machine.getpagesize() // TARGET_PAGE_SIZE,
                       "cpu_physical_memory_set_dirty_lebitmap")
        length = (pages + HOST_LONG_BITS - 1) // HOST_LONG_BITS
        hpratio = self.machine.getpagesize() // TARGET_PAGE_SIZE
        # bitmap-traveling is faster than memory-traveling (for addr...)
        # especially when most of the memory is not dirty.
        for bit in each_set_bit_le(bitmap, length):     # i * HOST_LONG_BITS + j
            page_number = bit * hpratio
            addr = page_number * TARGET_PAGE_SIZE
            ram_addr = start + addr
            self.cpu_physical_memory_set_dirty_range(ram_addr, TARGET_PAGE_SIZE * hpratio)

    def kvm_get_dirty_pages_log_range(self, section, bitmap) -> int:
        check_section(dirty_pages(self.ram_list), section, "kvm_get_dirty_pages_log_range", bitmap,
                      section.size // self.machine.getpagesize())
        start = section.offset_within_region + section.mr.ram_addr
        pages = section.size // self.machine.getpagesize()
        self.cpu_physical_memory_set_dirty_lebitmap(bitmap, start, pages)
        return 0
