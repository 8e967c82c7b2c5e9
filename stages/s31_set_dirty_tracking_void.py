"""Stage 31: memory: cpu_physical_memory_set_dirty_tracking() should return void

Upstream: 981fdf235 (exec.c).

Kind: change of signature (int -> void, int parameter -> bool).

``cpu_physical_memory_set_dirty_tracking(bool enable)`` returns nothing (it
always returned 0, and nobody read it); ``in_migration`` becomes a bool and
the core listener passes ``true``/``false``.  Behaviour is kept: the same
truth values are stored and tested.
"""

from . import s30_reset_dirty_takes_length as parent


class Stage(parent.Stage):
    STAGE = 31
    TITLE = "memory: cpu_physical_memory_set_dirty_tracking() should return void"
    UPSTREAM = "981fdf235"
    KIND = "change of signature"

    def __init__(self, machine):
        super().__init__(machine)
        self.in_migration = False                # exec.c: static bool in_migration

    def cpu_physical_memory_set_dirty_tracking(self, enable: bool) -> None:
        self.in_migration = enable

    def core_log_global_start(self) -> None:
        self.cpu_physical_memory_set_dirty_tracking(True)

    def core_log_global_stop(self) -> None:
        self.cpu_physical_memory_set_dirty_tracking(False)
