"""Stage 01: Move prototypes to memory.h

Upstream: not merged as such.  This v2 patch's text is not public in the
merged history (series.md, note A): what is known is its title and that the
v2 diffstat removes 4 lines from include/exec/cpu-common.h and changes
include/exec/memory.h.

Kind: move of declarations (a reconstruction).

Reconstruction: the only four-line block of cpu-common.h that belongs to
memory.h is the "memory API" comment, a blank line and the typedefs
``CPUWriteMemoryFunc`` and ``CPUReadMemoryFunc`` (memory.h's
``MemoryRegionMmio`` uses them), and later patches need memory.h to stand on
its own (stage 19 includes it from cpu-all.h).  So this stage moves those two
declarations and nothing else: no function changes, so behaviour is kept.
The conformance vectors likewise run stage 00's code for stage 01.
"""

from . import s00_before_the_series as parent


class Stage(parent.Stage):
    STAGE = 1
    TITLE = "Move prototypes to memory.h"
    UPSTREAM = None
    KIND = "move of declarations (reconstruction)"

    DECLARED_IN = {
        **parent.Stage.DECLARED_IN,
        "CPUWriteMemoryFunc": "include/exec/memory.h",
        "CPUReadMemoryFunc": "include/exec/memory.h",
    }
