"""Every entry of the divergence register still shows its difference: its
minimal trace (or call) differs between its rung's two stages, with one of
the entry's signatures, and agrees on every other rung it is not about."""

import pytest
from hypothesis import given, settings

from stages import LAST, stage
from dirty_ladder.machine import Machine
from dirty_ladder.rungs import api_case, api_finding, load_register, trace_finding
from dirty_ladder.trace import validate
from strategies import traces

ENTRIES = load_register()


def test_register_is_well_formed():
    ids = [d.id for d in ENTRIES]
    assert len(ids) == len(set(ids))
    for d in ENTRIES:
        assert 1 <= d.rung <= LAST
        assert d.status in {"intended", "fix", "bug", "benign"}
        assert d.trace or d.call, d.id
        assert all(s.split(":")[0] in {"machine", "api", "repr"} for s in d.signatures)
        if d.status == "bug":
            assert d.fixed_upstream, d.id


@pytest.mark.parametrize("d", [pytest.param(d, id=f"rung{d.rung:02d}-{d.id}") for d in ENTRIES if d.trace])
def test_minimal_trace_reproduces(d):
    trace = validate(d.trace)
    found = [f for f in (trace_finding(d.rung, lv, trace) for lv in ("machine", "repr")) if f]
    assert found, f"{d.id}: its trace no longer differs at rung {d.rung}"
    assert any(f.signature in d.signatures for f in found), [f.signature for f in found]
    assert len(trace.ops) <= 6, "keep the minimal trace small enough to read"


@pytest.mark.parametrize("d", [pytest.param(d, id=f"rung{d.rung:02d}-{d.id}") for d in ENTRIES if d.call])
def test_minimal_call_reproduces(d):
    f = api_finding(d.rung, api_case(d.call))
    assert f is not None and f.signature in d.signatures, f and f.signature


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
