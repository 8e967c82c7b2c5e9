"""Stage 27: memory: cpu_physical_memory_set_dirty_range() now uses bitmap operations

Upstream: 5b9a3a5f7 (include/exec/memory-internal.h).

Kind: optimisation (page loop -> ``bitmap_set``), with a fix.

``cpu_physical_memory_set_dirty_range`` sets the page range of each of the
three bitmaps with one ``bitmap_set`` (whole words at a time).  The dirty
bits are the same.  Behaviour is NOT kept for Xen: the old code passed the
loop variable left after the loop (the aligned end of the range) to
``xen_modified_memory``; this commit passes ``start``, as was always meant
(the v1 cover letter: "cpu_physical_memory_set_dirty_range() was wrong for
xen").  Registered as a divergence.
"""

from . import s26_find_next_bit as parent
from .bitmap import bitmap_set
from .common import TARGET_PAGE_ALIGN, TARGET_PAGE_BITS, check_range, dirty_pages


class Stage(parent.Stage):
    STAGE = 27
    TITLE = "memory: cpu_physical_memory_set_dirty_range() now uses bitmap operations"
    UPSTREAM = "5b9a3a5f7"
    KIND = "optimisation (and a fix for Xen)"

    def cpu_physical_memory_set_dirty_range(self, start: int, length: int) -> None:
        check_range(dirty_pages(self.ram_list), start, length,
                    "cpu_physical_memory_set_dirty_range")
        end = TARGET_PAGE_ALIGN(start + length) >> TARGET_PAGE_BITS
        page = start >> TARGET_PAGE_BITS
        dirty_memory = self.ram_list.dirty_memory
        bitmap_set(dirty_memory[self.DIRTY_MEMORY_MIGRATION], page, end - page)
        bitmap_set(dirty_memory[self.DIRTY_MEMORY_VGA], page, end - page)
        bitmap_set(dirty_memory[self.DIRTY_MEMORY_CODE], page, end - page)
        self.machine.xen_modified_memory(start, length)
