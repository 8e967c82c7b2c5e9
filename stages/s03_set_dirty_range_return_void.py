"""Stage 03: memory: cpu_physical_memory_set_dirty_range() return void

Upstream: 78d004264 (memory.c).

Kind: cleanup (drop a ``return`` of a void call).

``memory_region_set_dirty`` wrote ``return cpu_physical_memory_set_dirty_range(...)``
in a void function; the ``return`` goes.  Behaviour is kept: both return nothing.
"""

from . import s02_set_dirty_flags_result_unused as parent
from .common import check_region, dirty_pages


class Stage(parent.Stage):
    STAGE = 3
    TITLE = "memory: cpu_physical_memory_set_dirty_range() return void"
    UPSTREAM = "78d004264"
    KIND = "cleanup"

    def memory_region_set_dirty(self, mr, addr: int, size: int) -> None:
        assert mr.terminates, "assert(mr->terminates)"
        check_region(dirty_pages(self.ram_list), mr, addr, size, "memory_region_set_dirty")
        self.cpu_physical_memory_set_dirty_range(mr.ram_addr + addr, size, -1)
