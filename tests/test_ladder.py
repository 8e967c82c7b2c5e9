"""The random check of every rung (stage N-1 -> N) on generated cases.

For each rung, Hypothesis generates valid traces (machine and representation
levels) and random dirty states with calls (API level); each case runs on
stage N-1, stage N-1 with each register entry's override, the bridge and
stage N side by side (dirty_ladder/compare.py).  The rung passes only when
the bridge and stage N never differ, each override differs from stage N-1
only where its entry says, and every entry the ci scope finds is found here
too.  tests/test_explore.py checks the same exhaustively, within the ci
scope and, for the entries that need more, within a scope of their own.

Run one rung with ``pytest -k rung19``; one level with ``-k "rung19 and api"``.
"""

import pytest
from hypothesis import given, settings

from stages import LAST
from dirty_ladder.compare import problems
from dirty_ladder.rungs import Collector

from strategies import api_cases, traces

RUNGS = [pytest.param(r, id=f"rung{r:02d}") for r in range(1, LAST + 1)]


def _verdict(collector):
    result = collector.result(lambda entry: entry.scope == "ci")
    assert result.ok, f"rung {collector.rung} ({result.how}):\n" + "\n".join(problems(result))


@pytest.mark.parametrize("rung", RUNGS)
def test_machine_and_representation(rung):
    collector = Collector(rung, ("machine", "repr"))

    @settings(phases=("explicit", "generate"))
    @given(traces())
    def run(trace):
        collector.add_trace(trace)

    run()
    _verdict(collector)


@pytest.mark.parametrize("rung", RUNGS)
def test_api(rung):
    collector = Collector(rung, ("api",))
    if not collector.functions:
        pytest.skip(f"stages {rung - 1} and {rung} have no function in common with the same parameters")

    @settings(phases=("explicit", "generate"))
    @given(api_cases(collector.functions))
    def run(case):
        collector.add_case(case)

    run()
    _verdict(collector)
