"""Stage 32: memory: split cpu_physical_memory_* functions to its own include

Upstream: 220c3ebdd (a new header; include/exec/memory-internal.h loses what
moves to it; cputlb.c, exec.c and memory.c start including it).  arch_init.c
and kvm-all.c are not touched here: they start including the new header in
the commits of stages 33 (12291ec18) and 34 (747afd5bc).  v2 named the new
header include/exec/memory-physical.h; upstream merged it as
include/exec/ram_addr.h (series.md, note D).  This ladder uses the v2 name.

Kind: move of declarations.

The ``cpu_physical_memory_*`` inlines, ``cpu_physical_memory_reset_dirty``
and the ``qemu_ram_*`` prototypes leave memory-internal.h for the new header,
which cputlb.c, exec.c and memory.c include; arch_init.c and kvm-all.c will
include it when they call these functions directly (stages 33 and 34).  No
code changes; behaviour is kept.
"""

from . import s31_set_dirty_tracking_void as parent

NEW_HEADER = "include/exec/memory-physical.h"

MOVED = (
    "qemu_ram_alloc_from_ptr",
    "cpu_physical_memory_get_dirty",
    "cpu_physical_memory_get_dirty_flag",
    "cpu_physical_memory_is_clean",
    "cpu_physical_memory_set_dirty_flag",
    "cpu_physical_memory_set_dirty_range",
    "cpu_physical_memory_clear_dirty_range",
    "cpu_physical_memory_reset_dirty",
)


class Stage(parent.Stage):
    STAGE = 32
    TITLE = "memory: split cpu_physical_memory_* functions to its own include"
    UPSTREAM = "220c3ebdd"
    KIND = "move of declarations"

    DECLARED_IN = {
        **parent.Stage.DECLARED_IN,
        **{name: parent.Stage.DECLARED_IN[name].replace("include/exec/memory-internal.h", NEW_HEADER)
           for name in MOVED},
    }
