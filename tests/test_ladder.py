"""The random check of every rung (stage N-1 -> N) on generated cases.

For each rung, the rung's register entries' own traces and calls are
replayed, then valid traces (machine and representation levels) and random
dirty states with calls (API level) are generated; each case runs on stage
N-1, stage N-1 with each register entry's override, the bridge and stage N
side by side (dirty_ladder/compare.py).  The rung passes only when the
bridge and stage N never differ, each override differs from stage N-1 only
where its entry says, and every entry the ci scope finds is found here too.
tests/test_explore.py checks the same exhaustively, within the ci scope and,
for the entries that need more, within a scope of their own.

The cases come from dirty_ladder.rungs.check_rung, the check that
``dirty-ladder check N`` runs: case i from the seed ``seed * 1_000_003 + i``,
with the count and seed of the profile (conftest.py); a failure names the
command that replays it.  Nothing else a test run imports or runs changes them.

Run one rung with ``pytest -k rung19``; one level with ``-k "rung19 and api"``.
"""

import pytest

from stages import LAST
from dirty_ladder.compare import problems
from dirty_ladder.register import load_register
from dirty_ladder.rungs import Collector, check_rung

RUNGS = [pytest.param(r, id=f"rung{r:02d}") for r in range(1, LAST + 1)]


def _in_ci_scope(entry):
    return entry.scope == "ci"


def _verdict(result, random_check, level):
    assert result.ok, (f"rung {result.rung} ({result.how}):\n" + "\n".join(problems(result))
                       + f"\nreplay with: {random_check.replay(result.rung, level)}")


@pytest.mark.parametrize("rung", RUNGS)
def test_machine_and_representation(rung, random_check):
    result = check_rung(rung, random_check.examples, random_check.seed, ("machine", "repr"),
                        require_found=_in_ci_scope)
    assert result.how.startswith(f"{random_check.examples} random traces")
    _verdict(result, random_check, "machine --level repr")


@pytest.mark.parametrize("rung", RUNGS)
def test_api(rung, random_check):
    if not Collector(rung, ("api",)).functions:
        pytest.skip(f"stages {rung - 1} and {rung} have no function in common with the same parameters")
    result = check_rung(rung, random_check.examples, random_check.seed, ("api",), require_found=_in_ci_scope)
    assert result.how.startswith(f"{random_check.examples} random API calls")
    _verdict(result, random_check, "api")


DIVERGING = sorted({e.rung for e in load_register()})


@pytest.mark.parametrize("rung", [pytest.param(r, id=f"rung{r:02d}") for r in DIVERGING])
def test_the_register_s_own_reproducers_find_every_entry_without_a_generated_case(rung):
    """With no generated case at all, the replay of the entries' traces and
    calls finds every place of every entry (its scope ci or not): the random
    check never needs luck to reach a register entry."""
    result = check_rung(rung, 0, 0, require_found=True)
    assert result.how.startswith("no examples, after the register's")
    assert result.ok, f"rung {rung} ({result.how}):\n" + "\n".join(problems(result))
    assert all(e.found and not e.missing for e in result.entries)
