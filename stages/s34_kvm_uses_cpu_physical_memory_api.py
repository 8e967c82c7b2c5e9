"""Stage 34: kvm: use directly cpu_physical_memory_* api for tracking dirty pages

Upstream: 747afd5bc (kvm-all.c, which also starts including the header of
stage 32).

Kind: inline (memory.c wrapper bypassed).

``kvm_get_dirty_pages_log_range`` computes the ram_addr
(``section->mr->ram_addr + addr``) and calls
``cpu_physical_memory_set_dirty_range`` directly instead of
``memory_region_set_dirty``.  Behaviour is kept: that wrapper only asserted
``mr->terminates`` and added ``mr->ram_addr``.
"""

from . import s33_unfold_test_and_clear as parent
from .bitmap import HOST_LONG_BITS, each_set_bit_le
from .common import TARGET_PAGE_SIZE, check_section, dirty_pages


class Stage(parent.Stage):
    STAGE = 34
    TITLE = "kvm: use directly cpu_physical_memory_* api for tracking dirty pages"
    UPSTREAM = "747afd5bc"
    KIND = "inline"

    def kvm_get_dirty_pages_log_range(self, section, bitmap) -> int:
        check_section(dirty_pages(self.ram_list), section, "kvm_get_dirty_pages_log_range", bitmap,
                      section.size // self.machine.getpagesize())
        pages = section.size // self.machine.getpagesize()
        length = (pages + HOST_LONG_BITS - 1) // HOST_LONG_BITS
        hpratio = self.machine.getpagesize() // TARGET_PAGE_SIZE
        # bitmap-traveling is faster than memory-traveling (for addr...)
        # especially when most of the memory is not dirty.
        for bit in each_set_bit_le(bitmap, length):     # i * HOST_LONG_BITS + j
            page_number = bit * hpratio
            addr1 = page_number * TARGET_PAGE_SIZE
            addr = section.offset_within_region + addr1
            ram_addr = section.mr.ram_addr + addr
            self.cpu_physical_memory_set_dirty_range(ram_addr, TARGET_PAGE_SIZE * hpratio)
        return 0
