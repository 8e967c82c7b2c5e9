"""Invariants every stage must keep (dirty_ladder/invariants.py), and the register
of the places where a stage breaks one (dirty_ladder/invariants.toml).

For each stage, the register's minimal traces and then generated valid
invariant traces (every config: both accels, both host page sizes, Xen on
and off; the profile's count and seed, see conftest.py) are replayed on the
stage with the three invariants checked.  The test of a stage and an
invariant (ids like ``stage39-no-lost-migration-write``) passes only when the
breaks found are exactly the ones the register records for that stage: a
break (its signature, config included) that no entry records fails, and so
does an entry of that stage that the run no longer finds.  The three tests of
a stage share one exploration.

A second, deterministic test replays each entry's minimal trace on all 40
stages: it must break on exactly the entry's stages.

Run one stage with ``pytest tests/test_invariants.py -k stage39``.
"""

import pytest

from stages import LAST, stage
from dirty_ladder.generate import RandomChooser
from dirty_ladder.invariants import (
    CONFIG_NAMES, INVARIANTS, build_trace, check, entry_stages, judge, load_register, minimize,
    signatures,
)
from dirty_ladder.trace import validate

REGISTER = load_register()
# examples per stage: the profile's (1000 under "ci") divided by this; each
# example is checked for all three invariants at once
SCALE = 1


_explored: dict[tuple, dict] = {}


def _explore(n, random_check):
    """signature -> (trace, first break), for everything found on stage n:
    the breaks of the register's minimal traces, then of ``examples``
    generated traces, trace i built from the seed ``seed * 1_000_003 + i``
    alone (as the random rung check builds its cases; conftest.py says why
    not with Hypothesis).  Kept for the stage's three tests, in any order."""
    key = (n, random_check)
    if key not in _explored:
        found = {}
        cls = stage(n)
        for entry in REGISTER:
            for sig, b in signatures(cls, validate(entry.trace)).items():
                found.setdefault(sig, (validate(entry.trace), b))
        for i in range(max(1, random_check.examples // SCALE)):
            chooser = RandomChooser(random_check.seed * 1_000_003 + i)
            trace = build_trace(chooser, chooser.integer(5, 40))
            for sig, b in signatures(cls, trace).items():
                found.setdefault(sig, (trace, b))
        _explored[key] = found
    return _explored[key]


CASES = [pytest.param(n, inv, id=f"stage{n:02d}-{name}")
         for n in range(LAST + 1) for inv, name in INVARIANTS.items()]


@pytest.mark.parametrize("n, invariant", CASES)
def test_invariant(n, invariant, random_check):
    found = _explore(n, random_check)
    new, missing = judge(n, invariant, found, REGISTER)
    lines = []
    for sig in new:
        trace, b = found[sig]
        small = minimize(stage(n), trace, b.key)
        lines.append(f"NEW BREAK {sig}: {b.detail}\n  minimal trace: {small.as_dict()}")
    lines += [f"recorded break {e.id} ({', '.join(e.signatures)}) was not found" for e in missing]
    assert not lines, f"stage {n}, {INVARIANTS[invariant]}:\n" + "\n".join(lines)


def test_register_is_well_formed():
    ids = [e.id for e in REGISTER]
    assert len(ids) == len(set(ids))
    for e in REGISTER:
        assert e.status in {"series", "before"}, e.id
        assert e.fixed_upstream and e.what and e.why and e.config, e.id
        assert e.stages and all(0 <= n <= LAST for n in e.stages), e.id
        if e.status == "before":
            assert 0 in e.stages, f"{e.id}: QEMU had it before the series, so stage 00 has it"
        for sig in e.signatures:
            key, _, conf = sig.partition("@")
            assert key.split(":")[0] in INVARIANTS, sig
            assert conf == "*" or any(
                all(p in ("*", c) for p, c in zip(conf.split(","), name.split(","))) for name in CONFIG_NAMES), sig
        trace = validate(e.trace)
        assert len(trace.ops) <= 6, f"{e.id}: keep the minimal trace small enough to read"


@pytest.mark.parametrize("entry", [pytest.param(e, id=e.id) for e in REGISTER])
def test_minimal_trace_breaks_on_exactly_the_recorded_stages(entry):
    assert entry_stages(entry) == entry.stages


# ---- the rules of the checker itself, on hand-made traces (stage 38 keeps
# every invariant except those of the entries above)
def _trace(ops, **config):
    return validate({"format": "dirty-trace/1", "config": config, "ops": ops})


SENT = [{"op": "ram_alloc", "size": 8192}, {"op": "migration_setup"},
        {"op": "migration_next", "block": 0, "start": 0}, {"op": "migration_next", "block": 0, "start": 0}]


@pytest.mark.parametrize("write", [
    {"op": "tcg_write", "addr": 4096, "size": 4},
    {"op": "dma_write", "addr": 4096, "len": 8},
    {"op": "stl_phys_notdirty", "addr": 4096},
])
def test_a_write_to_a_sent_page_is_reported(write):
    assert check(stage(38), _trace(SENT + [write])) == []


def test_a_lost_write_is_reported_as_a_break():
    # stage 39's sync keeps the dirty TLB entry of page 0: the store goes direct
    trace = _trace([{"op": "ram_alloc", "size": 8192}, {"op": "tlb_fill", "addr": 0}] + SENT[1:]
                   + [{"op": "tcg_write", "addr": 0, "size": 4}])
    assert [(b.invariant, b.key, b.page) for b in check(stage(39), trace)] == \
        [("migration", "migration:tcg_write:direct-after-sync", 0)]
    assert check(stage(38), trace) == []


def test_a_page_still_pending_when_written_is_reported_by_the_final_walk():
    lost = _trace(SENT + [{"op": "dma_write", "addr": 0, "len": 8192}])
    assert {b.page for b in check(stage(38), lost, ["migration"])} == {1}
    # one migration_next sends page 0 only: page 1 is still pending when written
    pending = _trace(SENT[:3] + [{"op": "dma_write", "addr": 0, "len": 8192}])
    assert check(stage(38), pending, ["migration"]) == []
    # a migration_next after the write sends it
    sent_after = _trace(SENT + [{"op": "dma_write", "addr": 0, "len": 8192},
                                {"op": "dma_write", "addr": 4096, "len": 8},
                                {"op": "migration_next", "block": 0, "start": 0}])
    assert check(stage(38), sent_after, ["migration"]) == []


def test_stl_phys_notdirty_counts_only_while_logging():
    ops = SENT + [{"op": "log_global_stop"}, {"op": "stl_phys_notdirty", "addr": 4094}]
    assert check(stage(38), _trace(ops)) == []
    ops = SENT + [{"op": "stl_phys_notdirty", "addr": 4094}]
    assert {b.key for b in check(stage(38), _trace(ops))} == {"migration:stl_phys_notdirty:later-page"}


def test_writes_count_only_under_their_accel():
    kvm_under_tcg = SENT + [{"op": "kvm_write", "addr": 4096}]
    assert check(stage(38), _trace(kvm_under_tcg)) == []
    assert {b.key for b in check(stage(38), _trace(kvm_under_tcg, accel="kvm"))} == set()
    tcg_under_kvm = [{"op": "ram_alloc", "size": 8192}, {"op": "tlb_fill", "addr": 0}] + SENT[1:] + \
        [{"op": "tcg_write", "addr": 0, "size": 4}]
    assert check(stage(39), _trace(tcg_under_kvm, accel="kvm")) == []
    assert check(stage(39), _trace(tcg_under_kvm)) != []


def test_vga_write_reported_by_test_and_clear_or_forgotten_with_its_block():
    ops = [{"op": "ram_alloc", "size": 8192}, {"op": "ram_alloc", "size": 4096},
           {"op": "test_and_clear_dirty", "addr": 0, "len": 8192, "client": "vga"},
           {"op": "dma_write", "addr": 0, "len": 8192}]
    assert {(b.invariant, b.page) for b in check(stage(38), _trace(ops))} == {("vga", 1)}
    seen = ops + [{"op": "test_and_clear_dirty", "addr": 100, "len": 3000, "client": "vga"}]
    assert {(b.invariant, b.page) for b in check(stage(38), _trace(seen))} == {("vga", 1)}
    seen = ops + [{"op": "test_and_clear_dirty", "addr": 100, "len": 3000, "client": "vga"},
                  {"op": "test_and_clear_dirty", "addr": 4096, "len": 1, "client": "vga"}]
    # a test_and_clear that finds page 1 clean reports nothing: still lost
    assert {(b.invariant, b.page) for b in check(stage(38), _trace(seen))} == {("vga", 1)}
    freed = ops + [{"op": "ram_free", "offset": 0}]
    assert check(stage(38), _trace(freed)) == []


def test_code_break_names_the_op_that_dirtied_a_tb_page():
    trace = validate(next(e for e in REGISTER if e.id == "set-dirty-range-sets-code").trace)
    assert [(b.key, b.index, b.page) for b in check(stage(0), trace)] == [("code:set_dirty", 2, 1)]
