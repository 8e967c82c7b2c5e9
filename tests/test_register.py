"""Every entry of the divergence register still shows its difference: its
minimal trace (or call) differs between its rung's two stages, with one of
the entry's signatures, and agrees on every other rung it is not about."""

import pytest

from stages import LAST
from dirty_ladder.rungs import api_case, api_finding, load_register, trace_finding
from dirty_ladder.trace import validate

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
