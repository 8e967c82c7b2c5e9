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

Where your stage still does what stage N-1 did on some entries' own traces
(a starter left as it was, a change forgotten), the rung and conformance
failures are checked against the bridge without those entries' changes:
if that bridge equals your stage on every trace of the scope (and on every
failing vector), the failure is said once, as the changes left out.  Any
other difference is listed as it is, so a second mistake is never hidden
behind a forgotten change.
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


def _register_without(missing: list) -> list:
    """The register less the entries in ``missing``: with it, the bridge of
    their rung is stage n-1 with only the rung's other changes."""
    from .register import load_register
    ids = {e.id for e in missing}
    return [e for e in load_register() if e.id not in ids]


def _rung(cls: type, n: int, scope_name: str, progress, missing: list) -> Check:
    from .explore import check_rung, load_scope
    scope = load_scope(scope_name)
    result = check_rung(n, scope, progress=progress, stand_in=cls)
    states = ", ".join(f"{r.level}: {r.states} states" for r in result.runs)
    if result.new:
        if missing:
            # the same exploration with the bridge left without those changes
            if not check_rung(n, scope, register=_register_without(missing), stand_in=cls).new:
                names = ", ".join(e.id for e in missing)
                return Check("rung", False,
                             f"rung {n:02d}: your stage is commit {n:02d} without its behaviour change(s) {names}: "
                             f"it behaves exactly as stage {n - 1:02d} with the rest of commit {n:02d}'s changes "
                             f"on every trace and call of scope {scope.name} ({states}), so the refactoring is "
                             f"right; make the change(s) the register check below names")
        return Check("rung", False,
                     f"rung {n:02d}: your stage does not do what commit {n:02d} did; it differs at "
                     f"{len(result.new)} place(s) within scope {scope.name} ({states}); each line reads "
                     f"'what commit {n:02d} does -> what your stage does'",
                     [describe(d) for d in result.new])
    return Check("rung", True, f"rung {n:02d}: your stage behaves exactly as commit {n:02d} did on every trace and "
                               f"call of scope {scope.name} ({states})")


def _explained_by(cls: type, n: int, missing: list, failed: list) -> bool:
    """Whether, on each failed vector, the stage gives exactly what stage
    n-1 with all of rung n's overrides but those of ``missing`` gives."""
    from .bridges import bridge
    from .machine import replay
    without = bridge(n, _register_without(missing))
    for vector in failed:
        trace = validate(vector["trace"])
        yours, theirs = replay(cls, trace), replay(without, trace)
        if (yours["results"], yours["state"]) != (theirs["results"], theirs["state"]):
            return False
    return True


def _against_entry(cls: type, entry) -> tuple[dict, bool, str]:
    """A register entry's own trace and call (it has one or both) on the
    stage: how it differs from the real stage there, whether it does just
    what the stage before did on all of them, and the reproducers as JSON."""
    real, old = stage(entry.rung), stage(entry.rung - 1)
    yours: dict = {}
    like_old, reproducers = True, []
    if entry.trace is not None:
        trace = validate(entry.trace)
        yours.update(follow([real, cls], [(0, 1)], trace))
        like_old = like_old and not follow([old, cls], [(0, 1)], trace)
        reproducers.append(f"trace {json.dumps(trace.as_dict())}")
    if entry.call is not None:
        case = api_case(entry.call)
        yours.update(compare_case([real, cls], [(0, 1)], case))
        like_old = like_old and not compare_case([old, cls], [(0, 1)], case)
        reproducers.append(f"call {json.dumps(call_file(entry.call))}")
    return yours, like_old, " and its ".join(reproducers)


def _register(n: int, against: Callable) -> Check:
    entries = entries_of(n)
    if not entries:
        return Check("register", True, f"commit {n:02d} changed no behaviour the register names; "
                                       f"neither does your stage on the rung's traces")
    details, kept = [], []
    for entry in entries:
        yours, like_old, reproducer = against(entry)
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


def _conformance(cls: type, n: int, missing: list) -> Check:
    failures, failed = [], []
    vs = vectors()
    for vector in vs:
        diff = mismatch(cls, vector, n)
        if diff is not None:
            failed.append(vector)
            failures.append(f"{vector['id']}: first difference at {diff[0]}: the real C gave {diff[1]!r}, "
                            f"your stage {diff[2]!r}")
    if failures:
        summary = (f"{len(failures)} of the {len(vs)} conformance traces give something other than what the "
                   f"real C of commit {n:02d} gave")
        if missing and _explained_by(cls, n, missing, failed):
            summary += (f"; on every one of them your stage gives what commit {n:02d} without "
                        f"{', '.join(e.id for e in missing)} gives")
        return Check("conformance", False, summary, failures[:5])
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
    seen: dict[str, tuple] = {}

    def against(entry) -> tuple:           # each entry's trace and call replayed once
        if entry.id not in seen:
            seen[entry.id] = _against_entry(cls, entry)
        return seen[entry.id]

    try:                                   # the entries whose change the stage left out
        missing = [e for e in entries_of(n) if against(e)[0] and against(e)[1]]
    except Exception:                      # noqa: BLE001 -- the stage raised: the register check says where
        missing = []
    for name, run in (("rung", lambda: _rung(cls, n, scope, progress, missing)),
                      ("register", lambda: _register(n, against)),
                      ("conformance", lambda: _conformance(cls, n, missing))):
        try:
            checks.append(run())
        except Exception as exc:           # noqa: BLE001 -- the user's stage failed: say where
            checks.append(Check(name, False, f"your stage raised {failed_in(exc, file)}"))
    return Verdict(n, file, checks)
