"""Checking: ``check`` (the differential check of one rung or of all, on
random traces or every trace of a scope) and ``verify`` (a stage module of
the user's against the ladder)."""

from __future__ import annotations

import os
import sys
import textwrap
import time
import tomllib

from stages import LAST, stage

from ..files import FileRefused

from .common import (
    Failure, UserError, add_command, emit_json, load_user_stage, out, positive, rung_number, seed_value, warn,
)


# ------------------------------------------------------------------ check
def add_check(sub, prog: str) -> None:
    sp = add_command(sub, "check", "the differential check of rung N (stage N-1 -> N) or of every rung",
                          f"{prog} check 27 --examples 200\n{prog} check --all --profile ci\n"
                          f"{prog} check 30 --exhaustive                  # every trace of the ci scope\n"
                          f"{prog} check --all --exhaustive --scope medium --json > medium.json\n"
                          f"{prog} check 30 --level machine --seed 7 --json",
                          description="Runs each rung's stages side by side: stage N-1, stage N-1 with each register "
                                      "entry's override, the bridge (all of them) and stage N. The bridge and stage N "
                                      "must be exactly equal; each override must differ from stage N-1 only where its "
                                      "entry says. By default on random traces and API calls (--examples, --profile, "
                                      "--seed); with --exhaustive on every trace and call of a scope (--scope: ci, "
                                      "medium, large, or a TOML file; see docs/exhaustive.md), breadth first, so each "
                                      "difference comes with a shortest trace. Progress goes to stderr, a summary "
                                      "table to stdout. A new difference is written as new-difference-rungNN-LEVEL-K.json "
                                      "(a trace) or .call.json (an API call) in --out-dir (default the current "
                                      "directory), K the first number free there, and the exit status is 1.")
    sp.add_argument("rung", type=rung_number, nargs="?", metavar="N", help=f"rung, 1 to {LAST}")
    sp.add_argument("--all", action="store_true", help="check every rung")
    sp.add_argument("--exhaustive", action="store_true", help="every trace of a scope instead of random ones")
    sp.add_argument("--scope", metavar="NAME|FILE", help="the scope of --exhaustive (default ci)")
    sp.add_argument("--jobs", type=positive, metavar="J",
                    help="rungs checked at once, in separate processes (default: the CPUs, with --all)")
    sp.add_argument("--examples", type=positive, metavar="K", help="examples per rung and level "
                    "(overrides --profile)")
    sp.add_argument("--profile", default="ci", metavar="NAME",
                    help="examples per rung and level from the ladder's profiles: ci (default) or deep")
    sp.add_argument("--seed", type=seed_value, default=0, metavar="S", help="seed (default 0)")
    sp.add_argument("--level", action="append", choices=("machine", "api", "repr"),
                    help="only this level (repeatable; default all three)")
    sp.add_argument("--stage-file", metavar="FILE",
                    help="a module whose class Stage stands in for stage N (its STAGE); checks that rung")
    sp.add_argument("--out-dir", default=".", metavar="DIR",
                    help="where to write the reproducers of new differences (default: the current directory); "
                         "a file already there is never replaced")
    sp.add_argument("--json", action="store_true", help="print the summary as JSON")
    sp.set_defaults(func=cmd_check, prog=sp.prog)


def cmd_check(args) -> int:
    stand_in = None
    if args.stage_file:
        if args.all:
            raise UserError(f"{args.prog}: --stage-file checks the one rung of its stage, not --all")
        stand_in = load_user_stage(args.stage_file, args.rung)
        if stand_in.STAGE == 0:
            raise UserError(f"{args.prog}: {args.stage_file} is a stage 0: there is no rung below it")
        args.rung = stand_in.STAGE
    if not os.path.isdir(args.out_dir):
        raise UserError(f"{args.prog}: --out-dir {args.out_dir}: "
                        + ("not a directory" if os.path.exists(args.out_dir) else "no such directory"))
    if args.all and args.rung is not None:
        raise UserError(f"{args.prog}: give a rung number or --all, not both")
    if not args.all and args.rung is None:
        raise UserError(f"{args.prog}: give a rung number (1 to {LAST}) or --all")
    from .. import check
    from ..compare import LEVELS
    from ..rungs import PROFILES
    if args.profile not in PROFILES:
        raise UserError(f"{args.prog}: unknown profile {args.profile!r}: choose from {', '.join(PROFILES)}")
    if args.scope is not None and not args.exhaustive:
        raise UserError(f"{args.prog}: --scope needs --exhaustive")
    if args.exhaustive and (args.examples is not None or args.seed != 0):
        raise UserError(f"{args.prog}: --examples and --seed are for the random check, not --exhaustive")
    scope = None
    if args.exhaustive:
        from ..explore import ScopeError, load_scope
        try:
            scope = load_scope(args.scope or "ci")
        except ScopeError as exc:
            raise UserError(str(exc)) from None
    examples = args.examples if args.examples is not None else PROFILES[args.profile]
    levels = tuple(dict.fromkeys(args.level)) if args.level else LEVELS
    how = check.How(examples=examples, seed=args.seed, scope=args.scope or "ci" if scope else None, levels=levels)
    rungs = list(range(1, LAST + 1)) if args.all else [args.rung]
    jobs = args.jobs if args.jobs is not None else (check.default_jobs() if len(rungs) > 1 else 1)
    tty = sys.stderr.isatty()
    last_draw = [0.0]
    if scope is not None:
        warn(scope.summary())

    def progress(rung: int, info: dict) -> None:
        if time.monotonic() - last_draw[0] < (0.2 if tty else 10):
            return
        last_draw[0] = time.monotonic()
        if "examples" in info:
            text = f"rung {rung:02d}: {info['level']} {info['examples']}/{examples}"
        else:
            rate = info["states"] / info["seconds"] if info.get("seconds") else 0
            text = (f"rung {rung:02d}: {info['level']} depth {info.get('depth', '-')}, {info['states']} states, "
                    f"{rate:,.0f} states/s")
        if tty:
            sys.stderr.write(f"\r{text}   \033[K")
            sys.stderr.flush()
        else:
            warn(text)

    rows: list[dict] = []
    position = [0]

    def done(result, seconds: float) -> None:
        position[0] += 1
        if tty:
            sys.stderr.write("\r\033[K")
        runs = "; ".join(f"{r.level}: {r.states} states, {r.verdict}" for r in result.runs) or result.how
        warn(f"[{position[0]}/{len(rungs)}] rung {result.rung:02d} ({result.rung - 1:02d} -> {result.rung:02d}): "
             f"{result.status} ({runs}; {seconds:.1f} s)")

    started = time.monotonic()
    interrupted = False
    try:
        results = check.run(rungs, how, jobs, progress if jobs <= 1 else None, done, stand_in)
    except check.Interrupted as stop:       # Ctrl-C: the rungs finished so far, then exit 130
        results, interrupted = stop.results, True
        if tty:
            sys.stderr.write("\r\033[K")
    except (tomllib.TOMLDecodeError, OSError) as exc:
        raise Failure(f"cannot read the divergence register: {' '.join(str(exc).split())}") from None
    except Exception as exc:               # noqa: BLE001 -- a user's stage that fails: one line
        if stand_in is None:
            raise
        from ..verify import failed_in
        raise Failure(f"{args.stage_file}: your stage raised {failed_in(exc, args.stage_file)}") from None
    any_bad = False
    for result in results:
        row = check.report(result)
        row["files"] = []
        if result.new:
            try:
                row["files"] = check.write_reproducers(result, args.out_dir)
            except FileRefused as exc:
                warn(f"error: cannot write a reproducer: {exc}")
        any_bad = any_bad or not result.ok
        rows.append(row)
    if interrupted:
        warn(f"interrupted: {len(rows)} of {len(rungs)} rungs checked")
    status = 130 if interrupted else 1 if any_bad else 0
    if args.json:
        emit_json({"mode": "exhaustive" if scope else "random", "interrupted": interrupted,
                   "new_difference": any(r["new"] for r in rows),
                   "jobs": jobs, "wall_seconds": round(time.monotonic() - started, 3),
                   "scope": scope.name if scope else None,
                   "profile": args.profile if not scope and args.examples is None else None,
                   "examples": None if scope else examples, "seed": None if scope else args.seed,
                   "levels": list(levels), "rungs": rows, "ok": not any_bad and not interrupted})
        return status
    if not rows:
        return status
    sw = max(len("status"), *(len(r["status"]) for r in rows))
    checked = [check.checked_text(r) for r in rows]
    cw = max(len("checked"), *(len(c) for c in checked))
    out(f"{'rung':>4}  {'status':<{sw}}  {'checked':<{cw}}  register entries")
    for r, text in zip(rows, checked):
        ids = [e["id"] + (" (not reached)" if e["not_reached"] else "") for e in r["entries"]]
        out(f"{r['rung']:>4}  {r['status']:<{sw}}  {text:<{cw}}  {', '.join(ids) or '-'}")
    for result, r in zip(results, rows):
        if result.ok:
            continue
        from ..compare import problems
        out()
        out(f"rung {r['rung']:02d}: {r['status']}")
        for line in problems(result):
            out(f"  {line}")
        for path in r["files"]:
            mine = f" --stage-file {args.stage_file}" if args.stage_file else ""
            out(f"  reproducer: {path}  (see it with: {args.top} replay {path} --all{mine})")
    return status


# ------------------------------------------------------------------ verify
def add_verify(sub, prog: str) -> None:
    sp = add_command(sub, "verify", "check a stage module of yours (an exercise, or your own variant) against the ladder",
                          f"{prog} exercise 27 && $EDITOR exercise_27.py\n{prog} verify exercise_27.py\n"
                          f"{prog} verify my_stage_39.py --scope medium --json",
                          description="The module's class Stage stands in for stage N (its STAGE). Three checks: "
                                      "the rung from stage N-1 to your stage, explored exhaustively within a scope "
                                      "(it must equal, at every level, what commit N did, behaviour changes and bugs "
                                      "included); each register entry of rung N replayed on its own trace or call; "
                                      "and every conformance trace, which must give what the real C of commit N gave. "
                                      "Each failure names the rung, the level and a shortest trace. Exit status 0 when "
                                      "all three pass (the exercise is then marked done), 1 otherwise.")
    sp.add_argument("file", metavar="FILE", help="a Python module with a class Stage")
    sp.add_argument("--scope", default="ci", metavar="NAME|FILE",
                    help="the scope of the rung check (default ci; medium, large or a TOML file)")
    sp.add_argument("--json", action="store_true", help="print the verdict as JSON")
    sp.set_defaults(func=cmd_verify)


def cmd_verify(args) -> int:
    from ..explore import ScopeError, load_scope
    from ..verify import verify
    cls = load_user_stage(args.file, None)
    if cls.STAGE == 0:
        raise UserError(f"verify: {args.file} is a stage 0: commits are 1 to {LAST}")
    try:
        load_scope(args.scope)
    except ScopeError as exc:
        raise UserError(f"verify: {exc}") from None
    tty = sys.stderr.isatty()

    def progress(info: dict) -> None:
        if tty:
            sys.stderr.write(f"\rrung {cls.STAGE:02d}: {info['level']}, {info['states']} states   \033[K")
            sys.stderr.flush()

    verdict = verify(cls, args.file, args.scope, progress)
    if tty:
        sys.stderr.write("\r\033[K")
    if verdict.ok:
        from ..exercises import record_done
        try:
            record_done(cls.STAGE, args.file)
        except Exception as exc:           # noqa: BLE001 -- a progress file we cannot write is not fatal
            warn(f"warning: progress not recorded: {' '.join(str(exc).split())}")
    if args.json:
        emit_json(verdict.as_dict())
        return 0 if verdict.ok else 1
    real = stage(cls.STAGE)
    out(f"verify {args.file}: stage {cls.STAGE:02d}, {real.TITLE} (upstream {real.UPSTREAM or '-'})")
    for c in verdict.checks:
        out(f"  [{'ok' if c.ok else 'FAIL'}] {c.name}: {c.summary}")
        for line in c.details:
            out(textwrap.indent(line, "         "))
    out()
    if verdict.ok:
        out(f"Your stage does what commit {cls.STAGE:02d} did. Marked done: {args.top} exercise --progress")
    else:
        out(f"Your stage does not yet do what commit {cls.STAGE:02d} did. Hints: {args.top} exercise "
            f"{cls.STAGE} --hint; your change: {args.top} diff {cls.STAGE} --stage-file {args.file}")
    return 0 if verdict.ok else 1


PARSERS = {"check": add_check, "verify": add_verify}
