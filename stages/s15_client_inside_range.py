"""Stage 15: memory: make sure that client is always inside range

Upstream: 7a5b558c9 (include/exec/memory-internal.h).

Kind: added assertions.

``cpu_physical_memory_get_dirty_flag``, ``_set_dirty_flag`` and
``_clear_dirty_flag`` ``assert(client < DIRTY_MEMORY_NUM)``.  Behaviour is
kept for every valid client; a client of 3 or more, which used to touch a
spare bit of the byte, now fails the assertion (AssertionError here).
"""

from . import s14_bit_2_for_migration as parent
from .common import check_client


class Stage(parent.Stage):
    STAGE = 15
    TITLE = "memory: make sure that client is always inside range"
    UPSTREAM = "7a5b558c9"
    KIND = "added assertions"

    def cpu_physical_memory_get_dirty_flag(self, addr: int, client: int) -> bool:
        check_client(client, self.DIRTY_MEMORY_NUM, "cpu_physical_memory_get_dirty_flag")
        return super().cpu_physical_memory_get_dirty_flag(addr, client)

    def cpu_physical_memory_set_dirty_flag(self, addr: int, client: int) -> None:
        check_client(client, self.DIRTY_MEMORY_NUM, "cpu_physical_memory_set_dirty_flag")
        super().cpu_physical_memory_set_dirty_flag(addr, client)

    def cpu_physical_memory_clear_dirty_flag(self, addr: int, client: int) -> int:
        check_client(client, self.DIRTY_MEMORY_NUM, "cpu_physical_memory_clear_dirty_flag")
        return super().cpu_physical_memory_clear_dirty_flag(addr, client)
