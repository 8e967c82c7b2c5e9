"""The ladder: every rung (stage k-1 -> k) compared on generated cases.

For each rung, Hypothesis generates valid traces (machine and representation
levels) and random states with calls (API level).  Every difference is
reduced to its signature (dirty_ladder/rungs.py).  The rung passes only when the
signatures found are all in the divergence register for that rung and every
register entry of the rung is found: an unregistered difference, or a
registered one that the run no longer finds, stays red.

Run one rung with ``pytest -k rung19``; one level with ``-k "rung19 and api"``.
"""

import pytest
from hypothesis import given, settings

from stages import LAST, stage
from dirty_ladder.rungs import Budget, api_finding, api_functions, judge, trace_findings

from strategies import api_cases, traces

RUNGS = [pytest.param(r, id=f"rung{r:02d}") for r in range(1, LAST + 1)]


def _explore_traces(rung):
    """All signatures Hypothesis finds at the machine and repr levels."""
    found, budgets = {}, {"machine": Budget(), "repr": Budget()}

    @settings(phases=("explicit", "generate"))
    @given(traces())
    def run(trace):
        for level in ("machine", "repr"):
            for f in trace_findings(rung, level, trace, budgets[level]):
                found.setdefault(f.signature, f)

    run()
    return found


def _explore_api(rung):
    functions = api_functions(stage(rung - 1), stage(rung))
    found = {}
    if not functions:
        return found

    @settings(phases=("explicit", "generate"))
    @given(api_cases(functions))
    def run(case):
        f = api_finding(rung, case)
        if f is not None:
            found.setdefault(f.signature, f)

    run()
    return found


def _verdict(rung, found, levels):
    new, missing, _ = judge(rung, found, levels)
    lines = [f"NEW DIFFERENCE {f.signature}: {f.detail}\n  minimal trace: "
             f"{f.trace.as_dict() if f.trace else '(api call above)'}" for f in new]
    lines += [f"registered {d.id} ({', '.join(d.signatures)}) was not found" for d in missing]
    assert not lines, f"rung {rung}:\n" + "\n".join(lines)


@pytest.mark.parametrize("rung", RUNGS)
def test_machine_and_representation(rung):
    _verdict(rung, _explore_traces(rung), ("machine", "repr"))


@pytest.mark.parametrize("rung", RUNGS)
def test_api(rung):
    _verdict(rung, _explore_api(rung), ("api",))
