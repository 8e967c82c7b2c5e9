"""Every entry of the divergence register still shows its difference: its
shortest trace (or call) makes its override alone differ from stage N-1 at
one of the entry's signatures, while the rung's bridge and stage N agree on
it; and the register is well formed."""

import pytest
from hypothesis import given, settings

from stages import LAST, stage
from dirty_ladder.bridges import OVERRIDES, bridge, entry_stage
from dirty_ladder.compare import LEVELS, api_case, compare_case, follow
from dirty_ladder.explore import builtin_scopes
from dirty_ladder.machine import Machine
from dirty_ladder.register import STATUSES, load_register, parse_signature, signature_matches
from dirty_ladder.trace import validate
from strategies import traces

ENTRIES = load_register()


def test_register_is_well_formed():
    ids = [d.id for d in ENTRIES]
    assert len(ids) == len(set(ids))
    for d in ENTRIES:
        assert 1 <= d.rung <= LAST
        assert d.status in STATUSES
        assert d.override in OVERRIDES, d.id
        assert d.scope in builtin_scopes(), d.id
        assert d.trace or d.call, d.id
        assert d.signatures and all(parse_signature(s)[0] in LEVELS for s in d.signatures), d.id
        if d.status == "bug":
            assert d.fixed_upstream, d.id


def _matches(d, found):
    return [x for x in found.values() if any(signature_matches(s, x.level, x.place, x.config_dicts)
                                             for s in d.signatures)]


@pytest.mark.parametrize("d", [pytest.param(d, id=f"rung{d.rung:02d}-{d.id}") for d in ENTRIES if d.trace])
def test_shortest_trace_reproduces(d):
    trace = validate(d.trace)
    found = follow([stage(d.rung - 1), entry_stage(d)], [(0, 1)], trace)
    assert _matches(d, found), f"{d.id}: its trace shows {[x.signature for x in found.values()]}"
    assert not follow([bridge(d.rung), stage(d.rung)], [(0, 1)], trace), "the bridge and the stage differ"
    assert len(trace.ops) <= 7, "keep the trace small enough to read"


@pytest.mark.parametrize("d", [pytest.param(d, id=f"rung{d.rung:02d}-{d.id}") for d in ENTRIES if d.call])
def test_call_reproduces(d):
    case = api_case(d.call)
    found = compare_case([stage(d.rung - 1), entry_stage(d)], [(0, 1)], case)
    assert _matches(d, found), f"{d.id}: its call shows {[x.signature for x in found.values()]}"
    assert not compare_case([bridge(d.rung), stage(d.rung)], [(0, 1)], case)



def _shown_by(d, kind, reproducer):
    """The signatures of ``d`` that one of its reproducers shows (its
    override alone against stage N-1), checking that the bridge and stage N
    agree on it."""
    pair = [stage(d.rung - 1), entry_stage(d)]
    if kind == "trace":
        trace = validate(reproducer)
        found = follow(pair, [(0, 1)], trace)
        assert not follow([bridge(d.rung), stage(d.rung)], [(0, 1)], trace), f"{d.id}: the bridge and the stage differ"
    else:
        case = api_case(reproducer)
        found = compare_case(pair, [(0, 1)], case)
        assert not compare_case([bridge(d.rung), stage(d.rung)], [(0, 1)], case), f"{d.id}: the bridge and the stage differ"
    return {s for s in d.signatures
            if any(signature_matches(s, x.level, x.place, x.config_dicts) for x in found.values())}


@pytest.mark.parametrize("d", [pytest.param(d, id=f"rung{d.rung:02d}-{d.id}") for d in ENTRIES])
def test_an_entry_s_reproducers_together_show_every_place_it_lists(d):
    """The random check replays these before its generated cases
    (dirty_ladder/rungs.py), so they must reach every signature; each of
    more_traces and more_calls must show a place that the reproducers before
    it do not (none is there for nothing)."""
    shown = set()
    for kind, reproducer in [("trace", t) for t in d.traces] + [("call", c) for c in d.calls]:
        mine = _shown_by(d, kind, reproducer)
        assert mine, f"{d.id}: its {kind} {reproducer} shows none of its places"
        if reproducer is not d.trace and reproducer is not d.call:
            assert mine - shown, f"{d.id}: {kind} {reproducer} shows nothing the others do not"
        shown |= mine
    assert shown == set(d.signatures), f"{d.id}: no reproducer shows {sorted(set(d.signatures) - shown)}"


SPARE_BITS = 0xFF & ~0x0B        # the five bits of the flag byte no client uses (stages 00-13)


def _pages_missing_spare_bits(machine):
    pd = machine.ram_list.phys_dirty
    return [page for b in machine.ram_list.blocks
            for page in range(b.offset >> 12, (b.offset + b.length) >> 12)
            if pd[page] & SPARE_BITS != SPARE_BITS]


@settings(max_examples=150, deadline=None)
@given(trace=traces())
def test_rung07_no_block_page_loses_its_spare_bits_before_stage_11(trace):
    """Why is-dirty-three-flags never shows on the machine: from allocation
    on, every page of every block has the five spare bits set at stages
    00-10, so 'three client flags' and 'byte == 0xff' agree there."""
    for n in range(11):
        m = Machine(stage(n), trace.config)
        for op in trace.ops:
            m.run_op(op)
            assert _pages_missing_spare_bits(m) == [], (n, op)


def test_rung07_stage_11_allocates_without_spare_bits():
    """The check above can fail: at stage 11 a new block has client bits only."""
    trace = validate({"format": "dirty-trace/1", "ops": [{"op": "ram_alloc", "size": 8192}]})
    m = Machine(stage(11), trace.config)
    m.run_op(trace.ops[0])
    assert _pages_missing_spare_bits(m) == [0, 1]
