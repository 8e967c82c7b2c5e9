"""``dirty-ladder verify FILE``: does a stage module do what its commit did?

The module's ``Stage`` class (an exercise's starter, edited, or anyone's own
variant of a stage) stands in for stage N, N being its ``STAGE``.  Three
checks, each told in plain words:

- the rung: stage N-1 -> your stage, explored exhaustively within a scope
  (ci by default) at the machine, representation and API levels.  Your stage
  must be exactly equal to the bridge (stage N-1 with the behaviour changes
  the register names for rung N), which stage N itself equals: where it is
  not, the rung, the level and a shortest trace (or call) are given;
- the register: each entry of rung N replayed on its own trace or call.  If
  the real commit changed behaviour there, your stage must change it the
  same way, bugs included: where it still does what stage N-1 did, that is
  said, with the entry's status (a bug the commit shipped, a fix, ...);
- conformance: every conformance vector replayed on your stage must give
  what the real C of commit N gave.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable

from stages import stage

from .compare import api_case, call_file, compare_case, describe, follow
from .conformance import mismatch, vectors
from .model import exception_text
from .register import entries_of
from .trace import validate


@dataclass
class Check:
    name: str                       # rung | register | conformance
    ok: bool
    summary: str
    details: list[str] = field(default_factory=list)


@dataclass
class Verdict:
    n: int
    file: str
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {"stage": self.n, "file": self.file, "ok": self.ok,
                "checks": [{"name": c.name, "ok": c.ok, "summary": c.summary, "details": c.details}
                           for c in self.checks]}


def _rung(cls: type, n: int, scope_name: str, progress) -> Check:
    from .explore import check_rung, load_scope
    scope = load_scope(scope_name)
    result = check_rung(n, scope, progress=progress, stand_in=cls)
    states = ", ".join(f"{r.level}: {r.states} states" for r in result.runs)
    if result.new:
        return Check("rung", False,
                     f"rung {n:02d}: your stage does not do what commit {n:02d} did; it differs at "
                     f"{len(result.new)} place(s) within scope {scope.name} ({states}); each line reads "
                     f"'what commit {n:02d} does -> what your stage does'",
                     [describe(d) for d in result.new])
    return Check("rung", True, f"rung {n:02d}: your stage behaves exactly as commit {n:02d} did on every trace and "
                               f"call of scope {scope.name} ({states})")


def _register(cls: type, n: int) -> Check:
    entries = entries_of(n)
    if not entries:
        return Check("register", True, f"commit {n:02d} changed no behaviour the register names; "
                                       f"neither does your stage on the rung's traces")
    details, kept = [], []
    for entry in entries:
        real, old = stage(n), stage(n - 1)
        if entry.trace is not None:
            trace = validate(entry.trace)
            yours = follow([real, cls], [(0, 1)], trace)
            like_old = not follow([old, cls], [(0, 1)], trace)
            reproducer = f"trace {json.dumps(trace.as_dict())}"
        else:
            case = api_case(entry.call)
            yours = compare_case([real, cls], [(0, 1)], case)
            like_old = not compare_case([old, cls], [(0, 1)], case)
            reproducer = f"call {json.dumps(call_file(entry.call))}"
        if not yours:
            kept.append(entry)
            continue
        what = {"bug": "a bug the commit shipped", "fix": "a fix the commit made", "benign": "a harmless change",
                "intended": "a change the commit meant"}[entry.status]
        first = next(iter(yours.values()))
        if like_old:
            details.append(f"{entry.id} ({what}): commit {n:02d} changed behaviour here, and your stage still "
                           f"does what stage {n - 1:02d} did. {entry.what}. The real commit had this, so "
                           f"reproduce it. Its {reproducer}")
        else:
            details.append(f"{entry.id} ({what}): your stage differs from commit {n:02d} on this entry's "
                           f"{reproducer}: {first.signature}: {first.detail}")
    if details:
        return Check("register", False, f"{len(details)} of the {len(entries)} behaviour change(s) of commit "
                                        f"{n:02d} are not reproduced", details)
    names = ", ".join(f"{e.id} ({e.status})" for e in kept)
    return Check("register", True, f"your stage makes the behaviour change(s) commit {n:02d} made: {names}"
                 + ("; bugs included, as the real commit shipped them" if any(e.status == "bug" for e in kept)
                    else ""))


def _conformance(cls: type, n: int) -> Check:
    failures = []
    vs = vectors()
    for vector in vs:
        diff = mismatch(cls, vector, n)
        if diff is not None:
            failures.append(f"{vector['id']}: first difference at {diff[0]}: the real C gave {diff[1]!r}, "
                            f"your stage {diff[2]!r}")
    if failures:
        return Check("conformance", False, f"{len(failures)} of the {len(vs)} conformance traces give "
                                           f"something other than what the real C of commit {n:02d} gave", failures[:5])
    return Check("conformance", True, f"all {len(vs)} conformance traces give what the real C of commit "
                                      f"{n:02d} gave")


def failed_in(exc: BaseException, file: str) -> str:
    """Where a stage failed: the last line of ``file`` in the traceback."""
    where, tb = "", exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(file.lstrip("./")):
            where = f" at {file}:{tb.tb_lineno}"
        tb = tb.tb_next
    return f"{exception_text(exc)}{where}"


def verify(cls: type, file: str, scope: str = "ci", progress: Callable[[dict], None] | None = None) -> Verdict:
    """The three checks; where the stage's code raises, the op or call that
    raised is an outcome the checks compare, and an exception outside them
    (building a starting state, replaying a conformance trace) fails that
    check with the place it was raised."""
    n = cls.STAGE
    checks = []
    for name, run in (("rung", lambda: _rung(cls, n, scope, progress)), ("register", lambda: _register(cls, n)),
                      ("conformance", lambda: _conformance(cls, n))):
        try:
            checks.append(run())
        except Exception as exc:           # noqa: BLE001 -- the user's stage failed: say where
            checks.append(Check(name, False, f"your stage raised {failed_in(exc, file)}"))
    return Verdict(n, file, checks)
