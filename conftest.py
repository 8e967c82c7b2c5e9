"""Test configuration: Hypothesis profiles, chosen by DIRTY_LADDER_PROFILE.

- ``ci`` (the default): derandomized, so every run explores the same cases;
  enough examples per rung for the rung tests to find every registered
  divergence.
- ``deep``: many more examples, randomized; for a long run before a release
  (``DIRTY_LADDER_PROFILE=deep python -m pytest``).

DIRTY_LADDER_EXAMPLES overrides the number of examples per rung and level.
A bad value of either stops pytest before it collects anything, in one line
(``dirty-ladder check`` reads them the same way: dirty_ladder.rungs.environment_profile).
"""

import os

import pytest
from hypothesis import HealthCheck, settings

from dirty_ladder.rungs import PROFILES, environment_profile

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
               database=None, print_blob=True)
settings.register_profile("ci", max_examples=PROFILES["ci"], derandomize=True, **_common)
settings.register_profile("deep", max_examples=PROFILES["deep"], **_common)


def pytest_configure(config):
    try:
        profile, examples = environment_profile(os.environ)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    settings.load_profile(profile)
    if examples is not None:
        settings.register_profile("override", parent=settings.get_profile(profile), max_examples=examples)
        settings.load_profile("override")
