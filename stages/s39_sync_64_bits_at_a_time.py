"""Stage 39: migration: synchronize memory bitmap 64bits at a time

Upstream: aa8dc0447 (arch_init.c).

Kind: optimisation (page walk -> word operations), with a fast path and a
fallback.

When the block starts on a 64-page boundary, ``migration_bitmap_sync_range``
works on whole words of the migration client's dirty bitmap: for each
non-zero source word it ORs it into ``migration_bitmap``, adds the
population count of the bits that were new to ``migration_dirty_pages``
and zeroes the source word.  Here the words of the range are done at once
with numpy (``np.bitwise_count`` for ``ctpopl``).  Otherwise the old page
walk runs.

Behaviour is NOT kept (registered):

- the fast path clears the dirty bits without ``cpu_physical_memory_reset_dirty``,
  so under TCG the TLB entries of the synced pages are not reset to
  NOTDIRTY: a page that was written through a dirty TLB entry stays
  writable without a trap, and its next writes do not set its migration bit.
  Migration can lose those writes.  Fixed upstream in 2024 by 03bfc2188f
  "physmem: Fix migration dirty bitmap coherency with TCG memory access".
- it works on whole words: ``BITS_TO_LONGS(length >> TARGET_PAGE_BITS)``
  words from the block's first page, so when a block's length is not a
  multiple of 64 pages, the last word also takes (and clears) the pages
  after the block, which may belong to another block or to no block at all
  (a freed tail of RAM, even past ``ram_pages``, whose bits then count in
  ``migration_dirty_pages`` but lie outside the bitmap that is walked).
  Fixed upstream in 2018 by aa777e297 "cpu_physical_memory_sync_dirty_bitmap:
  Another alignment fix", which keeps the word path for lengths that are
  whole words.
"""

import numpy as np

from . import s38_migration_bitmap_sync_range as parent
from .bitmap import BIT_WORD, BITS_PER_LONG, BITS_TO_LONGS
from .common import TARGET_PAGE_BITS, check_range, dirty_pages


class Stage(parent.Stage):
    STAGE = 39
    TITLE = "migration: synchronize memory bitmap 64bits at a time"
    UPSTREAM = "aa8dc0447"
    KIND = "optimisation"

    def migration_bitmap_sync_range(self, start: int, length: int) -> None:
        check_range(min(dirty_pages(self.ram_list), self.migration_bitmap.size * 64), start, length,
                    "migration_bitmap_sync_range")
        page = BIT_WORD(start >> TARGET_PAGE_BITS)
        # start address is aligned at the start of a word?
        if ((page * BITS_PER_LONG) << TARGET_PAGE_BITS) == start:
            nr = BITS_TO_LONGS(length >> TARGET_PAGE_BITS)
            src = self.ram_list.dirty_memory[self.DIRTY_MEMORY_MIGRATION][page:page + nr]
            dest = self.migration_bitmap[page:page + nr]
            # the bits new to dest, ctpopl(~dest[k] & src[k]) summed over the
            # words: the population after the OR less the population before
            before = int(np.bitwise_count(dest).sum())
            dest |= src
            self.migration_dirty_pages += int(np.bitwise_count(dest).sum()) - before
            src[:] = 0
        else:
            super().migration_bitmap_sync_range(start, length)
