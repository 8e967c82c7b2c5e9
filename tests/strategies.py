"""Hypothesis strategies: valid traces and API cases, built by the same
builders the command line uses, with Hypothesis making every choice (so
failures shrink)."""

from hypothesis import strategies as st

from dirty_ladder.generate import RandomChooser, build_trace


class HypothesisChooser:
    def __init__(self, data):
        self.data = data

    def integer(self, lo, hi):
        return self.data.draw(st.integers(lo, hi))

    def choice(self, options):
        return self.data.draw(st.sampled_from(list(options)))


@st.composite
def shrinkable_traces(draw, max_ops=40):
    """Every choice drawn from Hypothesis: shrinks well, but Hypothesis's
    bias towards small and first choices leaves the corners of the trace
    space rarely visited."""
    chooser = HypothesisChooser(_Drawer(draw))
    return build_trace(chooser, chooser.integer(3, max_ops))


@st.composite
def traces(draw, max_ops=40):
    """A trace from a drawn seed: the builder's own, even spread of choices,
    for properties that must hold on every trace.  (A check that must find
    something, like the random rung check, takes its seeds from the profile
    instead: see conftest.py.)"""
    chooser = RandomChooser(draw(st.integers(0, 2**63 - 1)))
    return build_trace(chooser, chooser.integer(3, max_ops))


class _Drawer:
    """Adapts a composite's ``draw`` to the ``data.draw`` interface."""

    def __init__(self, draw):
        self.draw = draw
