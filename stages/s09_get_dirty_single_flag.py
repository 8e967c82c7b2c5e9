"""Stage 09: memory: all users of cpu_physical_memory_get_dirty used only one flag

Upstream: 36187e2ca (include/exec/memory-internal.h).

Kind: removal of a function; change of a parameter's meaning (a set of
flags -> one flag) and of the return value.

``cpu_physical_memory_get_dirty_flags`` (the whole byte) is gone; its last
user, ``cpu_physical_memory_get_dirty``, now ORs
``cpu_physical_memory_get_dirty_flag(addr, dirty_flag)`` over the range.
Behaviour on the machine is kept: every caller passes one flag
(``1 << client``) and reads the result as a truth value.  At the API level
the return value changes from the OR of the masked bytes (e.g. 8 for
migration) to 0 or 1, with the same truth value (see the register).
"""

from . import s08_simplify_notdirty_mem_write as parent
from .common import (
    TARGET_PAGE_ALIGN, TARGET_PAGE_MASK, TARGET_PAGE_SIZE, check_range, dirty_pages, removed,
)


class Stage(parent.Stage):
    STAGE = 9
    TITLE = "memory: all users of cpu_physical_memory_get_dirty used only one flag"
    UPSTREAM = "36187e2ca"
    KIND = "removal of a function; change of parameter meaning"

    DECLARED_IN = {k: v for k, v in parent.Stage.DECLARED_IN.items() if k != "cpu_physical_memory_get_dirty_flags"}

    cpu_physical_memory_get_dirty_flags = removed("its users now ask for one flag")

    def cpu_physical_memory_get_dirty(self, start: int, length: int, dirty_flag: int) -> int:
        check_range(dirty_pages(self.ram_list), start, length, "cpu_physical_memory_get_dirty")
        ret = 0
        end = TARGET_PAGE_ALIGN(start + length)
        start &= TARGET_PAGE_MASK
        addr = start
        while addr < end:
            ret |= self.cpu_physical_memory_get_dirty_flag(addr, dirty_flag)
            addr += TARGET_PAGE_SIZE
        return ret
