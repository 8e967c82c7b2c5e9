"""``dirty-ladder verify FILE``: has a stage module done what its commit did?

The module's ``Stage`` class (an exercise's starter, edited, or anyone's own
variant of a stage) stands in for stage N, N being its ``STAGE``.  What
"done" means for commit N is read off the ladder (:func:`structure.aspects`):
behaviour always, and every structural aspect the commit changes
(representation, API surface, calls, refusals, cost shape, declarations, or
for a local rewrite nothing can see from outside, its source).  One check
per aspect that applies, and three for behaviour:

- the register: each entry of rung N replayed on its own trace or call; if
  the real commit changed behaviour there, your stage must change it the
  same way, bugs included.  An entry is blamed only when its own change is
  what differs: your stage does what stage N-1 with the rung's *other*
  changes does there;
- the rung: stage N-1 -> your stage, explored over every trace of a scope;
  your stage must equal the bridge (stage N-1 with the register's changes
  for rung N), which stage N itself equals;
- conformance: the conformance vectors replayed on your stage must give
  what the real C of commit N gave.

Two tiers.  The quick one (about two seconds) runs the structural checks,
the register entries' traces and calls, the rung's traces of at most two
ops, and the conformance vectors that changed at the rung with a sample of
the others; its verdict is reported through ``progress`` as soon as it is
known.  If it passes, the full tier runs every trace of the scope (ci by
default, three ops) at the machine, representation and API levels, and
every conformance vector.  An exercise is done only when every check of
both tiers passes.

Every trace or call a message needs is kept once in the verdict's
``reproducers`` (T1, T2, ... C1, ...), as JSON to paste into a file and
``replay``.  Where your stage raises and commit N does not, the message
names your file and line and the op or call that raised.

The result is plain data (:meth:`Verdict.as_dict`), and progress is a
callback, so that a verification can run in a child process.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from stages import stage

from . import counting, structure
from .compare import (
    LEVELS, Difference, api_case, api_machine, call_args, call_file, compare_case, follow, judge, rung_classes,
)
from .conformance import mismatch, vectors
from .machine import Machine
from .model import exception_text
from .register import entries_of, load_register
from .structure import ASPECT_TEXT, Aspect
from .trace import DEFAULT_CONFIG, Config, Trace, validate

QUICK_DEPTH = 2          # the quick tier's rung traces: every trace of at most this many ops
BLOCK_PAGES = 65_536     # the block size the cost messages speak of (256 MiB)
SHOWN = 3                # differences shown per check (the rest are counted)


@dataclass
class Check:
    name: str                       # api | representation | ... | register | rung | conformance
    aspect: str                     # the aspect it checks (behaviour for the last three)
    ok: bool
    summary: str
    details: list[str] = field(default_factory=list)
    tier: str = "quick"             # quick | full

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "aspect": self.aspect, "ok": self.ok, "summary": self.summary,
                "details": self.details, "tier": self.tier}


@dataclass
class Verdict:
    n: int
    file: str
    aspects: list[Aspect]
    checks: list[Check]
    tiers: list[str]                # the tiers run: ["quick"] or ["quick", "full"]
    reproducers: list[dict]         # {"id": "T1", "kind": "trace" | "call", "json": {...}}
    text_only: bool = False

    @property
    def complete(self) -> bool:
        return self.tiers == ["quick", "full"]

    @property
    def ok(self) -> bool:
        return self.complete and all(c.ok for c in self.checks)

    def failed(self) -> list[str]:
        return [c.name for c in self.checks if not c.ok]

    def as_dict(self) -> dict[str, Any]:
        return {"stage": self.n, "file": self.file, "ok": self.ok, "tiers": self.tiers,
                "complete": self.complete, "text_only": self.text_only,
                "done_means": [a.as_dict() for a in self.aspects],
                "checks": [c.as_dict() for c in self.checks], "failed": self.failed(),
                "reproducers": self.reproducers}


class Reproducers:
    """The traces and calls a verdict's messages refer to, each kept once."""

    def __init__(self) -> None:
        self.items: list[dict] = []
        self._ids: dict[str, str] = {}

    def _add(self, kind: str, obj: dict) -> str:
        text = json.dumps(obj, sort_keys=True)
        if text not in self._ids:
            prefix = "T" if kind == "trace" else "C"
            self._ids[text] = f"{prefix}{sum(1 for r in self.items if r['kind'] == kind) + 1}"
            self.items.append({"id": self._ids[text], "kind": kind, "json": obj})
        return self._ids[text]

    def trace(self, trace: Trace) -> str:
        return self._add("trace", trace.as_dict())

    def call(self, call: dict) -> str:
        return self._add("call", call_file(call))


# ------------------------------------------------------------------ where the user's stage raised
def failed_in(exc: BaseException, file: str) -> str:
    """An exception in one line, with the last line of ``file`` in its traceback."""
    where, tb = "", exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(file.lstrip("./")):
            where = f" at {file}:{tb.tb_lineno}"
        tb = tb.tb_next
    return f"{exception_text(exc)}{where}"


def _first_raise(cls: type, trace: Trace) -> tuple[int, BaseException] | None:
    machine = Machine(cls, trace.config)
    for i, op in enumerate(trace.ops):
        try:
            machine.run_op(op)
        except Exception as exc:           # noqa: BLE001 -- the place is what is wanted
            return i, exc
    return None


def raise_note(cls: type, n: int, file: str, trace: Trace | None = None, call: dict | None = None) -> str:
    """Where ``cls`` raises on a trace (or a call) and commit ``n`` does not,
    in one sentence; '' when it does not."""
    if trace is not None:
        mine = _first_raise(cls, trace)
        if mine is None:
            return ""
        theirs = _first_raise(stage(n), trace)
        i, exc = mine
        if theirs is not None and theirs[0] == i and type(theirs[1]) is type(exc):
            return ""                      # a refusal commit n makes too
        return f"your stage raised {failed_in(exc, file)} on op {i} ({trace.ops[i]['op']})"
    mine_exc, theirs_exc = _call_raise(cls, call), _call_raise(stage(n), call)
    if mine_exc is None or (theirs_exc is not None and type(theirs_exc) is type(mine_exc)):
        return ""
    return f"your stage raised {failed_in(mine_exc, file)} in the call"


def _call_raise(cls: type, call: dict) -> BaseException | None:
    config = Config(**{**DEFAULT_CONFIG, **call.get("config", {})})
    try:
        if "trace" in call:
            machine = Machine(cls, config)
            for op in call["trace"]:
                machine.run_op(op)
        else:
            machine = api_machine(cls, api_case(call))
        st = machine.stage
        fn = getattr(type(st), call["function"])
        getattr(st, call["function"])(*call_args(st, fn, {"enable": 0, **call["args"]}))
    except Exception as exc:               # noqa: BLE001
        return exc
    return None


# ------------------------------------------------------------------ describing a difference
def _difference_lines(d: Difference, pair: tuple[type, type], n: int, file: str, reps: Reproducers) -> list[str]:
    """A difference of a pair (commit n's side, yours), decoded, with its reproducer."""
    real, yours = pair
    if d.trace is not None:
        rid = reps.trace(d.trace)
        note = raise_note(yours, n, file, trace=d.trace)
        if d.level == "repr":
            a, b = _replayed(real, d.trace), _replayed(yours, d.trace)
            head = f"{d.signature}: the raw dirty state after the last op of {rid}, 'commit {n:02d} -> yours':"
            return [head] + [f"  {line}" for line in structure.raw_difference(a, b, n)] + ([f"  {note}"] if note else [])
        return [f"{d.signature}: {d.detail} ({rid})" + (f"; {note}" if note else "")]
    rid = reps.call(d.call)
    note = raise_note(yours, n, file, call=d.call)
    return [f"{d.signature}: {d.detail} ({rid})" + (f"; {note}" if note else "")]


def _replayed(cls: type, trace: Trace):
    machine = Machine(cls, trace.config)
    for op in trace.ops:
        machine.run_op(op)
    return machine.stage


def _plural(k: int, word: str) -> str:
    return f"{k:,} {word}" + ("" if k == 1 else "s")


# ------------------------------------------------------------------ structural checks
def _api_check(cls: type, n: int, file: str, reps: Reproducers) -> Check:
    gaps = structure.api_gaps(cls, n)
    if gaps:
        return Check("api", "api", False, f"your Stage's API is not commit {n:02d}'s: "
                                           f"{_plural(len(gaps), 'difference')}", gaps)
    return Check("api", "api", True, f"your Stage has commit {n:02d}'s functions, with its parameters and "
                                     f"return types, and its constants")


def _declarations_check(cls: type, n: int, file: str, reps: Reproducers) -> Check:
    gaps = structure.declaration_gaps(cls, n)
    if gaps:
        return Check("declarations", "declarations", False,
                     f"your DECLARED_IN is not commit {n:02d}'s: {_plural(len(gaps), 'name')} declared elsewhere",
                     gaps[:SHOWN * 3] + ([f"... and {len(gaps) - SHOWN * 3} more"] if len(gaps) > SHOWN * 3 else []))
    return Check("declarations", "declarations", True, f"your DECLARED_IN says where commit {n:02d}'s C "
                                                       f"declares every name")


def _calls_check(cls: type, n: int, file: str, reps: Reproducers) -> Check:
    gaps = structure.call_gaps(cls, n)
    if gaps:
        return Check("calls", "calls", False, f"your functions do not call what commit {n:02d}'s functions call: "
                                               f"{_plural(len(gaps), 'difference')}", gaps)
    return Check("calls", "calls", True, f"each of your functions calls the functions commit {n:02d}'s calls")


def _refusals_check(cls: type, n: int, file: str, reps: Reproducers) -> Check:
    gaps = structure.refusal_gaps(cls, n)
    if gaps:
        return Check("refusals", "refusals", False, f"your functions treat a client outside the three as "
                                                    f"commit {n:02d}'s do not", gaps[:SHOWN * 2])
    return Check("refusals", "refusals", True, f"a client outside the three meets what commit {n:02d} does")


def _source_check(cls: type, n: int, file: str, reps: Reproducers) -> Check:
    gaps = structure.source_gaps(cls, n)
    if gaps:
        return Check("source", "source", False, f"commit {n:02d} rewrites code that no check can tell from "
                                                 f"stage {n - 1:02d}'s by running it; you have not rewritten "
                                                 f"it yet (read the commit: dirty-ladder diff {n})", gaps)
    return Check("source", "source", True, f"you rewrote what commit {n:02d} rewrites; compare your code with "
                                           f"the commit's (dirty-ladder diff {n}) to see that it is the same "
                                           f"rewrite: no check can see it from outside")


def _representation_check(cls: type, n: int, file: str, reps: Reproducers) -> Check:
    real = stage(n)
    fresh_real, fresh_yours = Machine(real).stage, Machine(cls).stage
    if structure.layout(fresh_real) != structure.layout(fresh_yours):
        return Check("representation", "representation", False,
                     f"your stage holds the dirty state as stage {n - 1:02d} did, not as commit {n:02d} does"
                     if structure.layout(fresh_yours) == structure.stage_layout(n - 1) else
                     f"your stage holds the dirty state otherwise than commit {n:02d}",
                     structure.raw_difference(fresh_real, fresh_yours, n))
    traces = sorted(structure.probe_traces(n), key=lambda t: len(t.ops))
    for trace in traces:
        a, b = Machine(real, trace.config), Machine(cls, trace.config)
        for i, op in enumerate(trace.ops):
            raised = []
            for m in (a, b):
                try:
                    m.run_op(op)
                    raised.append(None)
                except Exception as exc:   # noqa: BLE001 -- compared below
                    raised.append(exc)
            shown = Trace(trace.config, trace.ops[:i + 1])
            if raised[1] is not None and (raised[0] is None or type(raised[0]) is not type(raised[1])):
                return Check("representation", "representation", False,
                             f"your stage raised where commit {n:02d} did not",
                             [f"your stage raised {failed_in(raised[1], file)} on op {i} ({op['op']}) of "
                              f"{reps.trace(shown)}"])
            if raised[0] is not None:
                break
            if not structure.same_raw(a.stage, b.stage):
                return Check("representation", "representation", False,
                             f"your raw dirty state is not commit {n:02d}'s after op {i} ({op['op']}) of "
                             f"{reps.trace(shown)}; 'commit {n:02d} -> yours':",
                             structure.raw_difference(a.stage, b.stage, n))
    return Check("representation", "representation", True,
                 f"your raw dirty state is commit {n:02d}'s ({structure.layout_text(structure.layout(fresh_yours))}) "
                 f"after every op of {_plural(len(traces), 'probe trace')}")


def _cost_check(cls: type, n: int, file: str, reps: Reproducers) -> Check:
    ops = counting.changed_ops(n)
    real, old = counting.stage_shapes(n), counting.stage_shapes(n - 1)
    try:
        mine = counting.shapes(cls, ops)
    except counting.StageRaised as exc:
        return Check("cost", "cost", False, f"your stage raised while its cost was counted: "
                                             f"{failed_in(exc.exc, file)} in {counting.OPERATIONS[exc.op]}")
    gaps, fine = [], []
    for op in ops:
        yours, theirs = mine[op], real[op]
        said = (f"{counting.OPERATIONS[op]}: on a block of {BLOCK_PAGES:,} pages yours would run about "
                f"{counting.estimate(yours, BLOCK_PAGES):,.0f} lines of Python")
        if yours.order == counting.PAGE and theirs.order != counting.PAGE:
            busiest = yours.busiest_call()
            calls = (f", calling {busiest[0]} {busiest[1]:.3g} times per page "
                     f"({busiest[1] * BLOCK_PAGES:,.0f} calls)" if busiest else "")
            gaps.append(f"{said}, {yours.per_page:.3g} per page{calls}: {counting.ORDER_TEXT[yours.order]}, as "
                        f"stage {n - 1:02d} does; commit {n:02d} runs about "
                        f"{counting.estimate(theirs, BLOCK_PAGES):,.0f}: {counting.ORDER_TEXT[theirs.order]}")
        else:
            fine.append(f"{op}: {counting.ORDER_TEXT[yours.order]}, about "
                        f"{counting.estimate(yours, BLOCK_PAGES):,.0f} lines on {BLOCK_PAGES:,} pages "
                        f"(stage {n - 1:02d}: {counting.estimate(old[op], BLOCK_PAGES):,.0f})")
    if gaps:
        return Check("cost", "cost", False, f"commit {n:02d} changes the order of the work; yours keeps stage "
                                             f"{n - 1:02d}'s for {_plural(len(gaps), 'operation')} (counted, "
                                             f"not timed)", gaps)
    return Check("cost", "cost", True, f"your stage does the work in commit {n:02d}'s order (counted, not timed)",
                 fine)


def _own_code_check(cls: type, n: int, file: str) -> Check | None:
    """A Stage built on the ladder's own stage n (or a later one) holds the
    commit's solution whole: it may be checked, as anyone's variant, but it
    is not an exercise done (None: it is built on stage n-1, as it should)."""
    from stages import LAST, stage
    ahead = [k for k in range(n, LAST + 1) if issubclass(cls, stage(k))]
    if not ahead:
        return None
    return Check("own code", "structure", False,
                 f"your Stage subclasses the ladder's own stage {ahead[-1]:02d}, which already holds commit "
                 f"{n:02d}'s change: the checks below judge it, but it is not your change; subclass stage "
                 f"{n - 1:02d} and write the change yourself")


STRUCTURAL = {"declarations": _declarations_check, "api": _api_check, "representation": _representation_check,
              "calls": _calls_check, "refusals": _refusals_check, "source": _source_check, "cost": _cost_check}


# ------------------------------------------------------------------ behaviour: the register
def _without(entries: list) -> list:
    ids = {e.id for e in entries}
    return [e for e in load_register() if e.id not in ids]


def _differences_on(a: type, b: type, entry) -> dict:
    out: dict = {}
    if entry.trace is not None:
        out.update(follow([a, b], [(0, 1)], validate(entry.trace)))
    if entry.call is not None:
        out.update(compare_case([a, b], [(0, 1)], api_case(entry.call)))
    return out


@dataclass
class EntryOutcome:
    entry: Any
    state: str                     # made | left out | other
    differences: list[Difference]


def _entry_outcomes(cls: type, n: int) -> list[EntryOutcome]:
    """Each register entry of rung n on its own trace and call: its change
    made (your stage equals commit n there), left out (your stage equals
    stage n-1 with the rung's other changes there), or something else."""
    from .bridges import bridge
    out = []
    entries = entries_of(n)
    for entry in entries:
        found = _differences_on(stage(n), cls, entry)
        if not found:
            out.append(EntryOutcome(entry, "made", []))
            continue
        others = [e for e in entries if e.id != entry.id]
        without = bridge(n, _without([entry])) if others else stage(n - 1)
        state = "left out" if not _differences_on(without, cls, entry) else "other"
        out.append(EntryOutcome(entry, state, list(found.values())))
    return out


STATUS_TEXT = {"bug": "a bug the commit shipped", "fix": "a fix the commit made", "benign": "a harmless change",
               "intended": "a change the commit meant"}


def _register_check(cls: type, n: int, file: str, reps: Reproducers, outcomes: list[EntryOutcome]) -> Check:
    details = []
    for o in outcomes:
        e = o.entry
        if o.state == "made":
            continue
        where = " and ".join(([reps.trace(validate(e.trace))] if e.trace is not None else [])
                             + ([reps.call(e.call)] if e.call is not None else []))
        if o.state == "left out":
            raw = []
            if e.trace is not None and "repr" in e.levels:      # no observer sees it: show the state itself
                trace = validate(e.trace)
                raw = structure.raw_difference(_replayed(stage(n), trace), _replayed(cls, trace), n)
            details.append(f"{e.id} ({STATUS_TEXT[e.status]}): commit {n:02d} changed behaviour here and your "
                           f"stage does not: {e.what}. The real commit did this, so make the same change. "
                           f"Its {'trace and call' if ' and ' in where else 'reproducer'}: {where}"
                           + "".join(f"\n  after {reps.trace(validate(e.trace))}, 'commit {n:02d} -> yours': "
                                     f"{line}" for line in raw))
        elif o.state == "other":
            lines = []
            for d in o.differences[:SHOWN]:
                lines += _difference_lines(d, (stage(n), cls), n, file, reps)
            details.append(f"on {e.id}'s own {'trace and call' if ' and ' in where else 'reproducer'} ({where}) "
                           f"your stage differs from commit {n:02d}, and not only by leaving out {e.id}'s change; "
                           f"'commit {n:02d} -> yours':\n" + "\n".join("  " + line for line in lines))
    left = [o.entry.id for o in outcomes if o.state == "left out"]
    if details:
        summary = (f"{len(left)} of the {len(outcomes)} behaviour change(s) of commit {n:02d} left out"
                   if left else f"your stage differs from commit {n:02d} on the register's traces")
        if left and len(left) < len(details):
            summary += ", and other differences on their traces"
        return Check("register", "behaviour", False, summary, details)
    made = [o.entry for o in outcomes]
    return Check("register", "behaviour", True,
                 f"your stage makes the behaviour change(s) commit {n:02d} made: "
                 + ", ".join(f"{e.id} ({e.status})" for e in made)
                 + ("; bugs included, as the real commit shipped them" if any(e.status == "bug" for e in made) else ""))


# ------------------------------------------------------------------ behaviour: the rung
def explore_rung(n: int, scope, cls: type, levels: tuple[str, ...], register: list,
                 progress: Callable[[dict], None] | None = None, with_real: bool = False):
    """The rung check of ``cls`` against the bridge (as explore.check_rung),
    and, ``with_real``, commit n's own stage beside them, so that the raw
    dirty state of ``cls`` is compared with stage n's at every step.
    Returns the RungResult and the representation differences (commit n, yours)."""
    from .explore import explore, explore_api, finds
    classes, exact, entry_pairs = rung_classes(n, register, cls)
    pairs = [exact] + entry_pairs
    extra = None
    trace_pairs = list(pairs)
    if with_real:
        classes = classes + [stage(n)]
        extra = (len(classes) - 1, exact[1])
        trace_pairs.append(extra)
    runs = []
    trace_levels = tuple(level for level in levels if level in ("machine", "repr"))
    if trace_levels:
        runs.append(explore(classes, trace_pairs, scope, trace_levels + (("repr",) if with_real and
                                                                         "repr" not in trace_levels else ()),
                            progress))
    if "api" in levels and scope.api is not None:
        runs.append(explore_api(classes, pairs, scope, progress))
    found = {k: d for run in runs for k, d in run.differences.items()}
    raw = [d for (pair, _), d in found.items() if pair == extra and d.level == "repr"]
    found = {k: d for k, d in found.items() if k[0] != extra}
    result = judge(n, found, levels, register, lambda entry: finds(entry.scope, scope), f"scope {scope.name}")
    result.runs = runs
    return result, raw


def _rung_check(cls: type, n: int, file: str, reps: Reproducers, scope, levels, progress, left_out: list,
                tier: str, with_real: bool = False) -> list[Check]:
    register = load_register()
    result, raw = explore_rung(n, scope, cls, levels, register, progress, with_real)
    states = ", ".join(f"{r.level}: {r.states:,} states" for r in result.runs)
    where = (f"every trace of at most {scope.depth} ops of scope {scope.name}" if tier == "quick"
             else f"every trace and call of scope {scope.name}")
    checks = []
    if with_real:
        if raw:
            lines = []
            for d in raw[:SHOWN]:
                lines += _difference_lines(d, (stage(n), cls), n, file, reps)
            checks.append(Check("representation", "representation", False,
                                f"your raw dirty state is not commit {n:02d}'s on {where}", lines, tier))
        else:
            checks.append(Check("representation", "representation", True,
                                f"your raw dirty state is commit {n:02d}'s after every op of {where}", [], tier))
    if result.new and left_out:
        again, _ = explore_rung(n, scope, cls, levels, _without(left_out))
        if not again.new:
            names = ", ".join(e.id for e in left_out)
            checks.append(Check("rung", "behaviour", False,
                                f"rung {n:02d}: your stage is commit {n:02d} without its behaviour change(s) "
                                f"{names}: it behaves exactly as stage {n - 1:02d} with the rest of commit "
                                f"{n:02d}'s changes on {where} ({states}), so the rest is right; make the "
                                f"change(s) the register check names", [], tier))
            return checks
    if result.new:
        classes, exact, _ = rung_classes(n, register, cls)
        lines = []
        for d in sorted(result.new, key=lambda d: d.size())[:SHOWN]:
            lines += _difference_lines(d, (classes[exact[0]], cls), n, file, reps)
        more = len(result.new) - SHOWN
        checks.append(Check("rung", "behaviour", False,
                            f"rung {n:02d}: your stage does not do what commit {n:02d} did: it differs at "
                            f"{_plural(len(result.new), 'place')} on {where} ({states}); each line reads "
                            f"'what commit {n:02d} does -> what yours does'",
                            lines + ([f"... and {more} more"] if more > 0 else []), tier))
    else:
        checks.append(Check("rung", "behaviour", True, f"rung {n:02d}: your stage behaves exactly as commit "
                                                       f"{n:02d} did on {where} ({states})", [], tier))
    return checks


# ------------------------------------------------------------------ behaviour: conformance
def _conformance_check(cls: type, n: int, file: str, reps: Reproducers, vs: list, left_out: list,
                       tier: str) -> Check:
    from .bridges import bridge
    from .machine import replay
    failures, failed = [], []
    for vector in vs:
        trace = validate(vector["trace"])
        # the first failing trace is shown as JSON; the others by their id
        name = lambda: f"{vector['id']} ({reps.trace(trace)})" if not failed else vector["id"]   # noqa: E731
        try:
            diff = mismatch(cls, vector, n)
        except Exception as exc:           # noqa: BLE001 -- the user's stage failed on this trace: say where
            note = raise_note(cls, n, file, trace=trace) or f"your stage raised {failed_in(exc, file)}"
            failures.append(f"{name()}: {note}")
            failed.append(vector)
            continue
        if diff is not None:
            failures.append(f"{name()}: first difference at {diff[0]}: the real C gave {diff[1]!r}, "
                            f"yours {diff[2]!r}")
            failed.append(vector)
    which = (f"the {len(vs)} conformance traces" if tier == "full"
             else f"the quick tier's {len(vs)} conformance traces")
    if not failures:
        return Check("conformance", "behaviour", True, f"{which} all give what the real C of commit "
                                                       f"{n:02d} gave", [], tier)
    summary = f"{len(failures)} of {which} give something other than what the real C of commit {n:02d} gave"
    if left_out:
        without = bridge(n, _without(left_out))
        if all((lambda a, b: (a["results"], a["state"]) == (b["results"], b["state"]))(
                replay(cls, validate(v["trace"])), replay(without, validate(v["trace"]))) for v in failed):
            summary += (f"; on every one your stage gives what commit {n:02d} without "
                        f"{', '.join(e.id for e in left_out)} gives")
            return Check("conformance", "behaviour", False, summary, [], tier)
    return Check("conformance", "behaviour", False, summary,
                 failures[:SHOWN] + ([f"... and {len(failures) - SHOWN} more"] if len(failures) > SHOWN else []),
                 tier)


# ------------------------------------------------------------------ the verification
def _guarded(name: str, aspect: str, file: str, tier: str, run: Callable[[], Any]) -> list[Check]:
    """Run one check; an exception outside the comparisons (your stage's
    __init__, say) fails it with the place it was raised."""
    try:
        out = run()
    except Exception as exc:               # noqa: BLE001 -- the user's stage failed: say where
        return [Check(name, aspect, False, f"your stage raised {failed_in(exc, file)}", [], tier)]
    return out if isinstance(out, list) else [out]


def verify(cls: type, file: str, scope: str = "ci", progress: Callable[[dict], None] | None = None,
           full: bool = False, quick_only: bool = False) -> Verdict:
    """Verify ``cls`` against commit ``cls.STAGE``: the quick tier, its
    verdict reported as ``progress({"event": "verdict", "tier": "quick",
    "verdict": ...})``, then (when it passed, or ``full``; never with
    ``quick_only``) the full tier.  Exploration progress comes as
    ``progress({"event": "explore", ...})``."""
    from .explore import load_scope
    n = cls.STAGE
    scope_full = load_scope(scope)
    report = progress or (lambda info: None)
    reps = Reproducers()
    aspects = list(structure.aspects(n))
    names = [a.name for a in aspects]
    checks: list[Check] = []
    borrowed = _own_code_check(cls, n, file)
    if borrowed is not None:
        checks.append(borrowed)

    for name in [a for a in STRUCTURAL if a in names]:
        checks += _guarded(name, name, file, "quick", lambda name=name: STRUCTURAL[name](cls, n, file, reps))
    outcomes: list[EntryOutcome] = []
    try:
        outcomes = _entry_outcomes(cls, n)
    except Exception as exc:               # noqa: BLE001
        checks.append(Check("register", "behaviour", False, f"your stage raised {failed_in(exc, file)}"))
    else:
        if outcomes:
            checks += _guarded("register", "behaviour", file, "quick",
                               lambda: _register_check(cls, n, file, reps, outcomes))
    left_out = [o.entry for o in outcomes if o.state == "left out"]

    def explored(info: dict) -> None:
        report({"event": "explore", **info})

    quick_scope = replace(scope_full, depth=min(QUICK_DEPTH, scope_full.depth))
    checks += _guarded("rung", "behaviour", file, "quick", lambda: _rung_check(
        cls, n, file, reps, quick_scope, ("machine", "repr"), explored, left_out, "quick"))
    checks += _guarded("conformance", "behaviour", file, "quick", lambda: _conformance_check(
        cls, n, file, reps, structure.probe_vectors(n), left_out, "quick"))
    verdict = Verdict(n, file, aspects, checks, ["quick"], reps.items, structure.text_only(n))
    report({"event": "verdict", "tier": "quick", "verdict": verdict.as_dict()})
    if quick_only or (not all(c.ok for c in checks) and not full):
        return verdict

    full_checks = _guarded("rung", "behaviour", file, "full", lambda: _rung_check(
        cls, n, file, reps, scope_full, LEVELS, explored, left_out, "full", "representation" in names))
    full_checks += _guarded("conformance", "behaviour", file, "full", lambda: _conformance_check(
        cls, n, file, reps, list(vectors()), left_out, "full"))
    verdict = Verdict(n, file, aspects, checks + full_checks, ["quick", "full"], reps.items, structure.text_only(n))
    report({"event": "verdict", "tier": "full", "verdict": verdict.as_dict()})
    return verdict


def aspect_lines(n: int) -> list[str]:
    """What done means for commit ``n``, as the faces print it."""
    lines = []
    for a in structure.aspects(n):
        lines.append(f"{ASPECT_TEXT[a.name]}: {a.what}")
        lines += [f"    {d}" for d in a.details]
    return lines


def text_only_lines(n: int) -> list[str]:
    """What a text-only commit asks of a learner, said plainly."""
    s = stage(n)
    upstream = f"git show {s.UPSTREAM.split()[0]} in QEMU's history, " if s.UPSTREAM else ""
    return [f"Commit {n:02d} has no code to write: it moves C declarations from one header to another, and "
            f"the Python has no headers. Read it instead: {upstream}`dirty-ladder diff {n}`, "
            f"`dirty-ladder tour {n}`. Then record what it moves: set DECLARED_IN in your Stage to where the C "
            f"declares each name after the commit. That edit is how this exercise is done; an untouched "
            f"file never is."]


def exercise_lines(n: int) -> list[str]:
    """What ``dirty-ladder exercise N`` says of what done means."""
    lines = [f"What done means for commit {n:02d} (verify checks each; done when all pass):"]
    lines += [f"  {line}" for line in aspect_lines(n)]
    if structure.text_only(n):
        lines += [f"  {line}" for line in text_only_lines(n)]
    return lines


def header_lines(verdict_n: int, file: str) -> list[str]:
    s = stage(verdict_n)
    lines = [f"verify {file}: stage {verdict_n:02d}, {s.TITLE} (upstream {s.UPSTREAM or '-'})",
             f"What done means for commit {verdict_n:02d}:"]
    lines += [f"  {line}" for line in aspect_lines(verdict_n)]
    if structure.text_only(verdict_n):
        lines += [f"  {line}" for line in text_only_lines(verdict_n)]
    return lines


def tier_lines(verdict: dict, tier: str, shown: set[str]) -> list[str]:
    """One tier's checks of a verdict (as_dict), then the reproducers it
    introduced that were not shown yet (their ids are added to ``shown``)."""
    title = ("quick tier (the first verdict)" if tier == "quick"
             else "full tier (every trace and call of the scope, every conformance trace)")
    lines = [f"{title}:"]
    for c in verdict["checks"]:
        if c["tier"] != tier:
            continue
        lines.append(f"  [{'ok' if c['ok'] else 'FAIL'}] {c['name']}: {c['summary']}")
        lines += [f"         {line}" for d in c["details"] for line in d.splitlines()]
    fresh = [r for r in verdict["reproducers"] if r["id"] not in shown]
    if fresh:
        lines.append("  traces (T) and calls (C) named above, as JSON: save one to a file and "
                     "`dirty-ladder replay FILE --stage-file YOURS`:")
        for r in fresh:
            shown.add(r["id"])
            lines.append(f"    {r['id']}: {json.dumps(r['json'])}")
    return lines


def closing_lines(verdict: dict, top: str = "dirty-ladder") -> list[str]:
    n, file = verdict["stage"], verdict["file"]
    if verdict["ok"]:
        return [f"Your stage does what commit {n:02d} did, in every way the ladder checks. "
                f"Marked done: {top} exercise --progress"]
    failed = ", ".join(dict.fromkeys(verdict["failed"]))
    if not verdict["complete"] and not verdict["failed"]:
        return ["The full tier did not run."]
    tail = ("" if verdict["complete"] else
            "; the full tier runs once the quick one passes (--full runs it anyway)")
    return [f"Not done yet: {failed} failed{tail}. Hints: {top} exercise {n} --hint; your change: "
            f"{top} diff {n} --stage-file {file}"]


# ------------------------------------------------------------------ --watch
def watch(path: str, run: Callable[[], Any], stop_event=None, debounce_ms: int = 300) -> None:
    """Call ``run()`` now and again after every save of ``path`` until
    ``stop_event`` is set (or Ctrl-C).  The file's directory is watched
    (watchfiles), so an editor that saves by writing a new file and
    renaming it over the old one is seen too."""
    from pathlib import Path

    import watchfiles
    target = Path(path).resolve()

    def this_file(change, changed: str) -> bool:
        return Path(changed).resolve() == target and change != watchfiles.Change.deleted

    run()
    for _ in watchfiles.watch(target.parent, watch_filter=this_file, stop_event=stop_event, debounce=debounce_ms,
                              rust_timeout=500, yield_on_timeout=False, recursive=False):
        if stop_event is not None and stop_event.is_set():
            break
        run()
