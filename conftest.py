"""Test configuration: Hypothesis profiles, chosen by DIRTY_LADDER_PROFILE.

- ``ci`` (the default): derandomized, so every run explores the same cases;
  enough examples per rung for the rung tests to find every registered
  divergence.
- ``deep``: many more examples, randomized; for a long run before a release
  (``DIRTY_LADDER_PROFILE=deep python -m pytest``).

DIRTY_LADDER_EXAMPLES overrides the number of examples per rung and level.
"""

import os

from hypothesis import HealthCheck, settings

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
               database=None, print_blob=True)
settings.register_profile("ci", max_examples=1000, derandomize=True, **_common)
settings.register_profile("deep", max_examples=5000, **_common)
settings.load_profile(os.environ.get("DIRTY_LADDER_PROFILE", "ci"))
if os.environ.get("DIRTY_LADDER_EXAMPLES"):
    settings.register_profile("override", parent=settings.get_profile(settings._current_profile),
                              max_examples=int(os.environ["DIRTY_LADDER_EXAMPLES"]))
    settings.load_profile("override")
