"""Test configuration: the profiles of the random checks and of Hypothesis,
chosen by DIRTY_LADDER_PROFILE.

- ``ci`` (the default): the random rung and invariant checks run 1000
  examples per rung (or stage) and level from seed 0; Hypothesis's property
  tests are derandomized.  Every run checks the same cases.
- ``deep``: 5000 examples from a new seed each run (printed in the header),
  and randomized property tests; for a long run before a release
  (``DIRTY_LADDER_PROFILE=deep python -m pytest``).

DIRTY_LADDER_EXAMPLES overrides the number of examples per rung and level;
DIRTY_LADDER_SEED sets the seed of the random checks (to replay a run).  A
bad value of any of them stops pytest before it collects anything, in one
line (``dirty-ladder check`` reads the first two the same way:
dirty_ladder.rungs.environment_profile).

The random checks (tests/test_ladder.py, tests/test_invariants.py) build
their cases with the project's own seeded generator (dirty_ladder.generate's
RandomChooser), not with Hypothesis: since 6.131 Hypothesis draws some of
its values from the constants of every local module imported so far, so its
derandomized examples depended on which other test files had been collected
(``pytest tests/test_ladder.py tests/test_explore.py -k rung30`` ran other
cases than ``pytest tests/test_ladder.py -k rung30``).  A check that must
find something takes its cases from (seed, index) alone.
"""

import os
import random
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, settings

from dirty_ladder.rungs import PROFILES, environment_profile

# A bad value is said by pytest_configure (pytest.UsageError: one line); an
# exception raised here, while pytest imports this file, would be a traceback.
try:
    PROFILE, _EXAMPLES = environment_profile(os.environ)
    PROBLEM = None
except ValueError as exc:
    PROFILE, _EXAMPLES, PROBLEM = "ci", None, str(exc)
if PROBLEM is None and os.environ.get("DIRTY_LADDER_SEED"):
    try:
        int(os.environ["DIRTY_LADDER_SEED"], 10)
    except ValueError:
        PROBLEM = f"DIRTY_LADDER_SEED={os.environ['DIRTY_LADDER_SEED']!r}: give a whole number"
EXAMPLES = _EXAMPLES or PROFILES[PROFILE]

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
               database=None, print_blob=True)
settings.register_profile("ci", max_examples=PROFILES["ci"], derandomize=True, **_common)
settings.register_profile("deep", max_examples=PROFILES["deep"], **_common)
settings.load_profile(PROFILE)
if _EXAMPLES is not None:
    settings.register_profile("override", parent=settings.get_profile(PROFILE), max_examples=EXAMPLES)
    settings.load_profile("override")


@dataclass(frozen=True)
class RandomCheck:
    """How many cases the random checks run per rung (or stage) and level,
    and from which seed: case i is built from ``seed * 1_000_003 + i``,
    as ``dirty-ladder check --seed`` builds it."""
    examples: int
    seed: int

    def replay(self, rung: int, level: str) -> str:
        """The command that runs the same random check of a rung."""
        return f"dirty-ladder check {rung} --level {level} --examples {self.examples} --seed {self.seed}"


def pytest_configure(config):
    if PROBLEM is not None:
        raise pytest.UsageError(PROBLEM)
    # The seed is chosen once, in the main process: pytest-xdist's workers,
    # started after this hook, inherit it through the environment.
    if not os.environ.get("DIRTY_LADDER_SEED"):
        os.environ["DIRTY_LADDER_SEED"] = "0" if PROFILE == "ci" else str(random.SystemRandom().randrange(2**32))


def pytest_report_header(config):
    return (f"dirty-ladder: profile {PROFILE}, random checks {EXAMPLES} examples per rung and level "
            f"from seed {os.environ['DIRTY_LADDER_SEED']} (DIRTY_LADDER_SEED={os.environ['DIRTY_LADDER_SEED']} "
            f"replays them)")


@pytest.fixture(scope="session")
def random_check() -> RandomCheck:
    return RandomCheck(EXAMPLES, int(os.environ["DIRTY_LADDER_SEED"]))
