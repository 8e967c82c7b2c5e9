"""The trace builder emits only valid traces, whoever makes its choices."""

from hypothesis import given, settings

from stages import stage
from dirty_ladder.generate import random_trace
from dirty_ladder.machine import replay
from dirty_ladder.trace import validate

from strategies import shrinkable_traces


@settings(max_examples=200)
@given(shrinkable_traces())
def test_hypothesis_choices_give_valid_traces_that_every_stage_runs(trace):
    again = validate(trace.as_dict())          # round trip through the format
    assert again.ops == trace.ops and again.config == trace.config
    for n in (0, 19, 39):
        result = replay(stage(n), trace)
        assert len(result["results"]) == len(trace.ops)


def test_random_trace_is_reproducible_and_valid():
    a, b = random_trace(11, 25), random_trace(11, 25)
    assert a.as_dict() == b.as_dict()
    assert len(a.ops) >= 25 and a.ops[0]["op"] == "ram_alloc"
    assert random_trace(12, 25).as_dict() != a.as_dict()
