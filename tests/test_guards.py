"""Checks for the stage code that no other outside check executes.

The rung checks compare neighbours, so they cannot see a mistake that both
neighbours share: one in stages/bitmap.py or stages/common.py, which every
stage uses, or in stage 00 code that no commit rewrites.  tools/guards.py
measures which lines of stages/*.py the checks that look outside the
ladder (conformance, the direct API tests, misuse, the invariants) execute;
the tests below cover what it found none of them executing.  They are the
refusals of the shared helpers, reached only when a caller passes what its
own checks would have caught first, or when the state is one no trace
builds (a block longer than the migration bitmap, a KVM log shorter than its
section).  Every expected value is worked out from the C (QEMU's
include/qemu/bitmap.h, util/bitops.c, arch_init.c, kvm-all.c of each
commit) or from the refusal rules of README's "Misuse of the API", not from
running the code under test.
"""

import numpy as np
import pytest

from stages import LAST, stage
from stages import bitmap          # not its test_bit by name: pytest would collect it
from dirty_ladder.machine import Machine, MemoryRegionSection
from dirty_ladder.views import CLIENTS, load_dirty, raw_state

STAGES = [pytest.param(n, id=f"stage{n:02d}") for n in range(LAST + 1)]
PAGE = 4096
TOP = 1 << 64                     # the first value a ram_addr_t cannot hold


def _words():
    """Two words, bit 127 set: a bit that -1, wrapped by numpy, would reach."""
    return np.array([0, 1 << 63], dtype=np.uint64)


# ---- stages/bitmap.py ----------------------------------------------------------------
# C would touch a word outside the array; numpy would take -1 as the last
# word.  Refused with IndexError naming the bit, before anything is written.

@pytest.mark.parametrize("helper", [bitmap.test_bit, bitmap.set_bit, bitmap.clear_bit, bitmap.test_and_set_bit],
                         ids=lambda f: f.__name__)
@pytest.mark.parametrize("nr", [-1, 128])
def test_single_bit_helpers_refuse_a_bit_outside_the_bitmap(helper, nr):
    words = _words()
    with pytest.raises(IndexError, match=rf"bit {nr} is outside the bitmap of 128 bits"):
        helper(nr, words)
    assert words.tolist() == [0, 1 << 63]


@pytest.mark.parametrize("helper", [bitmap.bitmap_set, bitmap.bitmap_clear], ids=lambda f: f.__name__)
@pytest.mark.parametrize("start, nr", [(-1, 2), (0, -1), (120, 9), (128, 1)])
def test_range_helpers_refuse_a_range_outside_the_bitmap(helper, start, nr):
    words = _words()
    with pytest.raises(IndexError, match=rf"{helper.__name__}: bits \[{start}, {start + nr}\) are outside"):
        helper(words, start, nr)
    assert words.tolist() == [0, 1 << 63]


@pytest.mark.parametrize("helper", [bitmap.bitmap_set, bitmap.bitmap_clear], ids=lambda f: f.__name__)
def test_range_helpers_take_an_empty_range_at_the_end(helper):
    words = _words()
    helper(words, 128, 0)
    assert words.tolist() == [0, 1 << 63]


def test_find_next_bit_refuses_a_negative_offset():
    with pytest.raises(IndexError, match="negative offset -1"):
        bitmap.find_next_bit(_words(), 128, -1)


def test_find_next_bit_refuses_a_size_past_the_bitmap():
    # util/bitops.c reads the words up to BITS_TO_LONGS(size): the third is not there
    with pytest.raises(IndexError, match="size 192 is past the bitmap of 128 bits"):
        bitmap.find_next_bit(np.zeros(2, dtype=np.uint64), 192, 64)


def test_find_next_bit_at_or_past_size_reads_nothing():
    # util/bitops.c: "if (offset >= size) return size;" before any word is read
    assert bitmap.find_next_bit(_words(), 10, 10) == 10
    assert bitmap.find_next_bit(_words(), 10, 500) == 10


def test_bitmap_new_refuses_a_negative_size():
    with pytest.raises(ValueError, match="nbits -1 is negative"):
        bitmap.bitmap_new(-1)


def test_bit_mask_and_ctpopl():
    # bitops.h: BIT_MASK(nr) = 1UL << (nr % BITS_PER_LONG); ctpopl counts the
    # set bits of a long.  No stage calls them; an exercise may (aa8dc0447,
    # stage 39, counts new bits with ctpopl).
    assert [bitmap.BIT_MASK(nr) for nr in (0, 5, 63, 64, 130)] == [1, 32, 1 << 63, 1, 4]
    assert [bitmap.ctpopl(w) for w in (0, 1, 0b1011, (1 << 64) - 1, (1 << 63) | 1)] == [0, 1, 3, 64, 2]


# ---- stage code handed a state no trace builds ---------------------------------------

def _state(m):
    st = m.stage
    migration = None if st.migration_bitmap is None else st.migration_bitmap.tobytes()
    return raw_state(st), migration, st.migration_dirty_pages, dict(m.tlb), [list(x) for x in m.xen_log]


def _each_refused(m, calls, exception, message):
    """Every call in ``calls`` raises ``exception`` matching ``message`` (a
    pattern that may use {name}) and leaves the whole machine as it was."""
    st = m.stage
    for name, args in calls.items():
        before = _state(m)
        with pytest.raises(exception, match=message.format(name=name)):
            getattr(st, name)(*args)
        assert _state(m) == before, name


@pytest.mark.parametrize("n", STAGES)
def test_find_and_reset_dirty_refuses_a_block_past_the_migration_bitmap(n):
    # arch_init.c (every stage): find_next_bit(migration_bitmap, size, nr)
    # with size the block's end, in pages.  A block put in after
    # ram_save_setup may end past the bitmap of ram_pages bits, and C would
    # read past it; here the block of 64 pages is freed and one of 128
    # takes its place, its first 64 pages clean in the bitmap.
    m = Machine(stage(n))
    st = m.stage
    st.qemu_ram_alloc_from_ptr(64 * PAGE)
    st.ram_save_setup()
    m.ram_free(0)
    st.qemu_ram_alloc_from_ptr(128 * PAGE)
    st.migration_bitmap[:] = 0
    st.migration_dirty_pages = 0
    before = _state(m)
    with pytest.raises(IndexError, match="past the bitmap of 64 bits"):
        st.migration_bitmap_find_and_reset_dirty(m.ram_list.blocks[0].mr, 0)
    assert _state(m) == before


def _clean(n, *blocks):
    """A machine with blocks of the given numbers of pages, clean for every client."""
    m = Machine(stage(n))
    for pages in blocks:
        m.stage.qemu_ram_alloc_from_ptr(pages * PAGE)
    load_dirty(m.stage, {c: np.zeros(sum(blocks), dtype=bool) for c in CLIENTS})
    m.xen_log.clear()
    return m


def _region_calls(st, mr, addr, size):
    """The functions that take an address relative to a MemoryRegion."""
    client = st.DIRTY_MEMORY_VGA
    return {
        "memory_region_get_dirty": (mr, addr, size, client),
        "memory_region_set_dirty": (mr, addr, size),
        "memory_region_test_and_clear_dirty": (mr, addr, size, client),
        "memory_region_reset_dirty": (mr, addr, size, client),
        "kvm_get_dirty_pages_log_range": (MemoryRegionSection(mr, addr, size), np.zeros(1, dtype=np.uint64)),
    }


@pytest.mark.parametrize("n", STAGES)
def test_region_address_that_wraps_round_with_ram_addr(n):
    # memory.c computes mr->ram_addr + addr in a ram_addr_t: an addr that
    # fits in 64 bits but wraps round with the block's ram_addr is no
    # address (ValueError); one whose sum is the last ram_addr_t is past
    # the dirty memory (IndexError).  Nothing may change either way.
    m = _clean(n, 64, 64)
    st = m.stage
    mr = next(b for b in m.ram_list.blocks if b.offset).mr
    wraps = TOP - mr.ram_addr                 # mr->ram_addr + addr == 2**64
    last = TOP - 1 - mr.ram_addr              # mr->ram_addr + addr == 2**64 - 1
    _each_refused(m, _region_calls(st, mr, wraps, 1), ValueError, r"^{name}: .*overflows")
    _each_refused(m, _region_calls(st, mr, last, 1), IndexError, r"^{name}: .*past the end of the dirty memory")


@pytest.mark.parametrize("n", STAGES)
def test_kvm_log_shorter_than_its_range(n):
    # kvm-all.c reads BITS_TO_LONGS(pages) words of the log, one bit per host
    # page (cpu_physical_memory_set_dirty_lebitmap from 5ff7fb77b, stage
    # 36): a log of one word for 128 pages would be read past its end.  Its
    # first word alone is good, bit 0 set, so a function that went ahead
    # would dirty page 0 (and from stage 37, whose fast path ORs whole
    # words, page 64 too).
    m = _clean(n, 128)
    block = m.ram_list.blocks[0]
    log = np.ones(1, dtype=np.uint64)
    calls = {"kvm_get_dirty_pages_log_range": (MemoryRegionSection(block.mr, 0, 128 * PAGE), log)}
    if n >= 36:
        calls["cpu_physical_memory_set_dirty_lebitmap"] = (log, 0, 128)
    _each_refused(m, calls, IndexError, r"^{name}: bitmap has 1 words, 128 pages need 2")


# ---- before the first block ----------------------------------------------------------

@pytest.mark.parametrize("n", STAGES)
def test_no_dirty_state_before_the_first_block(n):
    # ram_list.phys_dirty (stages 00-18) and ram_list.dirty_memory[] (1ab4c8cea,
    # stage 19 on) are fields of a static struct: NULL until the first
    # qemu_ram_alloc_from_ptr reallocates them.  Before any block there is no
    # page of dirty state, and C reading page 0 would dereference NULL:
    # refused, as a range past the dirty state is (README, "Misuse of the API").
    st = Machine(stage(n)).stage
    assert raw_state(st) == (b"" if n < 19 else b"|" * 3)
    flag = getattr(st, "VGA_DIRTY_FLAG", None)
    flag = st.DIRTY_MEMORY_VGA if flag is None else flag
    with pytest.raises(IndexError, match=r"^cpu_physical_memory_get_dirty: .*past the end of the dirty "
                                         r"memory \(0 pages\)"):
        st.cpu_physical_memory_get_dirty(0, PAGE, flag)
