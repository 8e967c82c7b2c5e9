"""The ``dirty-ladder`` command (also ``python -m dirty_ladder``): step through the
ladder and put your own traces through it.

Subcommands::

    list                     the 40 stages and what the register says of each rung
    show N [FUNCTION]        the dirty API at stage N, or one function's source there
    diff N [M]               what changed from stage N-1 to N (or from N to M)
    replay TRACE --stage N   run a trace on one stage (--all: on all 40)
    check [N | --all]        the differential check of one rung or of all
    trace random --seed S    write a valid random trace
    trace validate TRACE     check a trace file without running it

Every user error (a bad stage number, an unknown function, a trace that is
unreadable, malformed or breaks the rules of docs/trace-format.md, a bad option)
ends with exit status 2 and one line on stderr; ``check`` exits 1 when it
finds a difference the register does not list.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
import textwrap
import time
import tomllib
from typing import Any

from stages import LAST, MODULES, UnknownStage, stage
from stages.common import removed

from .model import (
    Api, bytes_text, function_of, per_page_text, spans, api_of, compute_diff, entries_by_rung,
    load_register_safely, module_path, resolve,
)
from .streams import finish
MAX_OPS = 100_000


class UserError(Exception):
    """A mistake of the user's: one line on stderr, exit status 2."""


class Failure(Exception):
    """Something failed that is not the user's doing: one line, exit status 1."""


# ------------------------------------------------------------------ argparse
class Parser(argparse.ArgumentParser):
    """argparse, but an error is one line on stderr and exit status 2."""

    def error(self, message: str):
        raise UserError(f"{self.prog}: {' '.join(message.split())}")


class Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def _int(text: str, what: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must be a whole number, not {text!r}") from None


def stage_number(text: str) -> int:
    n = _int(text, "a stage number")
    if not 0 <= n <= LAST:
        raise argparse.ArgumentTypeError(f"unknown stage {n}: stages are 0 to {LAST}")
    return n


def rung_number(text: str) -> int:
    n = _int(text, "a rung number")
    if not 1 <= n <= LAST:
        raise argparse.ArgumentTypeError(
            f"unknown rung {n}: rungs are 1 to {LAST} (rung N compares stage N-1 with stage N)")
    return n


def positive(text: str) -> int:
    n = _int(text, "the value")
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {n}")
    return n


def op_count(text: str) -> int:
    n = positive(text)
    if n > MAX_OPS:
        raise argparse.ArgumentTypeError(f"at most {MAX_OPS} ops, not {n}")
    return n


def seed_value(text: str) -> int:
    return _int(text, "a seed")


# ------------------------------------------------------------------ output helpers
def out(line: str = "") -> None:
    print(line)


def warn(line: str) -> None:
    print(line, file=sys.stderr)


def _flat(value: Any) -> bool:
    """A scalar, or a list of scalars and lists of scalars: printed on one line."""
    if isinstance(value, (dict, list)):
        return isinstance(value, list) and all(
            not isinstance(x, (dict, list)) or (isinstance(x, list) and _flat(x)) for x in value)
    return True


def to_json(obj: Any, indent: int = 0) -> str:
    """Indented JSON with page ranges and other flat lists on one line."""
    pad, inner = "  " * indent, "  " * (indent + 1)
    if _flat(obj) or (isinstance(obj, dict) and not obj):
        return json.dumps(obj)
    if isinstance(obj, dict):
        items = [f"{inner}{json.dumps(str(k))}: {to_json(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    items = [f"{inner}{to_json(v, indent + 1)}" for v in obj]
    return "[\n" + ",\n".join(items) + "\n" + pad + "]"


def emit_json(obj: Any) -> None:
    print(to_json(obj))


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def short(value: Any, width: int = 100) -> str:
    text = json.dumps(value)
    return text if len(text) <= width else text[:width - 3] + "..."


# ------------------------------------------------------------------ list
def cmd_list(args) -> int:
    register = load_register_safely()
    by_rung = entries_by_rung(register or [])
    rows = []
    for n in range(LAST + 1):
        cls = stage(n)
        entries = by_rung.get(n, [])
        if n == 0:
            status = "baseline"
        elif register is None:
            status = "unknown (register unreadable)"
        else:
            status = "diverges" if entries else "same behaviour"
        rows.append({
            "stage": n, "title": cls.TITLE, "kind": cls.KIND, "upstream": cls.UPSTREAM,
            "module": MODULES[n], "status": status,
            "divergences": [{"id": e.id, "status": e.status, "what": e.what} for e in entries],
        })
    if args.json:
        emit_json(rows)
        return 0
    tw = max(len(r["title"]) for r in rows)
    kw = max(len(r["kind"]) for r in rows)
    uw = max(len(r["upstream"] or "-") for r in rows)
    out(f"{'#':>2}  {'title (v2)':<{tw}}  {'kind of step':<{kw}}  {'upstream':<{uw}}  rung")
    for r in rows:
        status = r["status"]
        if r["divergences"]:
            status += ": " + ", ".join(d["id"] for d in r["divergences"])
        out(f"{r['stage']:>2}  {r['title']:<{tw}}  {r['kind']:<{kw}}  {r['upstream'] or '-':<{uw}}  {status}")
    return 0


# ------------------------------------------------------------------ show
def _stage_header(cls: type) -> list[str]:
    return [f"stage {cls.STAGE:02d}: {cls.TITLE}",
            (f"  kind: {cls.KIND}; upstream: {cls.UPSTREAM or '- (not merged as such)'}; "
             f"module: {module_path(cls.__module__)}")]


def _unknown_function(n: int, name: str, api: Api) -> UserError:
    cls = api.cls
    owner, raw = resolve(cls, name)
    if isinstance(raw, removed):
        why = f" ({raw.why})" if raw.why else ""
        return UserError(f"stage {n} has no function {name}: removed at stage {owner.STAGE}{why}")
    present = [] if name.startswith("_") else [
        k for k in range(LAST + 1) if function_of(stage(k), name) is not None]
    if present:
        return UserError(f"stage {n} has no function {name}: it exists at stages {spans(present)}")
    close = difflib.get_close_matches(name, list(api.functions) + list(api.constants), n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    return UserError(f"stage {n} has no function {name!r}{hint}")


def cmd_show(args) -> int:
    api = api_of(args.stage)
    cls = api.cls
    if args.function:
        name = args.function
        if name in api.constants:
            c = api.constants[name]
            if args.json:
                emit_json({"stage": api.n, "constant": c.as_dict()})
            else:
                out(f"{name} = {c.value} at stage {api.n:02d}; declared in {c.declared_in or '-'}; "
                    f"last changed at stage {c.owner.STAGE:02d} ({module_path(c.owner.__module__)})")
            return 0
        fn = api.functions.get(name)
        if fn is None:
            raise _unknown_function(api.n, name, api)
        if args.json:
            emit_json({"stage": api.n, "function": {**fn.as_dict(), "source": fn.source}})
            return 0
        out(f"{name}{fn.signature}")
        out(f"  at stage {api.n:02d}: declared in {fn.declared_in or '-'}")
        since = f"  in force since stage {fn.last_changed:02d} ({module_path(fn.owner.__module__)})"
        if fn.alias_of:
            since += f", bound there to {fn.alias_of}"
        out(since)
        out(f"  source written in {fn.written_in}" + (f" as {fn.alias_of}" if fn.alias_of else ""))
        out()
        out(fn.source.rstrip("\n"))
        return 0

    if args.json:
        emit_json({
            "stage": api.n, "title": cls.TITLE, "kind": cls.KIND, "upstream": cls.UPSTREAM,
            "module": module_path(cls.__module__),
            "representation": api.repr_dict(),
            "constants": [c.as_dict() for c in api.constants.values()],
            "functions": [f.as_dict() for f in api.functions.values()],
            "other_declarations": api.other,
        })
        return 0
    for line in _stage_header(cls):
        out(line)
    out()
    out(f"representation: {api.representation} ({api.repr_dict()['store']})")
    out(f"  {per_page_text(api)}")
    out()
    out(f"constants ({len(api.constants)}):")
    nw = max((len(c) for c in api.constants), default=0)
    for c in api.constants.values():
        out(f"  {c.name:<{nw}} = {c.value:<4}  {c.declared_in or '-'}  (stage {c.owner.STAGE:02d})")
    out()
    out(f"functions ({len(api.functions)}): name, declared in, last changed at stage, signature")
    nw = max((len(f) for f in api.functions), default=0)
    dw = max((len(f.declared_in or "-") for f in api.functions.values()), default=0)
    for f in api.functions.values():
        out(f"  {f.name:<{nw}}  {f.declared_in or '-':<{dw}}  {f.last_changed:02d}  {f.signature}")
    if api.other:
        out()
        out("other declarations (types):")
        ow = max(len(name) for name in api.other)
        for name, where in api.other.items():
            out(f"  {name:<{ow}}  {where}")
    return 0


# ------------------------------------------------------------------ diff
def cmd_diff(args) -> int:
    n, m = args.n, args.m
    if m is None:
        if n == 0:
            raise UserError("stage 0 has no stage before it: give two stages, e.g. `diff 0 5`")
        n, m = n - 1, n
    d = compute_diff(n, m)
    if args.json:
        emit_json(d)
        return 0
    out(f"diff stage {n:02d} -> stage {m:02d}" + ("  (backwards)" if m < n else ""))
    if d["message"]:
        out()
        out(textwrap.indent(d["message"], "    "))
    elif d["commits"]:
        out("commits:")
        for c in d["commits"]:
            out(f"  {c['stage']:02d}  {c['upstream'] or '-':<24}  {c['title']}")
    out()
    nothing = True

    def section(title: str, lines: list[str]) -> None:
        nonlocal nothing
        if lines:
            nothing = False
            out(f"{title}:")
            for line in lines:
                out(f"  {line}")
            out()

    section("removed", [f"{r['name']}{r['signature']}" for r in d["removed"]])
    section("added", [f"{r['name']}{r['signature']}  [{r['declared_in'] or '-'}]" for r in d["added"]])
    section("renamed", [f"{r['from']} -> {r['to']}  ("
                        + ("likely rename: " if r["likely"] else "possible rename, ") + r["reason"] + ")"
                        for r in d["renamed"]])
    sig_lines = []
    for s in d["signature_changes"]:
        sig_lines.append(f"{s['name']}: {s['from']}  ->  {s['to']}")
        if "parameters" in s:
            sig_lines.append(f"    parameters: {', '.join(s['parameters']['from'])} -> "
                             f"{', '.join(s['parameters']['to'])}")
        if "returns" in s:
            sig_lines.append(f"    returns: {s['returns']['from'] or 'unannotated'} -> "
                             f"{s['returns']['to'] or 'unannotated'}")
    section("signatures changed", sig_lines)
    rep = d["representation"]
    if rep["changed"]:
        section("representation changed", [
            (f"{rep['from']['kind']} ({bytes_text(rep['from']['bytes_per_page'])} per page) -> "
             f"{rep['to']['kind']} ({bytes_text(rep['to']['bytes_per_page'])} per page)"),
            f"from {rep['from']['store']}", f"to {rep['to']['store']}"])
    c = d["constants"]
    section("constants changed",
            [f"- {k} = {v}" for k, v in c["removed"].items()]
            + [f"+ {k} = {v}" for k, v in c["added"].items()]
            + [f"~ {k}: {v[0]} -> {v[1]}" for k, v in c["changed"].items()])
    section("declarations moved", [f"{x['name']}: {x['from']} -> {x['to']}" for x in d["declarations_moved"]])
    section("behaviour (register)", [f"rung {e['rung']:02d} diverges: {e['id']} ({e['status']}): {e['what']}"
                                     for e in d["divergences"]])
    if d["changed_functions"]:
        nothing = False
        out(f"source changed ({len(d['changed_functions'])}):")
        for ch in d["changed_functions"]:
            out()
            out(ch["diff"].rstrip("\n"))
        out()
    if nothing:
        out("no change in the dirty API")
    return 0


# ------------------------------------------------------------------ traces
def read_trace(path: str):
    """The validated Trace of a file ('-' for stdin); a TraceError becomes a UserError."""
    from .trace import TraceError, load, loads
    where = "stdin" if path == "-" else path
    try:
        if path == "-":
            return loads(sys.stdin.read())
        return load(path)
    except TraceError as exc:
        raise UserError(f"{where}: {exc}") from None
    except OSError as exc:                         # reading stdin
        raise UserError(f"{where}: cannot read: {exc.strerror or exc}") from None


def describe_config(trace) -> str:
    c = trace.config
    return f"host_page_size {c.host_page_size}, accel {c.accel}, xen {str(c.xen).lower()}"


def describe_op(op: dict) -> str:
    args = " ".join(f"{k}={v}" for k, v in op.items() if k != "op")
    return f"{op['op']} {args}".rstrip()


def run_stage(n: int, trace, on_op=None) -> dict[str, Any]:
    """replay(), with a failure of the stage's code turned into a Failure
    naming the op it failed on."""
    from .machine import Machine, replay
    cls = stage(n)
    try:
        return replay(cls, trace, on_op)
    except Exception as exc:           # noqa: BLE001 -- the stage's code failed: say where
        machine = Machine(cls, trace.config)
        index = None
        for i, op in enumerate(trace.ops):
            try:
                machine.run_op(op)
            except Exception:          # noqa: BLE001
                index = i
                break
        where = f"op {index} ({trace.ops[index]['op']})" if index is not None else "reading the state"
        detail = f"failed at {where}: {type(exc).__name__}: {' '.join(str(exc).split())}"
        failure = Failure(f"stage {n} {detail}")
        failure.detail = detail
        raise failure from None


def refuse_long_walks(args, trace, stages: list[int]) -> None:
    """A UserError, before anything runs, when the stages would walk more
    pages one at a time than the limit (dirty_ladder/walks.py)."""
    from . import walks
    try:
        max_pages = walks.limit(args.max_pages, os.environ)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    why = walks.refusal(trace, stages, max_pages)
    if why:
        raise UserError(f"{args.trace}: {why}")


def cmd_replay(args) -> int:
    from .progress import ReplayProgress
    trace = read_trace(args.trace)
    refuse_long_walks(args, trace, list(range(LAST + 1)) if args.all else [args.stage])
    if args.all:
        return replay_all(args, trace)
    with ReplayProgress(trace.ops, [args.stage]) as progress:
        progress.at_stage(args.stage)
        result = run_stage(args.stage, trace, progress.at_op)
    if args.summary:
        return print_summary(args, trace, result)
    if args.json:
        emit_json(result)
        return 0
    cls = stage(args.stage)
    out(f"stage {args.stage:02d}: {cls.TITLE}")
    out(f"trace {args.trace}: {plural(len(trace.ops), 'op')}; {describe_config(trace)}")
    out()
    out("results:")
    iw = len(str(max(len(trace.ops) - 1, 0)))
    descriptions = [describe_op(op) for op in trace.ops]
    dw = min(max((len(d) for d in descriptions), default=0), 60)
    for i, (text, value) in enumerate(zip(descriptions, result["results"])):
        out(f"  [{i:>{iw}}] {text:<{dw}}  -> {json.dumps(value)}")
    out()
    out("state:")
    state = result["state"]
    rows = []
    for key, value in state.items():
        if isinstance(value, dict) and key in ("dirty", "tlb"):
            rows += [(f"{key}.{k}", v) for k, v in value.items()]
        else:
            rows.append((key, value))
    kw = max(len(k) for k, _ in rows)
    for k, v in rows:
        out(f"  {k:<{kw}}  {json.dumps(v)}")
    return 0


# ------------------------------------------------------------------ replay --summary
def print_summary(args, trace, result: dict[str, Any]) -> int:
    from .summary import summarize
    summary = summarize(trace, result)
    if args.json:
        emit_json(summary)
        return 0
    out(f"stage {args.stage:02d}: {stage(args.stage).TITLE}")
    out(f"trace {args.trace}: {plural(len(trace.ops), 'op')}; {describe_config(trace)}")
    out()
    out("results by op (count: result x times):")
    ow = max((len(op) for op in summary["results_by_op"]), default=0)
    for op, entry in summary["results_by_op"].items():
        values = [f"{v} x{k:,}" for v, k in entry["results"].items()]
        more = f", and {len(values) - 5:,} other values" if len(values) > 5 else ""
        out(f"  {op:<{ow}}  {entry['count']:>9,}: {', '.join(values[:5])}{more}")
    out()
    out("state in short:")
    st = summary["state"]

    def counted(n: int, word: str) -> str:
        return f"{n:,} {word}" + ("" if n == 1 else "s")

    def pages(c: dict[str, int]) -> str:
        return f"{counted(c['pages'], 'page')} in {counted(c['ranges'], 'range')}"

    rows = [("blocks", f"{counted(st['blocks']['blocks'], 'block')}, {counted(st['blocks']['bytes'], 'byte')}")]
    rows += [(f"dirty.{client}", pages(c)) for client, c in st["dirty"].items()]
    rows += [(f"tlb.{kind}", pages(c)) for kind, c in st["tlb"].items()]
    rows += [("tb_pages", pages(st["tb_pages"])),
             ("kvm_log", f"{counted(st['kvm_log']['host_pages'], 'host page')} in "
                         f"{counted(st['kvm_log']['blocks'], 'block')}"),
             ("in_migration", json.dumps(st["in_migration"])),
             ("migration", "null" if st["migration"] is None else
              f"bitmap {pages(st['migration'])}, dirty_pages {st['migration']['dirty_pages']:,}"),
             ("xen", counted(st["xen"]["calls"], "call"))]
    kw = max(len(k) for k, _ in rows)
    for k, v in rows:
        out(f"  {k:<{kw}}  {v}")
    return 0


# ------------------------------------------------------------------ replay --all
def rung_change(n: int, before: dict[str, Any], after: dict[str, Any], trace, register: list
                ) -> dict[str, Any] | None:
    """What changes from stage n-1 to n, and the register entry explaining it."""
    from .machine import first_difference
    from .rungs import explain_change
    if "error" in before or "error" in after:
        if before == after:
            return None
        path, a, b = "error", before.get("error"), after.get("error")
    else:
        diff = first_difference(before, after)
        if diff is None:
            return None
        path, a, b = diff
    entry = explain_change(n, path, trace, register)
    return {"rung": n, "title": stage(n).TITLE, "path": path, "before": a, "after": b,
            "explained_by": entry.id if entry else None}


def replay_all(args, trace) -> int:
    """Stage by stage: only the previous stage's result is kept for the
    comparison, and one result per behaviour for the JSON output."""
    from .progress import ReplayProgress
    from .summary import summarize
    register = load_register_safely() or []
    stages = list(range(LAST + 1))
    changes: list[dict[str, Any]] = []
    behaviours: list[dict[str, Any]] = []
    previous = None
    with ReplayProgress(trace.ops, stages) as progress:
        for n in stages:
            progress.at_stage(n)
            try:
                r = run_stage(n, trace, progress.at_op)
                kept = summarize(trace, r) if args.summary else r
                r = {k: v for k, v in r.items() if k != "stage"}
            except Failure as exc:
                r = kept = {"error": exc.detail}
            change = None if previous is None else rung_change(n, previous, r, trace, register)
            if change is not None:
                changes.append(change)
            if previous is None or change is not None:
                if not args.json:           # the text shows the results in short
                    kept = {"error": r["error"]} if "error" in r else {"results": short(r["results"], 80)}
                kept.pop("stage", None)
                behaviours.append({"stages": [n, n], "result": kept})
            else:
                behaviours[-1]["stages"][1] = n
            previous = r
    if args.json:
        emit_json({"trace": args.trace, "config": trace.config.as_dict(), "ops": len(trace.ops),
                   "changes": changes, "behaviours": behaviours})
        return 0
    out(f"trace {args.trace}: {plural(len(trace.ops), 'op')}; {describe_config(trace)}; replayed on stages 0-{LAST}")
    for bh in behaviours:
        a, b = bh["stages"]
        res = bh["result"]
        what = f"error: {res['error']}" if "error" in res else f"results {res['results']}"
        out(f"  stages {a:02d}-{b:02d}: {what}")
    out()
    if not changes:
        out(f"the observables are the same on all {LAST + 1} stages")
        return 0
    entries = {e.id: e for e in register}
    out(f"the observables change at {len(changes)} rung{'s' if len(changes) > 1 else ''}:")
    for c in changes:
        out(f"  rung {c['rung']:02d} ({c['rung'] - 1:02d} -> {c['rung']:02d}, {c['title']}): "
            f"{c['path']}: {short(c['before'])} -> {short(c['after'])}")
        entry = entries.get(c["explained_by"])
        out(f"    register: {entry.id} ({entry.status}): {entry.what}" if entry else "    not in the register")
    return 0


# ------------------------------------------------------------------ check
def cmd_check(args) -> int:
    if args.all and args.rung is not None:
        raise UserError(f"{args.prog}: give a rung number or --all, not both")
    if not args.all and args.rung is None:
        raise UserError(f"{args.prog}: give a rung number (1 to {LAST}) or --all")
    from . import rungs as ladder
    profiles = dict(ladder.PROFILES)
    if args.profile not in profiles:
        raise UserError(f"{args.prog}: unknown profile {args.profile!r}: choose from {', '.join(profiles)}")
    examples = args.examples if args.examples is not None else profiles[args.profile]
    levels = tuple(dict.fromkeys(args.level)) if args.level else tuple(ladder.LEVELS)
    rungs = list(range(1, LAST + 1)) if args.all else [args.rung]
    tty = sys.stderr.isatty()
    rows, any_new, written = [], False, []
    for position, rung in enumerate(rungs, 1):
        counts: dict[str, int] = {}
        last_draw = [0.0]

        def progress(level: str, i: int, rung=rung, counts=counts, last_draw=last_draw) -> None:
            counts[level] = max(counts.get(level, 0), i)
            if tty and time.monotonic() - last_draw[0] > 0.2:
                last_draw[0] = time.monotonic()
                sys.stderr.write(f"\rrung {rung:02d}: {level} {i}/{examples}   ")
                sys.stderr.flush()

        t0 = time.monotonic()
        try:
            report = ladder.check_rung(rung, examples, seed=args.seed, levels=levels, progress=progress)
        except (tomllib.TOMLDecodeError, OSError) as exc:
            raise Failure(f"cannot read the divergence register: {' '.join(str(exc).split())}") from None
        elapsed = time.monotonic() - t0
        run = sum(counts.values())
        if tty:
            sys.stderr.write("\r\033[K")
        warn(f"[{position}/{len(rungs)}] rung {rung:02d} ({rung - 1:02d} -> {rung:02d}): {report.status} "
             f"({run} examples, {elapsed:.1f} s)")
        new = []
        per_level: dict[str, int] = {}
        for finding in report.new:
            any_new = True
            per_level[finding.level] = per_level.get(finding.level, 0) + 1
            path = None
            if finding.trace is not None:
                path = f"new-difference-rung{rung:02d}-{finding.level}-{per_level[finding.level]}.json"
                try:
                    with open(path, "w", encoding="utf-8") as fh:
                        fh.write(format_trace(finding.trace.as_dict()))
                    written.append(path)
                except OSError as exc:
                    warn(f"error: cannot write {path}: {exc.strerror or exc}")
                    path = None
            new.append({"signature": finding.signature, "level": finding.level, "detail": finding.detail,
                        "trace_file": path})
        for entry in report.missing:
            warn(f"warning: rung {rung:02d}: registered difference {entry.id} not found in {run} examples "
                 f"(more --examples or --profile deep may find it)")
        rows.append({"rung": rung, "examples_run": run, "examples_per_level": examples,
                     "status": report.status,
                     "explained": [e.id for e in report.explained],
                     "missing": [e.id for e in report.missing],
                     "new": new, "seconds": round(elapsed, 3)})
    if args.json:
        emit_json({"profile": args.profile if args.examples is None else None, "examples": examples,
                   "seed": args.seed, "levels": list(levels), "rungs": rows, "new_difference": any_new})
    else:
        sw = max(len("status"), *(len(r["status"]) for r in rows))
        out(f"{'rung':>4}  {'examples':>8}  {'status':<{sw}}  register entries")
        for r in rows:
            ids = (r["explained"] + [f"{i} (not found)" for i in r["missing"]]
                   + [f"new: {f['signature']}" for f in r["new"]])
            out(f"{r['rung']:>4}  {r['examples_run']:>8}  {r['status']:<{sw}}  {', '.join(ids) or '-'}")
        for r in rows:
            for f in r["new"]:
                out()
                out(f"rung {r['rung']:02d}: NEW DIFFERENCE {f['signature']}")
                out(f"  {f['detail']}")
                if f["trace_file"]:
                    out(f"  minimal trace: {f['trace_file']}")
                    out(f"  see it with: {args.top} replay {f['trace_file']} --all")
                else:
                    out("  (no trace: found by a direct API call)")
    return 1 if any_new else 0


# ------------------------------------------------------------------ trace
def format_trace(obj: dict[str, Any]) -> str:
    """A trace as JSON with one op per line, easy to edit."""
    lines = ["{", f'  "format": {json.dumps(obj["format"])},', f'  "config": {json.dumps(obj["config"])},']
    ops = obj["ops"]
    if not ops:
        lines.append('  "ops": []')
    else:
        lines.append('  "ops": [')
        lines += [f"    {json.dumps(op)}" + ("," if i < len(ops) - 1 else "") for i, op in enumerate(ops)]
        lines.append("  ]")
    lines.append("}")
    return "\n".join(lines) + "\n"


def cmd_trace_random(args) -> int:
    from .generate import random_trace
    from .trace import DEFAULT_CONFIG, Config
    config = None
    if args.host_page_size is not None or args.accel is not None or args.xen is not None:
        config = Config(
            DEFAULT_CONFIG["host_page_size"] if args.host_page_size is None else args.host_page_size,
            DEFAULT_CONFIG["accel"] if args.accel is None else args.accel,
            DEFAULT_CONFIG["xen"] if args.xen is None else args.xen)
    trace = random_trace(args.seed, args.ops, config)
    text = format_trace(trace.as_dict())
    if args.output and args.output != "-":
        try:
            with open(args.output, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as exc:
            raise UserError(f"cannot write {args.output}: {exc.strerror or exc}") from None
        warn(f"wrote {args.output}: {plural(len(trace.ops), 'op')}; {describe_config(trace)}")
    else:
        sys.stdout.write(text)
    return 0


def cmd_trace_validate(args) -> int:
    trace = read_trace(args.trace)
    if args.json:
        emit_json({"valid": True, "ops": len(trace.ops), "config": trace.config.as_dict()})
    else:
        out(f"{args.trace}: valid, {plural(len(trace.ops), 'op')}; {describe_config(trace)}")
    return 0


# ------------------------------------------------------------------ the parser
def build_parser(prog: str = "dirty-ladder") -> Parser:
    p = Parser(prog=prog, formatter_class=Formatter,
               description="Step through QEMU's 2013 dirty-bitmap series, one stage at a time, "
                           "and run your own traces through it.",
               epilog=textwrap.dedent(f"""\
                   examples:
                     {prog} list
                     {prog} show 19
                     {prog} diff 19
                     {prog} trace random --seed 1 -o my.json
                     {prog} replay my.json --all
                     {prog} check 27 --examples 200

                   Exit status: 0 ok; 1 check found a new difference (or a stage failed);
                   2 a user error (one line on stderr)."""))
    p.set_defaults(top=prog)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)

    def add(name: str, help_: str, epilog: str, description: str | None = None) -> Parser:
        sp = sub.add_parser(name, help=help_, description=description or help_, formatter_class=Formatter,
                            epilog="example:\n" + textwrap.indent(textwrap.dedent(epilog).strip("\n"), "  "))
        return sp

    sp = add("list", "the 40 stages: number, v2 title, kind of step, upstream hash, rung status",
             f"{prog} list\n{prog} list --json")
    sp.add_argument("--json", action="store_true", help="print a JSON list")
    sp.set_defaults(func=cmd_list)

    sp = add("show", "the dirty API at stage N, or the source of one function there",
             f"{prog} show 19\n{prog} show 25 cpu_physical_memory_clear_dirty_range\n{prog} show 19 --json",
             description="Without FUNCTION: the constants, the state representation with its bytes per "
                         "page, and each dirty-API function with its signature, the C file or header "
                         "that declares it at that stage and the stage that last changed it. With "
                         "FUNCTION: its Python source as in force at stage N, wherever it was written.")
    sp.add_argument("stage", type=stage_number, metavar="N", help=f"stage number, 0 to {LAST}")
    sp.add_argument("function", nargs="?", metavar="FUNCTION", help="a function (or constant) of that stage")
    sp.add_argument("--json", action="store_true", help="print JSON")
    sp.set_defaults(func=cmd_show)

    sp = add("diff", "what changed from stage N-1 to N (or from N to M)",
             f"{prog} diff 25        # stage 24 -> 25: a rename\n{prog} diff 12 19     # several commits\n"
             f"{prog} diff 29 --json",
             description="Functions added, removed and renamed (likely when the body is the same), "
                         "signatures changed, representation and constants changed, declarations "
                         "moved, the register's divergences, and a unified diff of the source of each "
                         "changed function: `git show` for the ladder.")
    sp.add_argument("n", type=stage_number, metavar="N", help="stage (alone: compared with N-1)")
    sp.add_argument("m", type=stage_number, metavar="M", nargs="?", help="second stage: diff N -> M")
    sp.add_argument("--json", action="store_true", help="print JSON")
    sp.set_defaults(func=cmd_diff)

    sp = add("replay", "run a trace (format: docs/trace-format.md) on one stage, or on all 40",
             f"{prog} trace random --seed 3 -o t.json\n{prog} replay t.json --stage 19\n"
             f"{prog} replay t.json --stage 19 --json   # the dirty-trace-result/1 object\n"
             f"{prog} replay t.json --all               # where the observables change\n"
             f"{prog} replay long.json --stage 0 --summary",
             description="Run a trace on one stage (--stage N) or on all 40 (--all). The trace is "
                         "checked first (docs/trace-format.md), and refused when its page-by-page "
                         "walks would take too long (--max-pages). A replay that runs long shows its "
                         "progress on stderr (on a terminal from the first second, elsewhere every "
                         "15 s); stdout holds only the result.")
    sp.add_argument("trace", metavar="TRACE.json", help="a dirty-trace/1 file ('-' for stdin)")
    which = sp.add_mutually_exclusive_group(required=True)
    which.add_argument("--stage", type=stage_number, metavar="N", help="the stage to run it on")
    which.add_argument("--all", action="store_true",
                       help="run on all stages and report each rung where the observables change, "
                            "with the register entry that explains it")
    sp.add_argument("--json", action="store_true", help="print JSON")
    sp.add_argument("--summary", action="store_true",
                    help="count the results of each op and give the final state in short, instead of "
                         "every result (for long traces; with --all, shortens each behaviour's --json)")
    from .walks import DEFAULT_MAX_PAGES, ENVIRONMENT
    sp.add_argument("--max-pages", type=positive, metavar="N",
                    help="refuse, before running, a trace whose page-by-page walks on the stages to run "
                         "(ranges until stage 26-28, all RAM at each migration sync until 38) would add "
                         f"up to more than N pages (default {DEFAULT_MAX_PAGES:,}, or ${ENVIRONMENT})")
    sp.set_defaults(func=cmd_replay)

    sp = add("check", "the differential check of rung N (stage N-1 -> N) or of every rung",
             f"{prog} check 27 --examples 200\n{prog} check --all --profile ci\n"
             f"{prog} check 30 --level machine --seed 7 --json",
             description="Runs random traces and API calls on both stages of each rung, reduces every "
                         "difference to a minimal trace and judges what it found against the register "
                         "(dirty_ladder/divergences.toml). A progress line per rung goes to stderr, a "
                         "summary table to stdout. A difference the register does not list is written "
                         "as new-difference-rungNN-LEVEL-K.json in the current directory (replay it) "
                         "and the exit status is 1.")
    sp.add_argument("rung", type=rung_number, nargs="?", metavar="N", help=f"rung, 1 to {LAST}")
    sp.add_argument("--all", action="store_true", help="check every rung")
    sp.add_argument("--examples", type=positive, metavar="K", help="examples per rung and level "
                    "(overrides --profile)")
    sp.add_argument("--profile", default="ci", metavar="NAME",
                    help="examples per rung and level from the ladder's profiles: ci (default) or deep")
    sp.add_argument("--seed", type=seed_value, default=0, metavar="S", help="seed (default 0)")
    sp.add_argument("--level", action="append", choices=("machine", "api", "repr"),
                    help="only this level (repeatable; default all three)")
    sp.add_argument("--json", action="store_true", help="print the summary as JSON")
    sp.set_defaults(func=cmd_check, prog=sp.prog)

    sp = add("trace", "make or check trace files",
             f"{prog} trace random --seed 1 --ops 40 --accel kvm -o t.json\n{prog} trace validate t.json")
    tsub = sp.add_subparsers(dest="trace_command", metavar="ACTION", required=True, parser_class=Parser)
    rp = tsub.add_parser("random", help="write a valid random trace", formatter_class=Formatter,
                         description="Write a valid random dirty-trace/1 trace, to start from and edit. "
                                     "With no config option the generator picks the config too; with "
                                     "any, the others take the defaults of docs/trace-format.md "
                                     "(4096, tcg, no xen).",
                         epilog=f"example:\n  {prog} trace random --seed 1 --ops 40 "
                                f"--host-page-size 65536 --accel kvm --xen -o t.json")
    rp.add_argument("--seed", type=seed_value, required=True, metavar="S", help="seed")
    rp.add_argument("--ops", type=op_count, default=30, metavar="K", help="number of ops (default 30)")
    rp.add_argument("--host-page-size", type=int, choices=(4096, 65536), help="host page size")
    rp.add_argument("--accel", choices=("tcg", "kvm"), help="accelerator")
    rp.add_argument("--xen", action=argparse.BooleanOptionalAction, default=None,
                    help="make xen_modified_memory observable")
    rp.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    rp.set_defaults(func=cmd_trace_random)
    vp = tsub.add_parser("validate", help="check a trace file without running it", formatter_class=Formatter,
                         description="Check a trace against the rules of docs/trace-format.md.",
                         epilog=f"example:\n  {prog} trace validate t.json")
    vp.add_argument("trace", metavar="TRACE.json", help="a dirty-trace/1 file ('-' for stdin)")
    vp.add_argument("--json", action="store_true", help="print JSON")
    vp.set_defaults(func=cmd_trace_validate)

    from . import bench
    sp = add("bench", "the cost per page of the operations the series changed, at every stage",
             f"{prog} bench                       # 4 GiB guest, 5% dirty, about a minute\n"
             f"{prog} bench --size 1G --json\n{prog} bench --plot bench.png   # needs '.[plot]'",
             description=bench.__doc__.split("\n\n")[0])
    bench.add_arguments(sp)
    sp.set_defaults(func=bench.run)
    return p


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """The entry point: returns the exit status (the console script exits with it)."""
    parser = build_parser(prog or "dirty-ladder")
    return finish(lambda: _main(parser, argv))


def _main(parser: Parser, argv: list[str] | None) -> int:
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:           # --help (0); argparse never exits otherwise here
            return exc.code if isinstance(exc.code, int) else 0
        return args.func(args)
    except UserError as exc:
        sys.stdout.flush()
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except UnknownStage as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except Failure as exc:
        sys.stdout.flush()
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
