"""Stage 05: memory: create function to set a single dirty bit

Upstream: a1390db4d (cputlb.c, include/exec/memory-internal.h).

Kind: new function, one caller moved to it.

Adds ``cpu_physical_memory_set_dirty_flag(addr, dirty_flag)``, the same
``|=`` as ``cpu_physical_memory_set_dirty_flags`` but meant for one flag,
and ``tlb_unprotect_code_phys`` uses it for ``CODE_DIRTY_FLAG``.  Behaviour
is kept: the body is the same OR.
"""

import numpy as np

from . import s04_accessor_for_is_dirty as parent
from .common import check_page


class Stage(parent.Stage):
    STAGE = 5
    TITLE = "memory: create function to set a single dirty bit"
    UPSTREAM = "a1390db4d"
    KIND = "new function"

    DECLARED_IN = {
        **parent.Stage.DECLARED_IN,
        "cpu_physical_memory_set_dirty_flag": "include/exec/memory-internal.h",
    }

    def cpu_physical_memory_set_dirty_flag(self, addr: int, dirty_flag: int) -> None:
        phys_dirty = self.ram_list.phys_dirty
        phys_dirty[check_page(phys_dirty, addr, "cpu_physical_memory_set_dirty_flag")] |= \
            np.uint8(dirty_flag & 0xFF)

    def tlb_unprotect_code_phys(self, ram_addr: int) -> None:
        """Writes in the page are no longer tested for self-modifying code."""
        self.cpu_physical_memory_set_dirty_flag(ram_addr, self.CODE_DIRTY_FLAG)
