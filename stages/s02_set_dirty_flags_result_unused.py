"""Stage 02: memory: cpu_physical_memory_set_dirty_flags() result is never used

Upstream: e2da99d58 (include/exec/memory-internal.h).

Kind: change of signature (return type int -> void).

``cpu_physical_memory_set_dirty_flags`` stops returning the new flag byte.
Behaviour is kept: no caller read the value (notdirty_mem_write,
invalidate_and_set_dirty, stl_phys_notdirty, tlb_unprotect_code_phys,
cpu_physical_memory_set_dirty and cpu_physical_memory_set_dirty_range all
discard it).  Only a direct API call sees ``None`` instead of the byte.
"""

import numpy as np

from . import s01_move_prototypes_to_memory_h as parent
from .common import check_page


class Stage(parent.Stage):
    STAGE = 2
    TITLE = "memory: cpu_physical_memory_set_dirty_flags() result is never used"
    UPSTREAM = "e2da99d58"
    KIND = "change of signature"

    def cpu_physical_memory_set_dirty_flags(self, addr: int, dirty_flags: int) -> None:
        phys_dirty = self.ram_list.phys_dirty
        phys_dirty[check_page(phys_dirty, addr, "cpu_physical_memory_set_dirty_flags")] |= \
            np.uint8(dirty_flags & 0xFF)
