"""Conformance: every stage reproduces what the real C of its commit produced.

dirty_ladder/data/conformance.jsonl (read by dirty_ladder/conformance.py) holds the
project's conformance vectors, made outside this repository: 251 traces with
the observables the upstream code of each stage gave.  Every trace runs on every
stage: 251 x 40 = 10,040 pairs, ids like ``c-017-stage39``.  These vectors
check fidelity only; the rung tests never read them.
"""

import pytest

from stages import LAST, stage
from dirty_ladder.conformance import mismatch, vectors

VECTORS = vectors()


def test_vectors_cover_every_stage():
    assert len(VECTORS) == 251
    for vector in VECTORS:
        covered = sorted(n for g in vector["outputs"] for n in range(g["stages"][0], g["stages"][1] + 1))
        assert covered == list(range(LAST + 1)), vector["id"]


@pytest.mark.parametrize("n", [pytest.param(n, id=f"stage{n:02d}") for n in range(LAST + 1)])
@pytest.mark.parametrize("vector", [pytest.param(v, id=v["id"]) for v in VECTORS])
def test_conformance(vector, n):
    diff = mismatch(stage(n), vector)
    assert diff is None, f"{vector['id']} on stage {n}: first difference at {diff[0]}: expected {diff[1]!r}, got {diff[2]!r}"
