"""Stage 35: kvm: refactor start address calculation

Upstream: c9dd46fc0 (kvm-all.c).

Kind: refactor (loop-invariant sum hoisted).

``kvm_get_dirty_pages_log_range`` computes ``start = offset_within_region +
mr->ram_addr`` once and adds ``page_number * TARGET_PAGE_SIZE`` to it per
dirty page.  Behaviour is kept: the same sum, reassociated.
"""

from . import s34_kvm_uses_cpu_physical_memory_api as parent
from .bitmap import HOST_LONG_BITS, each_set_bit_le
from .common import TARGET_PAGE_SIZE, check_section, dirty_pages


class Stage(parent.Stage):
    STAGE = 35
    TITLE = "kvm: refactor start address calculation"
    UPSTREAM = "c9dd46fc0"
    KIND = "refactor"

    def kvm_get_dirty_pages_log_range(self, section, bitmap) -> int:
        check_section(dirty_pages(self.ram_list), section, "kvm_get_dirty_pages_log_range", bitmap,
                      section.size // self.machine.getpagesize())
        start = section.offset_within_region + section.mr.ram_addr
        pages = section.size // self.machine.getpagesize()
        length = (pages + HOST_LONG_BITS - 1) // HOST_LONG_BITS
        hpratio = self.machine.getpagesize() // TARGET_PAGE_SIZE
        # bitmap-traveling is faster than memory-traveling (for addr...)
        # especially when most of the memory is not dirty.
        for bit in each_set_bit_le(bitmap, length):     # i * HOST_LONG_BITS + j
            page_number = bit * hpratio
            addr = page_number * TARGET_PAGE_SIZE
            ram_addr = start + addr
            self.cpu_physical_memory_set_dirty_range(ram_addr, TARGET_PAGE_SIZE * hpratio)
        return 0
