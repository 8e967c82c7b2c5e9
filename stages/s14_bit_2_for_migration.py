"""Stage 14: memory: use bit 2 for migration

Upstream: 5adca7ace (include/exec/memory.h).

Kind: change of representation (the migration flag moves from bit 3 to
bit 2); new constant ``DIRTY_MEMORY_NUM``.

``DIRTY_MEMORY_MIGRATION`` becomes 2 and ``DIRTY_MEMORY_NUM`` (3) counts the
clients, ready for one bitmap per client.  Behaviour is kept: since stage 13
nobody names a bit except through ``1 << client``, so moving the number
moves every reader and writer together.  The raw bytes differ (0x04 instead
of 0x08 for migration).
"""

from . import s13_dirty_memory_clients as parent


class Stage(parent.Stage):
    STAGE = 14
    TITLE = "memory: use bit 2 for migration"
    UPSTREAM = "5adca7ace"
    KIND = "change of representation"

    DECLARED_IN = {**parent.Stage.DECLARED_IN, "DIRTY_MEMORY_NUM": "include/exec/memory.h"}

    DIRTY_MEMORY_MIGRATION = 2
    DIRTY_MEMORY_NUM = 3        # num of dirty bits
