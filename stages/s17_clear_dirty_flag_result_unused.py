"""Stage 17: memory: cpu_physical_memory_clear_dirty_flag() result is never used

Upstream: e8a97cafc (include/exec/memory-internal.h).

Kind: change of signature (return type int -> void).

``cpu_physical_memory_clear_dirty_flag`` stops returning the new byte.
Behaviour is kept: its only caller, ``cpu_physical_memory_mask_dirty_range``,
discards it.
"""

from . import s16_resize_only_when_growing as parent


class Stage(parent.Stage):
    STAGE = 17
    TITLE = "memory: cpu_physical_memory_clear_dirty_flag() result is never used"
    UPSTREAM = "e8a97cafc"
    KIND = "change of signature"

    def cpu_physical_memory_clear_dirty_flag(self, addr: int, client: int) -> None:
        super().cpu_physical_memory_clear_dirty_flag(addr, client)
