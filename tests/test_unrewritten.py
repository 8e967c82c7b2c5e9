"""Stage 00's functions that no later commit rewrites, against the C.

The ladder's model (dirty_ladder/model.py) says which functions of stage 00
are still stage 00's own code at the last stage: no commit of the series
rewrote them, so they are the code of all 40 stages and no rung check can
see a mistake in them.  ``UNREWRITTEN`` is derived from the model, and
``test_the_unrewritten_functions_are_those_the_model_lists`` fails when the
model lists one these tests do not cover.

Each is checked on every stage against what arch_init.c does at c2d30667
(and, unchanged, at aa8dc0447, the last commit of the series), with expected
values from a plain model: the migration bitmap and the dirty state read as
Python bools, bit by bit, without the ladder's observers or stages/bitmap.py.

- ``migration_bitmap_find_and_reset_dirty(mr, start)``: the offset in ``mr``
  of the first page at or after ``start``'s page whose migration bit is set,
  below the end of ``mr`` (its size rounded up to a page); that bit cleared
  and ``migration_dirty_pages`` one less; else the rounded size of ``mr`` and
  nothing changed.  In the bulk stage (``ram_bulk_stage``, which the machine
  never enters) C does not search: after the first page it takes the page
  after ``start``'s, and clears it and counts it down whether or not it was
  set.
- ``ram_save_setup()``: ``ram_pages = last_ram_offset() >> TARGET_PAGE_BITS``;
  a migration bitmap of ``ram_pages`` bits, every one set, and
  ``migration_dirty_pages = ram_pages``; dirty logging started
  (``in_migration``); then one migration sync, which moves each page's
  migration dirty bit into the bitmap (already set) and clears it, after
  syncing KVM's log.  VGA and CODE keep their bits (plus the pages KVM's log
  marks dirty).  C returns 0 and keeps ``ram_pages`` to itself; the model
  returns ``ram_pages``, which the machine records.
"""

import random

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from stages import LAST, stage
from dirty_ladder.machine import Machine, MemoryRegion
from dirty_ladder.model import api_of, function_history
from dirty_ladder.trace import Config

from oracle import oracle_tests

PAGE = 4096
STAGES = [pytest.param(n, id=f"stage{n:02d}") for n in range(LAST + 1)]
# derived from the model: functions of the last stage whose code is still stage 00's
UNREWRITTEN = sorted(name for name, fn in api_of(LAST).functions.items() if fn.last_changed == 0)


# ---------------------------------------------------------------- the model's own reading of the state
def bools(words) -> list[bool]:
    return [(int(w) >> i) & 1 == 1 for w in words for i in range(64)]


def client_pages(st, client: str, npages: int) -> list[bool]:
    """Is each page below ``npages`` dirty for ``client``: the flag byte's
    bit, or the client's bitmap, read directly."""
    if hasattr(st.ram_list, "dirty_memory"):
        bits = bools(st.ram_list.dirty_memory[getattr(st, "DIRTY_MEMORY_" + client.upper())])
    else:
        flag = getattr(st, client.upper() + "_DIRTY_FLAG", None)
        if flag is None:
            flag = 1 << getattr(st, "DIRTY_MEMORY_" + client.upper())
        bits = [int(b) & flag != 0 for b in st.ram_list.phys_dirty]
    return (bits + [False] * npages)[:npages]


def as_words(bits: list[bool]) -> np.ndarray:
    return np.array([sum(1 << i for i, b in enumerate(bits[k:k + 64]) if b) for k in range(0, len(bits), 64)],
                    dtype=np.uint64)


def machine_with_blocks(n: int, pages: list[int], accel: str = "tcg") -> Machine:
    m = Machine(stage(n), Config(accel=accel))
    for p in pages:
        m.run_op({"op": "ram_alloc", "size": p * PAGE})
    return m


# ---------------------------------------------------------------- migration_bitmap_find_and_reset_dirty
LAYOUTS = [[1], [64], [65], [63, 65], [64, 1, 64], [130], [2, 64, 3]]


@st.composite
def find_cases(draw):
    layout = draw(st.sampled_from(LAYOUTS))
    npages = sum(layout)
    nwords = len(range(0, npages, 64)) + draw(st.integers(0, 1))      # maybe a spare word past RAM
    density = draw(st.sampled_from([0.0, 0.05, 0.5, 1.0]))
    seed = draw(st.integers(0, 2**32))
    rng = random.Random(seed)
    bits = [rng.random() < density for _ in range(nwords * 64)]
    block = draw(st.integers(0, len(layout) - 1))
    size = layout[block] * PAGE
    start = draw(st.one_of(st.sampled_from([0, 1, PAGE - 1, PAGE, 63 * PAGE, 64 * PAGE, 65 * PAGE, size - PAGE,
                                            size, size + PAGE]), st.integers(0, size + PAGE)))
    # a region whose size is not a whole number of pages ends with a part page
    short = draw(st.sampled_from([0, 0, 1, 100, PAGE - 1]))
    return layout, bits, block, max(start, 0), short


def expected_find(bits, base, mr_pages, start, counter, bulk=False):
    """(returned offset, bits after, counter after) as arch_init.c computes them."""
    bits = list(bits)
    nr = base + start // PAGE
    end = base + mr_pages
    if bulk and nr > base:
        found = nr + 1
    else:
        found = next((p for p in range(nr, end) if bits[p]), end)
    if found < end:
        bits[found] = False
        counter -= 1
    return (found - base) * PAGE, bits, counter


@pytest.mark.parametrize("n", STAGES)
def test_migration_bitmap_find_and_reset_dirty_takes_the_next_dirty_page_of_the_region(n):
    @settings(max_examples=max(10, settings.default.max_examples // 40))
    @given(find_cases())
    @example(([64, 1, 64], [False] * 64 + [True] + [False] * 63, 0, 0, 0))   # the next block's page: not found
    @example(([63, 65], [False] * 63 + [True] * 65, 1, 0, 0))                  # a block from page 63
    @example(([65], [False] * 64 + [True] + [False] * 63, 0, 5 * PAGE, 0))     # page 64 of a 65-page block
    @example(([65], [True] * 128, 0, 65 * PAGE, 0))                            # start at the end: none
    @example(([2, 64, 3], [True] * 128, 2, PAGE + 1, 0))                       # unaligned start
    @example(([65], [False] * 64 + [True] + [False] * 63, 0, 0, 1))           # the part page at the end counts
    def check(case):
        layout, bits, block, start, short = case
        m = machine_with_blocks(n, layout)
        st_ = m.stage
        st_.migration_bitmap = as_words(bits)
        st_.migration_dirty_pages = counter = 1000
        b = m.ram_list.blocks[block]
        mr = MemoryRegion(b.offset, b.length - short)
        pages_of_mr = len(range(0, mr.size, PAGE))                  # its size rounded up to a page
        want = expected_find(bits, b.offset // PAGE, pages_of_mr, start, counter)
        got = st_.migration_bitmap_find_and_reset_dirty(mr, start)
        assert (got, bools(st_.migration_bitmap), st_.migration_dirty_pages) == want

    check()


@pytest.mark.parametrize("n", [0, 19, LAST])
@pytest.mark.parametrize("start", [0, 1, PAGE, 62 * PAGE, 63 * PAGE, 64 * PAGE])
def test_migration_bitmap_find_and_reset_dirty_in_the_bulk_stage_takes_the_page_after_start(n, start):
    """C's bulk-stage branch: no search after the first page; the page after
    start's is cleared and counted down, set or not (the machine never
    enters the bulk stage; the code is stage 00's on every stage)."""
    m = machine_with_blocks(n, [64])
    st_ = m.stage
    bits = [p % 3 == 0 for p in range(64)]
    st_.migration_bitmap = as_words(bits)
    st_.migration_dirty_pages = 50
    st_.ram_bulk_stage = True
    want = expected_find(bits, 0, 64, start, 50, bulk=True)
    got = st_.migration_bitmap_find_and_reset_dirty(m.ram_list.blocks[0].mr, start)
    assert (got, bools(st_.migration_bitmap), st_.migration_dirty_pages) == want


@pytest.mark.parametrize("n", [0, 19, LAST])
def test_migration_bitmap_find_and_reset_dirty_refuses_a_negative_start_and_changes_nothing(n):
    m = machine_with_blocks(n, [65])
    st_ = m.stage
    st_.migration_bitmap = as_words([True] * 128)
    st_.migration_dirty_pages = 65
    with pytest.raises(ValueError) as err:
        st_.migration_bitmap_find_and_reset_dirty(m.ram_list.blocks[0].mr, -1)
    assert str(err.value).startswith("migration_bitmap_find_and_reset_dirty: start -0x1 is negative")
    assert bools(st_.migration_bitmap) == [True] * 128 and st_.migration_dirty_pages == 65


# ---------------------------------------------------------------- ram_save_setup
SETUP_LAYOUTS = [[1], [63], [64], [65], [64, 64], [63, 65, 2], [130]]


def _dirty_some(m: Machine, rng: random.Random) -> None:
    """Clean some pages of each client, through the stage's own reset."""
    for b in m.ram_list.blocks:
        for p in range(b.length // PAGE):
            for client in ("vga", "code", "migration"):
                if rng.random() < 0.4:
                    m.run_op({"op": "reset_dirty", "addr": b.offset + p * PAGE, "len": PAGE, "client": client})


@pytest.mark.parametrize("n", STAGES)
@pytest.mark.parametrize("layout", SETUP_LAYOUTS, ids=lambda l: "+".join(map(str, l)))
def test_ram_save_setup_sets_every_page_of_ram_and_takes_the_migration_bits(n, layout):
    m = machine_with_blocks(n, layout)
    _dirty_some(m, random.Random(len(layout) * 1000 + sum(layout)))
    ram_pages = sum(layout)
    st_ = m.stage
    before = {c: client_pages(st_, c, ram_pages) for c in ("vga", "code")}
    assert st_.ram_save_setup() == ram_pages
    words = len(range(0, ram_pages, 64))
    assert st_.migration_bitmap.dtype == np.uint64 and st_.migration_bitmap.shape == (words,)
    assert bools(st_.migration_bitmap) == [True] * ram_pages + [False] * (64 * words - ram_pages)
    assert st_.migration_dirty_pages == ram_pages
    assert st_.in_migration
    assert client_pages(st_, "migration", ram_pages) == [False] * ram_pages
    assert {c: client_pages(st_, c, ram_pages) for c in ("vga", "code")} == before


@pytest.mark.parametrize("n", STAGES)
def test_ram_save_setup_under_kvm_syncs_the_log_first(n):
    """Under KVM the sync first reads KVM's log: its pages become dirty for
    every client (memory_region_set_dirty), then lose their migration bit."""
    m = machine_with_blocks(n, [64, 65], accel="kvm")
    for b in m.ram_list.blocks:
        m.run_op({"op": "reset_dirty", "addr": b.offset, "len": b.length, "client": "vga"})
        m.run_op({"op": "reset_dirty", "addr": b.offset, "len": b.length, "client": "code"})
    for page in (0, 63, 64, 100, 128):
        m.run_op({"op": "kvm_write", "addr": page * PAGE})
    st_ = m.stage
    assert st_.ram_save_setup() == 129
    logged = [p in (0, 63, 64, 100, 128) for p in range(129)]
    assert client_pages(st_, "vga", 129) == logged and client_pages(st_, "code", 129) == logged
    assert client_pages(st_, "migration", 129) == [False] * 129
    assert st_.migration_dirty_pages == 129 and bools(st_.migration_bitmap)[:129] == [True] * 129


# ---------------------------------------------------------------- the list, from the model
def test_the_unrewritten_functions_are_those_the_model_lists():
    assert UNREWRITTEN, "the model lists no stage 00 function that the series left alone"
    covered = sorted(name for name in UNREWRITTEN if oracle_tests(globals(), name))
    assert covered == UNREWRITTEN, f"not covered here: {sorted(set(UNREWRITTEN) - set(covered))}"
    for name in UNREWRITTEN:
        # git log -L of the ladder: present before the series and never changed
        assert [(h["stage"], h["change"]) for h in function_history(name)] == [(0, "present before the series")]


# ---------------------------------------------------------------- README's table
def test_the_readme_names_the_test_guarding_each_shared_function():
    """README's "What adjacent checking cannot see" has a row per shared
    function (every public one of bitmap.py and common.py, and the stage 00
    functions the model lists as unrewritten), each naming tests that exist."""
    import re
    from pathlib import Path

    from stages import bitmap, common

    from oracle import public_functions

    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text(encoding="utf-8")
    section = readme.split("## What adjacent checking cannot see", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(bitmap|common|s00)\.(\w+)` \| (tests/\w+\.py): (.+) \|$", section, re.MULTILINE)
    named = sorted(f"{module}.{name}" for module, name, _, _ in rows)
    want = sorted([f"bitmap.{f}" for f in public_functions(bitmap)] + [f"common.{f}" for f in public_functions(common)]
                  + [f"s00.{f}" for f in UNREWRITTEN])
    assert named == want, f"README lacks {sorted(set(want) - set(named))}, names {sorted(set(named) - set(want))}"
    for module, name, path, tests in rows:
        text = (root / path).read_text(encoding="utf-8")
        for test in re.findall(r"`(\w+)`", tests):
            assert re.search(rf"^def {test}\(", text, re.MULTILINE), f"{module}.{name}: {path} has no {test}"
            assert test.startswith(f"test_{name}_"), f"{module}.{name}: {test} is not one of its tests"
