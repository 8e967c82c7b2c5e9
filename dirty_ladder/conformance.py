"""The conformance vectors: traces with what the real C of every stage produced.

``data/conformance.jsonl`` holds 251 traces, each with the
``dirty-trace-result/1`` object (without ``stage``) that the upstream code of
each stage's commit gave for it, grouped by runs of stages with the same
result.  They were made outside this project, by compiling each commit's
dirty-memory headers unchanged and taking its callers word for word around a
machine like this one's; stages 01 and 12, whose v2 text is not public, use
the code of stages 00 and 11.  They check fidelity only: the rung checks
never read them.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from .machine import first_difference, replay
from .trace import validate


@cache
def vectors() -> tuple[dict[str, Any], ...]:
    text = resources.files(__package__).joinpath("data", "conformance.jsonl").read_text(encoding="utf-8")
    return tuple(json.loads(line) for line in text.splitlines() if line.strip())


def expected(vector: dict[str, Any], n: int) -> dict[str, Any]:
    """What the real C of stage ``n`` gave for this vector's trace."""
    for group in vector["outputs"]:
        first, last = group["stages"]
        if first <= n <= last:
            return group["result"]
    raise KeyError(f"{vector['id']}: no expected result for stage {n}")


def mismatch(cls: type, vector: dict[str, Any], n: int | None = None):
    """Where a stage class's replay of the vector first differs from the
    real C of stage ``n`` (default: the class's own STAGE), or None."""
    n = cls.STAGE if n is None else n
    return first_difference(expected(vector, n), replay(cls, validate(vector["trace"])))
