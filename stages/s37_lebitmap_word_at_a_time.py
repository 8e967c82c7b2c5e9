"""Stage 37: memory: syncronize kvm bitmap using bitmaps operations

Upstream: ae2810c4b (include/exec/ram_addr.h; memory-physical.h in v2).

Kind: optimisation (bit walk -> word OR), with a fast path and a fallback.

When the block starts on a 64-page boundary (``((page * BITS_PER_LONG) <<
TARGET_PAGE_BITS) == start``), ``cpu_physical_memory_set_dirty_lebitmap``
ORs each non-zero word of KVM's log straight into the three dirty bitmaps at
word ``page + k`` and tells Xen once; otherwise it falls back to the old
walk.  Here the words are ORed with numpy, a slice of words at once.

Behaviour is NOT kept (registered):

- the log has one bit per *host* page and the bitmaps one per *target*
  page; ORing words maps host page n to target page n.  With 64 KiB host
  pages (hpratio 16) that marks the wrong pages and misses most of the right
  ones.  Fixed upstream by f9ee9f9ac "exec: fix ram_list dirty map
  optimization" (Alexey Kardashevskiy, 2014-01-30, committed 2014-02-04),
  which takes the fast path only when ``hpratio == 1``.
- Xen is told ``xen_modified_memory(start, pages)``: a page count where a
  length in bytes belongs, and once per sync of an aligned block even when
  its log is empty, instead of once per dirty host page.  Upstream
  49dfcec40 (2015) made it a length in bytes; the single call per sync
  stayed (still so in QEMU 4.1, 2019).
"""

import numpy as np

from . import s36_set_dirty_lebitmap as parent
from .bitmap import BIT_WORD, BITS_PER_LONG, BITS_TO_LONGS
from .common import TARGET_PAGE_BITS, TARGET_PAGE_SIZE, check_lebitmap, dirty_pages


class Stage(parent.Stage):
    STAGE = 37
    TITLE = "memory: syncronize kvm bitmap using bitmaps operations"
    UPSTREAM = "ae2810c4b"
    KIND = "optimisation"

    def cpu_physical_memory_set_dirty_lebitmap(self, bitmap, start: int, pages: int) -> None:
        check_lebitmap(dirty_pages(self.ram_list), bitmap, start, pages,
                       self.machine.getpagesize() // TARGET_PAGE_SIZE,
                       "cpu_physical_memory_set_dirty_lebitmap")
        page = BIT_WORD(start >> TARGET_PAGE_BITS)
        # start address is aligned at the start of a word?
        if ((page * BITS_PER_LONG) << TARGET_PAGE_BITS) == start:
            nr = BITS_TO_LONGS(pages)
            words = np.asarray(bitmap[:nr], dtype=np.uint64)   # leul_to_cpu: the words already hold values
            dirty_memory = self.ram_list.dirty_memory
            # the C ORs only the non-zero words; ORing the zero ones too changes nothing
            for client in (self.DIRTY_MEMORY_MIGRATION, self.DIRTY_MEMORY_VGA, self.DIRTY_MEMORY_CODE):
                dirty_memory[client][page:page + nr] |= words
            self.machine.xen_modified_memory(start, pages)
        else:
            super().cpu_physical_memory_set_dirty_lebitmap(bitmap, start, pages)
