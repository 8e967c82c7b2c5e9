"""Stage 15: memory: make sure that client is always inside range

Upstream: 7a5b558c9 (include/exec/memory-internal.h).

Kind: added assertions.

``cpu_physical_memory_get_dirty_flag``, ``_set_dirty_flag`` and
``_clear_dirty_flag`` ``assert(client < DIRTY_MEMORY_NUM)``.  Behaviour is
kept for every valid client.  What the assertion stops: a client from 3 to 7
named a spare bit of the byte (read, set or cleared it); one from 8 to 30
touched no bit (the shifted int has none in the byte); from 31 on the shift
of a 32-bit int was undefined, and in ``_clear_dirty_flag`` it still is,
since ``~(1 << client)`` is computed before the assertion.  All now fail the
assertion (AssertionError here; stages 13 and 14 refuse 8 and more with
ValueError, this model's choice: see ``common.check_flag_client``).  The
assertions are met page by page, so a range function over an empty range
meets none of them, as before; the range functions check the client first
through ``_check_client`` (stage 13), which becomes the assertion here.
"""

from . import s14_bit_2_for_migration as parent
from .common import check_client


class Stage(parent.Stage):
    STAGE = 15
    TITLE = "memory: make sure that client is always inside range"
    UPSTREAM = "7a5b558c9"
    KIND = "added assertions"

    def _check_client(self, client: int, what: str) -> None:
        """The range functions check a client they hand on by the assertion
        it now meets (see stage 13)."""
        check_client(client, self.DIRTY_MEMORY_NUM, what)

    def cpu_physical_memory_get_dirty_flag(self, addr: int, client: int) -> bool:
        check_client(client, self.DIRTY_MEMORY_NUM, "cpu_physical_memory_get_dirty_flag")
        return super().cpu_physical_memory_get_dirty_flag(addr, client)

    def cpu_physical_memory_set_dirty_flag(self, addr: int, client: int) -> None:
        check_client(client, self.DIRTY_MEMORY_NUM, "cpu_physical_memory_set_dirty_flag")
        super().cpu_physical_memory_set_dirty_flag(addr, client)

    def cpu_physical_memory_clear_dirty_flag(self, addr: int, client: int) -> int:
        check_client(client, self.DIRTY_MEMORY_NUM, "cpu_physical_memory_clear_dirty_flag")
        return super().cpu_physical_memory_clear_dirty_flag(addr, client)
