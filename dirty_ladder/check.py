"""Running the rung checks, one rung or all, and their reports as data.

``dirty-ladder check`` and the tests call :func:`run`; a rung is checked
either on random cases (:mod:`.rungs`, a number of examples) or exhaustively
within a scope (:mod:`.explore`).  Rungs can run in parallel processes.
:func:`report` turns a :class:`compare.RungResult` into the JSON the command
prints, and :func:`write_reproducers` writes each new difference as a file a
user can replay: a ``dirty-trace/1`` trace, or a ``dirty-call/1`` call.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import signal
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from .compare import LEVELS, Difference, RungResult, call_file


@dataclass(frozen=True)
class How:
    """How to check: ``scope`` (a name or file) for the exhaustive check,
    else ``examples`` random cases from ``seed`` (``require_found``: must
    every register entry show in them, or is one not reached only noted?)."""
    examples: int = 1000
    seed: int = 0
    scope: str | None = None
    levels: tuple[str, ...] = LEVELS
    require_found: bool = False


def check_one(rung: int, how: How, progress: Callable[[dict], None] | None = None,
              stand_in: type | None = None) -> RungResult:
    """One rung; ``stand_in`` is a user's class in place of stage ``rung``."""
    import time
    t0 = time.monotonic()
    if how.scope is not None:
        from .explore import check_rung, load_scope
        result = check_rung(rung, load_scope(how.scope), how.levels, progress=progress, stand_in=stand_in)
    else:
        from .rungs import check_rung as random_check
        step = (lambda level, i: progress({"level": level, "examples": i})) if progress else None
        result = random_check(rung, how.examples, how.seed, how.levels, step, stand_in=stand_in,
                              require_found=how.require_found)
    result.seconds = time.monotonic() - t0
    return result


def _check_in_child(rung: int, how: How) -> RungResult:
    return check_one(rung, how)


def _worker_ignores_ctrl_c() -> None:
    """Ctrl-C reaches every process of the terminal's group: the workers leave
    it to the parent, which stops them all at once (Pool.terminate)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class Interrupted(Exception):
    """Ctrl-C during :func:`run`: ``results`` holds the rungs finished before
    it, in rung order; every worker has been stopped."""

    def __init__(self, results: list[RungResult]):
        super().__init__(f"interrupted after {len(results)} rungs")
        self.results = results


def run(rungs: Iterable[int], how: How, jobs: int = 1,
        progress: Callable[[int, dict], None] | None = None,
        done: Callable[[RungResult, float], None] | None = None,
        stand_in: type | None = None) -> list[RungResult]:
    """Check each rung; ``jobs`` processes at once (progress is then only
    reported as each rung is done; a ``stand_in`` class runs in this
    process).  Results in rung order.  Ctrl-C stops the workers at once and
    raises :class:`Interrupted` with the rungs finished."""
    rungs = list(rungs)
    results: dict[int, RungResult] = {}
    try:
        if jobs <= 1 or len(rungs) == 1 or stand_in is not None:
            for rung in rungs:
                results[rung] = check_one(rung, how, (lambda info, rung=rung: progress(rung, info))
                                          if progress else None, stand_in)
                if done:
                    done(results[rung], results[rung].seconds)
        else:
            with multiprocessing.Pool(min(jobs, len(rungs)), initializer=_worker_ignores_ctrl_c) as pool:
                # leaving the block terminates the workers, whether they are done or not
                for result in pool.imap_unordered(functools.partial(_check_in_child, how=how), rungs):
                    results[result.rung] = result
                    if done:
                        done(result, result.seconds)
    except KeyboardInterrupt:
        raise Interrupted([results[r] for r in rungs if r in results]) from None
    return [results[r] for r in rungs]


def default_jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


# ------------------------------------------------------------------ reports
def difference_dict(d: Difference) -> dict[str, Any]:
    return {"signature": d.signature, "level": d.level, "place": d.place, "detail": d.detail,
            "configs": sorted(d.config_dicts, key=lambda c: sorted(c.items())),
            "trace": d.trace.as_dict() if d.trace is not None else None,
            "call": call_file(d.call) if d.call is not None else None}


def report(result: RungResult) -> dict[str, Any]:
    return {
        "rung": result.rung, "how": result.how, "status": result.status, "ok": result.ok,
        "runs": [r.as_dict() for r in result.runs],
        "seconds": round(result.seconds, 3),
        "entries": [{"id": e.entry.id, "status": e.entry.status,
                     "found": sorted({d.signature for d in e.found}),
                     "unexplained": [difference_dict(d) for d in e.unexplained],
                     "missing": e.missing if e.required else [],
                     "not_reached": [] if e.required else e.missing} for e in result.entries],
        "new": [difference_dict(d) for d in result.new],
    }


def checked_text(row: dict[str, Any]) -> str:
    """What a report's rung check covered, in a few words."""
    if not row["runs"]:
        return row["how"]
    parts = []
    for run in row["runs"]:
        if run.get("truncated"):                 # cut short by the scope's max_states: no claim of closure
            parts.append(f"{run['level']}: stopped at {run['states']} states (max_states), depth {run['depth']}")
        elif run["level"] == "api":
            parts.append(f"api: {run['states']} states")
        else:
            how = "closed" if run["closed"] else "bounded"
            parts.append(f"{run['level']}: {run['states']} states, depth {run['depth']} ({how})")
    return "; ".join(parts)


def write_reproducers(result: RungResult, directory: str = ".") -> list[str]:
    """Write each new difference of a rung as a file in ``directory``, under
    the first free name ``new-difference-rungNN-LEVEL-K.json`` (``.call.json``
    for an API call): a file already there is never replaced.  The paths
    written."""
    from .files import write_unique
    from .trace import format_trace
    written = []
    for d in result.new:
        stem = f"new-difference-rung{result.rung:02d}-{d.level}"
        if d.trace is not None:
            suffix, text = ".json", format_trace(d.trace.as_dict())
        else:
            suffix, text = ".call.json", json.dumps(call_file(d.call), indent=1) + "\n"
        written.append(str(write_unique(directory, stem, suffix, text)))
    return written
