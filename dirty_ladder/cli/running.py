"""Running traces: ``replay`` (a trace, or an API call, on one stage or on
all 40, with the rungs where the observables change) and ``trace`` (write a
random trace, or check one without running it)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from stages import LAST, stage

from .. import files
from ..model import exception_text, load_register_safely, spans
from ..trace import format_trace
from .common import (
    Failure, Parser, Formatter, UserError, add_command, add_timeout, contained_command, emit_json, load_user_stage,
    op_count, out, plural, positive, seed_value, short, stage_number, stderr, warn,
)


# ------------------------------------------------------------------ replay
def add_replay(sub, prog: str) -> None:
    sp = add_command(sub, "replay", "run a trace (format: docs/trace-format.md) on one stage, or on all 40",
                          f"{prog} trace random --seed 3 -o t.json\n{prog} replay t.json --stage 19\n"
                          f"{prog} replay t.json --stage 19 --json   # the dirty-trace-result/1 object\n"
                          f"{prog} replay t.json --all               # where the observables change\n"
                          f"{prog} replay long.json --stage 0 --summary\n"
                          f"{prog} replay t.json --stage 27 --stage-file exercise_27.py   # on your stage 27\n"
                          f"{prog} replay new-difference-rung27-api-1.call.json --all      # an API-level reproducer",
                          description="Run a trace on one stage (--stage N) or on all 40 (--all). The trace is "
                                      "checked first (docs/trace-format.md), and refused when its page-by-page "
                                      "walks would take too long (--max-pages). A replay that runs long shows its "
                                      "progress on stderr (on a terminal from the first second, elsewhere every "
                                      "15 s); stdout holds only the result. A dirty-call/1 file (an API-level "
                                      "reproducer that check and verify write) replays its call instead.")
    sp.add_argument("trace", metavar="TRACE.json", help="a dirty-trace/1 file ('-' for stdin)")
    which = sp.add_mutually_exclusive_group(required=True)
    which.add_argument("--stage", type=stage_number, metavar="N", help="the stage to run it on")
    which.add_argument("--all", action="store_true",
                       help="run on all stages and report each rung where the observables change, "
                            "with the register entry that explains it")
    sp.add_argument("--stage-file", metavar="FILE",
                    help="a module whose class Stage stands in for the stage its STAGE names "
                         "(with --stage N: for stage N)")
    add_timeout(sp, "a replay on --stage-file's module")
    sp.add_argument("--json", action="store_true", help="print JSON")
    sp.add_argument("--summary", action="store_true",
                    help="count the results of each op and give the final state in short, instead of "
                         "every result (for long traces; with --all, shortens each behaviour's --json)")
    from ..walks import DEFAULT_MAX_PAGES, ENVIRONMENT
    sp.add_argument("--max-pages", type=positive, metavar="N",
                    help="refuse, before running, a trace whose page-by-page walks on the stages to run "
                         "(ranges until stage 26-28, all RAM at each migration sync until 38) would add "
                         f"up to more than N pages (default {DEFAULT_MAX_PAGES:,}, or ${ENVIRONMENT})")
    sp.set_defaults(func=cmd_replay)


def read_trace(path: str):
    """The validated Trace of a file ('-' for stdin); a TraceError becomes a UserError."""
    from ..trace import TraceError, load, loads
    where = "stdin" if path == "-" else path
    try:
        if path == "-":
            return loads(sys.stdin.read())
        return load(path)
    except TraceError as exc:
        text = str(exc)                            # load() names the file it cannot read
        raise UserError(text if text.startswith(f"cannot read {where}:") else f"{where}: {text}") from None
    except OSError as exc:                         # reading stdin
        raise UserError(f"{where}: cannot read: {exc.strerror or exc}") from None


def describe_config(trace) -> str:
    c = trace.config
    return f"host_page_size {c.host_page_size}, accel {c.accel}, xen {str(c.xen).lower()}"


def describe_op(op: dict) -> str:
    args = " ".join(f"{k}={v}" for k, v in op.items() if k != "op")
    return f"{op['op']} {args}".rstrip()


def run_stage(n: int, trace, cls: type | None = None, on_op=None) -> dict[str, Any]:
    """replay(), with a failure of the stage's code turned into a Failure
    naming the op it failed on (``cls``: a class standing in for stage n)."""
    from ..machine import Machine, replay
    cls = stage(n) if cls is None else cls
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
        detail = f"failed at {where}: {exception_text(exc)}"
        failure = Failure(f"stage {n} {detail}")
        failure.detail = detail
        raise failure from None


def read_call(path: str) -> dict | None:
    """A ``dirty-call/1`` file (an API-level reproducer) as a call, or None
    when the file is something else (a trace: read_trace says what is wrong)."""
    from ..compare import parse_call
    from ..trace import CALL_FORMAT, TraceError
    if path == "-" or not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            raw = json.load(fh)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(raw, dict) or raw.get("format") != CALL_FORMAT:
        return None
    try:
        return parse_call(raw)
    except TraceError as exc:
        raise UserError(f"{path}: {exc}") from None


def replay_call(args, call: dict) -> int:
    """``replay`` of a dirty-call/1 file: the call on one stage, or on every
    stage that has the function, with the rungs where its outcome changes."""
    from ..compare import api_params, call_outcome, call_text
    name = call["function"]

    def outcome(cls: type) -> dict:
        try:
            return call_outcome(cls, call)
        except Exception as exc:           # noqa: BLE001 -- the stage failed before the call: say so
            return {"error": exception_text(exc)}

    def has(cls: type) -> bool:
        return callable(getattr(cls, name, None)) and api_params(cls, name) <= {"addr", "length", "end", "who",
                                                                                  "enable"}
    if not args.all:
        cls = args.user_stage or stage(args.stage)
        if not has(cls):
            raise UserError(f"stage {args.stage} has no function {name} taking these arguments")
        result = outcome(cls)
        if args.json:
            emit_json({"stage": args.stage, "call": call, "outcome": result})
            return 0
        out(f"stage {args.stage:02d}: {cls.TITLE}")
        out(f"call {args.trace}: {call_text(cls, name, call['args'])}")
        for key, value in result.items():
            out(f"  {key:<13} {json.dumps(value)}")
        return 0
    rows = []
    for n in range(LAST + 1):
        cls = args.user_stage if args.user_stage is not None and args.user_stage.STAGE == n else stage(n)
        if has(cls):
            rows.append((n, outcome(cls)))
    if not rows:
        raise UserError(f"no stage has a function {name}")
    changes = [{"rung": b[0], "before": a[1], "after": b[1]} for a, b in zip(rows, rows[1:])
               if a[1] != b[1]]
    if args.json:
        emit_json({"call": call, "stages": [n for n, _ in rows], "changes": changes,
                   "outcomes": [{"stage": n, "outcome": o} for n, o in rows]})
        return 0
    out(f"call {args.trace}: {name} exists at stages {spans([n for n, _ in rows])}")
    if not changes:
        out(f"  the outcome is the same at all of them: {short(rows[0][1])}")
        return 0
    for c in changes:
        diff = {k: (c["before"].get(k), c["after"].get(k)) for k in c["after"] if c["before"].get(k) != c["after"].get(k)}
        out(f"  rung {c['rung']:02d} ({stage(c['rung']).TITLE}):")
        for k, (a, b) in diff.items():
            out(f"    {k}: {short(a, 60)} -> {short(b, 60)}")
    return 0


def refuse_long_walks(args, trace, stages: list[int]) -> None:
    """A UserError, before anything runs, when the stages would walk more
    pages one at a time than the limit (dirty_ladder/walks.py)."""
    from .. import walks
    try:
        max_pages = walks.limit(args.max_pages, os.environ)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    why = walks.refusal(trace, stages, max_pages)
    if why:
        raise UserError(f"{args.trace}: {why}")


def cmd_replay(args) -> int:
    from ..contain import inside
    from ..progress import ReplayProgress
    if args.stage_file and not inside():
        return contained_command(args, "replay")
    call = read_call(args.trace)
    args.user_stage = load_user_stage(args.stage_file, args.stage) if args.stage_file else None
    if call is not None:
        return replay_call(args, call)
    trace = read_trace(args.trace)
    refuse_long_walks(args, trace, list(range(LAST + 1)) if args.all else [args.stage])
    if args.all:
        return replay_all(args, trace)
    with ReplayProgress(trace.ops, [args.stage], stderr()) as progress:
        progress.at_stage(args.stage)
        result = run_stage(args.stage, trace, args.user_stage, progress.at_op)
    if args.summary:
        return print_summary(args, trace, result)
    if args.json:
        emit_json(result)
        return 0
    cls = args.user_stage or stage(args.stage)
    out(f"stage {args.stage:02d}: {cls.TITLE}" + (f" ({args.stage_file})" if args.user_stage else ""))
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
    from ..summary import summarize
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
def rung_change(n: int, before: dict[str, Any], after: dict[str, Any], trace, register: list,
                user: type | None = None) -> dict[str, Any] | None:
    """What changes from stage n-1 to n, and the register entries whose
    behaviour changes make it (rungs.explain_change); None where they do not
    explain it, or a user's stage stands in on either side."""
    from ..machine import first_difference
    from ..rungs import explain_change
    if "error" in before or "error" in after:
        if before == after:
            return None
        path, a, b = "error", before.get("error"), after.get("error")
    else:
        diff = first_difference(before, after)
        if diff is None:
            return None
        path, a, b = diff
    if path == "error" or user is not None and user.STAGE in (n - 1, n):
        explained = None                    # the register speaks of the real stages, not yours
    else:
        entries = explain_change(n, trace, register)
        explained = None if entries is None else [e.id for e in entries]
    return {"rung": n, "title": stage(n).TITLE, "path": path, "before": a, "after": b,
            "explained_by": explained}


def replay_all(args, trace) -> int:
    """Stage by stage: only the previous stage's result is kept for the
    comparison, and one result per behaviour for the JSON output."""
    from ..progress import ReplayProgress
    from ..summary import summarize
    register = load_register_safely() or []
    user = getattr(args, "user_stage", None)
    stages = list(range(LAST + 1))
    changes: list[dict[str, Any]] = []
    behaviours: list[dict[str, Any]] = []
    previous = None
    with ReplayProgress(trace.ops, stages, stderr()) as progress:
        for n in stages:
            progress.at_stage(n)
            try:
                r = run_stage(n, trace, user if user is not None and user.STAGE == n else None,
                              progress.at_op)
                kept = summarize(trace, r) if args.summary else r
                r = {k: v for k, v in r.items() if k != "stage"}
            except Failure as exc:
                r = kept = {"error": exc.detail}
            change = None if previous is None else rung_change(n, previous, r, trace, register, user)
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
        if c["explained_by"]:
            for entry in (entries[i] for i in c["explained_by"]):
                out(f"    register: {entry.id} ({entry.status}): {entry.what}")
        else:
            out("    not in the register")
    return 0


# ------------------------------------------------------------------ trace
def add_trace(sub, prog: str) -> None:
    sp = add_command(sub, "trace", "make or check trace files",
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
    rp.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    rp.set_defaults(func=cmd_trace_random)
    vp = tsub.add_parser("validate", help="check a trace file without running it", formatter_class=Formatter,
                         description="Check a trace against the rules of docs/trace-format.md.",
                         epilog=f"example:\n  {prog} trace validate t.json")
    vp.add_argument("trace", metavar="TRACE.json", help="a dirty-trace/1 file ('-' for stdin)")
    vp.add_argument("--json", action="store_true", help="print JSON")
    vp.set_defaults(func=cmd_trace_validate)


def cmd_trace_random(args) -> int:
    from ..generate import random_trace
    from ..trace import DEFAULT_CONFIG, Config
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
            files.write_atomic(args.output, text, args.force)
        except files.FileRefused as exc:
            raise UserError(f"trace random: {exc}") from None
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


PARSERS = {"replay": add_replay, "trace": add_trace}
