"""The register's behaviour changes, as code: one override per entry, and the bridges.

Every entry of the divergence register (``divergences.toml``) names an
*override* defined here: a mixin that, put in front of stage N-1, makes that
entry's behaviour change and nothing else, written in stage N-1's own style
(its names, its page walks, its calls).  The *bridge* of rung N is stage N-1
with the overrides of all of rung N's entries in front of it; at a rung with
no entry it is stage N-1 itself.

This splits each commit in two:

- stage N-1 -> bridge N: the named behaviour changes, which the register
  explains one by one (the rung check asks that each override alone differs
  from stage N-1, and only where its entry says);
- bridge N -> stage N: a pure refactoring, which the rung check demands be
  *exactly* the same at every level (machine, API, representation).  A second
  mistake at a rung that already diverges shows there as a new difference,
  wherever it is: nothing is matched by its location.

An override is a small class with QEMU's names, meant to be read beside the
commit; it calls ``super()`` for what it leaves as it was.  Where two entries
of one rung change the same function, their overrides compose: the bridge's
order is the register's order, the first entry outermost.
"""

from __future__ import annotations

from stages import stage
from stages.bitmap import BIT_WORD, BITS_PER_LONG, BITS_TO_LONGS, HOST_LONG_BITS, each_set_bit_le, set_bit
from stages.common import (
    TARGET_PAGE_ALIGN, TARGET_PAGE_BITS, TARGET_PAGE_MASK, TARGET_PAGE_SIZE, check_end, check_lebitmap,
    check_range, dirty_pages,
)
from stages.s00_before_the_series import _g_realloc


def start_of_word(start: int) -> bool:
    """The test of the word paths of stages 37 and 39: does ``start`` fall on
    the first page of a word of the dirty bitmaps (a 64-page boundary)?"""
    page = BIT_WORD(start >> TARGET_PAGE_BITS)
    return ((page * BITS_PER_LONG) << TARGET_PAGE_BITS) == start


# ---------------------------------------------------------------- rung 02
class SetDirtyFlagsVoid:
    """e2da99d58: cpu_physical_memory_set_dirty_flags() returns nothing."""

    def cpu_physical_memory_set_dirty_flags(self, addr: int, dirty_flags: int) -> None:
        super().cpu_physical_memory_set_dirty_flags(addr, dirty_flags)


# ---------------------------------------------------------------- rung 07
class IsDirtyThreeFlags:
    """4f08cabe9: a page is dirty when its three client flags are set,
    whatever the five spare bits of its byte hold (was: the byte is 0xff)."""

    def cpu_physical_memory_is_dirty(self, addr: int) -> bool:
        vga = self.cpu_physical_memory_get_dirty_flag(addr, self.VGA_DIRTY_FLAG)
        code = self.cpu_physical_memory_get_dirty_flag(addr, self.CODE_DIRTY_FLAG)
        migration = self.cpu_physical_memory_get_dirty_flag(addr, self.MIGRATION_DIRTY_FLAG)
        return vga and code and migration


# ---------------------------------------------------------------- rung 09
class GetDirtyZeroOrOne:
    """36187e2ca: cpu_physical_memory_get_dirty() answers 0 or 1, the truth
    value of the OR of the masked flag bytes it used to return."""

    def cpu_physical_memory_get_dirty(self, start: int, length: int, dirty_flags: int) -> int:
        return int(bool(super().cpu_physical_memory_get_dirty(start, length, dirty_flags)))


# ---------------------------------------------------------------- rung 11
class SpareBitsNoLongerSet:
    """75218e7f2: a range set dirty gets the three client flags only; its
    callers' "all flags" (0xff, -1) no longer reach the five spare bits."""

    def cpu_physical_memory_set_dirty_range(self, start: int, length: int, dirty_flags: int) -> None:
        client_flags = self.VGA_DIRTY_FLAG | self.CODE_DIRTY_FLAG | self.MIGRATION_DIRTY_FLAG
        super().cpu_physical_memory_set_dirty_range(start, length, dirty_flags & client_flags)


# ---------------------------------------------------------------- rung 14
class MigrationBitMoves:
    """5adca7ace: the migration client is number 2, so its flag is bit 2 (0x04)."""

    DIRTY_MEMORY_MIGRATION = 2


# ---------------------------------------------------------------- rung 16
class DirtyMapNotShrunk:
    """2152f5ca7: the flag bytes are reallocated only when RAM grows past
    its size before the allocation.  Stage 15 reallocated them to
    last_ram_offset() pages at every allocation, so after the end of RAM had
    been freed, a block placed in a gap cut the bytes past the new end.
    (Stage 15's allocation, with its g_realloc under the commit's test.)"""

    def qemu_ram_alloc_from_ptr(self, size: int) -> int:
        old_ram_size = self.machine.last_ram_offset() >> TARGET_PAGE_BITS
        new_block = self.machine.ram_block_add(size)
        size = new_block.length
        new_ram_size = self.machine.last_ram_offset() >> TARGET_PAGE_BITS
        if new_ram_size > old_ram_size:
            self.ram_list.phys_dirty = _g_realloc(self.ram_list.phys_dirty, new_ram_size)
        first = new_block.offset >> TARGET_PAGE_BITS
        self.ram_list.phys_dirty[first:first + (size >> TARGET_PAGE_BITS)] = 0
        self.cpu_physical_memory_set_dirty_range(new_block.offset, size)
        return new_block.offset


# ---------------------------------------------------------------- rung 17
class ClearDirtyFlagVoid:
    """e8a97cafc: cpu_physical_memory_clear_dirty_flag() returns nothing."""

    def cpu_physical_memory_clear_dirty_flag(self, addr: int, client: int) -> None:
        super().cpu_physical_memory_clear_dirty_flag(addr, client)


# ---------------------------------------------------------------- rung 24
class GetDirtyReturnsBool:
    """94833c896: cpu_physical_memory_get_dirty() returns a bool, not an int."""

    def cpu_physical_memory_get_dirty(self, start: int, length: int, client: int) -> bool:
        return bool(super().cpu_physical_memory_get_dirty(start, length, client))


# ---------------------------------------------------------------- rung 27
class XenToldStart:
    """5b9a3a5f7: Xen is told the start of the range set dirty; the page walk
    used to pass its loop variable, left at the aligned end of the range.
    (Stage 26's walk, with ``start`` kept for Xen.)"""

    def cpu_physical_memory_set_dirty_range(self, start: int, length: int) -> None:
        check_range(dirty_pages(self.ram_list), start, length, "cpu_physical_memory_set_dirty_range")
        end = TARGET_PAGE_ALIGN(start + length)
        dirty_memory = self.ram_list.dirty_memory
        addr = start & TARGET_PAGE_MASK
        while addr < end:
            set_bit(addr >> TARGET_PAGE_BITS, dirty_memory[self.DIRTY_MEMORY_MIGRATION])
            set_bit(addr >> TARGET_PAGE_BITS, dirty_memory[self.DIRTY_MEMORY_VGA])
            set_bit(addr >> TARGET_PAGE_BITS, dirty_memory[self.DIRTY_MEMORY_CODE])
            addr += TARGET_PAGE_SIZE
        self.machine.xen_modified_memory(start, length)


# ---------------------------------------------------------------- rung 30
class ZeroLengthReset:
    """a2f4d5bef: a reset of 0 bytes returns at once.  Stage 29 rounded
    ``start`` down and ``end`` up first, so 0 bytes at an unaligned address
    were a whole page: its dirty bit cleared and, under TCG, its TLB entry
    made NOTDIRTY."""

    def cpu_physical_memory_reset_dirty(self, start: int, end: int, client: int) -> None:
        if end - start == 0:
            return
        super().cpu_physical_memory_reset_dirty(start, end, client)


class TlbResetShortRange:
    """a2f4d5bef: the TLB is reset from the rounded-down start over the
    caller's length, not over the rounded length: an unaligned range leaves
    its last page's TLB entry dirty.  (Stage 29's reset_dirty, handing
    tlb_reset_dirty_range_all the length it was asked for.)"""

    def cpu_physical_memory_reset_dirty(self, start: int, end: int, client: int) -> None:
        check_end(dirty_pages(self.ram_list), start, end, "cpu_physical_memory_reset_dirty")
        asked = end - start
        start &= TARGET_PAGE_MASK
        end = TARGET_PAGE_ALIGN(end)
        length = end - start
        if length == 0:
            return
        self.cpu_physical_memory_clear_dirty_range(start, length, client)
        if self.machine.tcg_enabled():
            self.tlb_reset_dirty_range_all(start, end, asked)


class TlbResetRoundsStart:
    """a2f4d5bef: tlb_reset_dirty_range_all rounds ``start`` down to its page
    itself ("move the start/end calculation to tlb_reset_dirty_range_all()").
    Stage 29's only caller passed it a rounded start; called directly with an
    unaligned one, it reset the TLB from that address, not from the page."""

    def tlb_reset_dirty_range_all(self, start: int, end: int, length: int) -> None:
        super().tlb_reset_dirty_range_all(start & TARGET_PAGE_MASK, end, length)


# ---------------------------------------------------------------- rung 31
class SetDirtyTrackingVoid:
    """981fdf235: cpu_physical_memory_set_dirty_tracking() returns nothing."""

    def cpu_physical_memory_set_dirty_tracking(self, enable: int) -> None:
        super().cpu_physical_memory_set_dirty_tracking(enable)


# ---------------------------------------------------------------- rung 37
class LebitmapHostPages:
    """ae2810c4b: on a block that starts a word, KVM's log (one bit per host
    page) is ORed word for word into the dirty bitmaps (one bit per target
    page), so bit n marks target page n, not the hpratio pages of host page n.
    (Stage 36's walk, with an hpratio of 1 on such a block.)"""

    def cpu_physical_memory_set_dirty_lebitmap(self, bitmap, start: int, pages: int) -> None:
        if not start_of_word(start):
            return super().cpu_physical_memory_set_dirty_lebitmap(bitmap, start, pages)
        check_lebitmap(dirty_pages(self.ram_list), bitmap, start, pages,
                       self.machine.getpagesize() // TARGET_PAGE_SIZE,
                       "cpu_physical_memory_set_dirty_lebitmap")
        length = (pages + HOST_LONG_BITS - 1) // HOST_LONG_BITS
        for bit in each_set_bit_le(bitmap, length):
            self.cpu_physical_memory_set_dirty_range(start + bit * TARGET_PAGE_SIZE, TARGET_PAGE_SIZE)


class LebitmapXenPages:
    """ae2810c4b: on a block that starts a word, Xen is told once per sync,
    ``(start, pages)``: a count of host pages where a length in bytes
    belongs, even when the log is empty.  The walk told it of each dirty host
    page, through cpu_physical_memory_set_dirty_range; here those calls are
    taken back off the machine's Xen log and the single one made instead."""

    def cpu_physical_memory_set_dirty_lebitmap(self, bitmap, start: int, pages: int) -> None:
        if not start_of_word(start):
            return super().cpu_physical_memory_set_dirty_lebitmap(bitmap, start, pages)
        xen_log = self.machine.xen_log
        told = len(xen_log)
        super().cpu_physical_memory_set_dirty_lebitmap(bitmap, start, pages)
        del xen_log[told:]
        self.machine.xen_modified_memory(start, pages)


# ---------------------------------------------------------------- rung 39
class SyncSkipsTlb:
    """aa8dc0447: on a block that starts a word, the migration sync clears a
    page's migration bit without cpu_physical_memory_reset_dirty, so under
    TCG its TLB entry is not made NOTDIRTY.  (Stage 38's walk, clearing with
    cpu_physical_memory_clear_dirty_range.)"""

    def migration_bitmap_sync_range(self, start: int, length: int) -> None:
        if not start_of_word(start):
            return super().migration_bitmap_sync_range(start, length)
        check_range(min(dirty_pages(self.ram_list), self.migration_bitmap.size * 64), start, length,
                    "migration_bitmap_sync_range")
        addr = 0
        while addr < length:
            if self.cpu_physical_memory_get_dirty(start + addr, TARGET_PAGE_SIZE,
                                                  self.DIRTY_MEMORY_MIGRATION):
                self.cpu_physical_memory_clear_dirty_range(start + addr, TARGET_PAGE_SIZE,
                                                           self.DIRTY_MEMORY_MIGRATION)
                self.migration_bitmap_set_dirty(start + addr)
            addr += TARGET_PAGE_SIZE


class SyncWholeWords:
    """aa8dc0447: on a block that starts a word, the migration sync takes
    whole words, BITS_TO_LONGS(length >> TARGET_PAGE_BITS) of them: the pages
    after the block up to the end of its last word are moved into the
    migration bitmap too (cleared from the dirty bitmap, counted if new),
    with no TLB reset, since the word path does none."""

    def migration_bitmap_sync_range(self, start: int, length: int) -> None:
        super().migration_bitmap_sync_range(start, length)
        if not start_of_word(start):
            return
        first = start >> TARGET_PAGE_BITS
        for page in range(first + (length >> TARGET_PAGE_BITS),
                          first + BITS_TO_LONGS(length >> TARGET_PAGE_BITS) * BITS_PER_LONG):
            addr = page << TARGET_PAGE_BITS
            if self.cpu_physical_memory_get_dirty(addr, TARGET_PAGE_SIZE, self.DIRTY_MEMORY_MIGRATION):
                self.cpu_physical_memory_clear_dirty_range(addr, TARGET_PAGE_SIZE,
                                                           self.DIRTY_MEMORY_MIGRATION)
                self.migration_bitmap_set_dirty(addr)


OVERRIDES: dict[str, type] = {
    cls.__name__: cls for cls in (
        SetDirtyFlagsVoid, IsDirtyThreeFlags, GetDirtyZeroOrOne, SpareBitsNoLongerSet,
        MigrationBitMoves, DirtyMapNotShrunk, ClearDirtyFlagVoid, GetDirtyReturnsBool, XenToldStart, ZeroLengthReset,
        TlbResetShortRange, TlbResetRoundsStart, SetDirtyTrackingVoid, LebitmapHostPages, LebitmapXenPages,
        SyncSkipsTlb, SyncWholeWords)
}

_made: dict[tuple, type] = {}


def with_overrides(rung: int, names: tuple[str, ...]) -> type:
    """Stage ``rung - 1`` with the named overrides in front of it, the first
    outermost: a Stage class the machine runs like any other (made once per
    parent class, so a reloaded stage module gets fresh ones)."""
    parent = stage(rung - 1)
    if not names:
        return parent
    key = (parent, names)
    if key not in _made:
        bases = tuple(OVERRIDES[name] for name in names) + (parent,)
        _made[key] = type(f"Stage{rung - 1:02d}With{''.join(names)}", bases,
                          {"__module__": __name__, "__doc__": f"stage {rung - 1:02d} + {', '.join(names)}"})
    return _made[key]


def bridge(rung: int, register=None) -> type:
    """Stage ``rung - 1`` with the overrides of every register entry of the
    rung, in register order: what stage ``rung`` must equal exactly."""
    from .register import load_register
    entries = [d for d in (register if register is not None else load_register()) if d.rung == rung]
    return with_overrides(rung, tuple(d.override for d in entries))


def entry_stage(entry) -> type:
    """Stage ``entry.rung - 1`` with this entry's override alone."""
    return with_overrides(entry.rung, (entry.override,))
