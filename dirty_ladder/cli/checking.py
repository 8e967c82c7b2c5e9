"""Checking: ``check`` (the differential check of one rung or of all, on
random traces or every trace of a scope) and ``verify`` (a stage module of
the user's against the ladder)."""

from __future__ import annotations

import os
import sys
import time
import tomllib

from stages import LAST

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
                                      "(a trace) or .call.json (an API call) in the current directory, and the exit "
                                      "status is 1.")
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
    try:
        results = check.run(rungs, how, jobs, progress if jobs <= 1 else None, done, stand_in)
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
                row["files"] = check.write_reproducers(result)
            except OSError as exc:
                warn(f"error: cannot write a reproducer: {exc.strerror or exc}")
        any_bad = any_bad or not result.ok
        rows.append(row)
    if args.json:
        emit_json({"mode": "exhaustive" if scope else "random",
                   "new_difference": any(r["new"] for r in rows),
                   "jobs": jobs, "wall_seconds": round(time.monotonic() - started, 3),
                   "scope": scope.name if scope else None,
                   "profile": args.profile if not scope and args.examples is None else None,
                   "examples": None if scope else examples, "seed": None if scope else args.seed,
                   "levels": list(levels), "rungs": rows, "ok": not any_bad})
        return 1 if any_bad else 0
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
    return 1 if any_bad else 0


# ------------------------------------------------------------------ verify
def add_verify(sub, prog: str) -> None:
    sp = add_command(sub, "verify", "check a stage module of yours (an exercise, or your own variant) against the ladder",
                          f"{prog} exercise 27 && $EDITOR exercise_27.py\n{prog} verify exercise_27.py\n"
                          f"{prog} verify --watch exercise_27.py   # again on every save\n"
                          f"{prog} verify my_stage_39.py --scope medium --json",
                          description="The module's class Stage stands in for stage N (its STAGE). What done "
                                      "means for commit N is read off the ladder: behaviour, and each structural "
                                      "aspect the commit changes (representation, API surface, calls, refusals, "
                                      "cost shape, declarations, source); the output lists them first. A quick "
                                      "tier (the structural checks, the register entries' traces and calls, the "
                                      "rung's traces of at most two ops, a sample of the conformance traces) "
                                      "gives a first verdict in seconds; when it passes, the full tier explores "
                                      "every trace and call of the scope and replays every conformance trace. "
                                      "Each failure names a trace or call (T1, C1 ...) printed once as JSON. Exit "
                                      "status 0 when every check of both tiers passes (the exercise is then "
                                      "marked done), 1 otherwise.")
    sp.add_argument("file", metavar="FILE", help="a Python module with a class Stage (a copy of a stage module, "
                                                 "relative imports and all, is one)")
    sp.add_argument("--scope", default="ci", metavar="NAME|FILE",
                    help="the scope of the rung check (default ci; medium, large or a TOML file)")
    sp.add_argument("--full", action="store_true", help="run the full tier even when the quick one fails")
    sp.add_argument("--watch", action="store_true", help="verify again every time FILE is saved (Ctrl-C to stop)")
    sp.add_argument("--json", action="store_true", help="print the verdict as JSON")
    sp.set_defaults(func=cmd_verify)


def cmd_verify(args) -> int:
    from ..explore import ScopeError, load_scope
    try:
        load_scope(args.scope)
    except ScopeError as exc:
        raise UserError(f"verify: {exc}") from None
    if not args.watch:
        return verify_once(args)
    if args.json:
        raise UserError("verify: --watch prints for a person; leave out --json")
    if not os.path.isfile(args.file):
        raise UserError(f"verify: {args.file}: no such file")
    from ..verify import watch

    def once() -> None:
        try:
            verify_once(args)
        except UserError as exc:            # a file that does not load yet: say so and keep watching
            out(f"error: {' '.join(str(exc).split())}")
        out(f"-- watching {args.file}: save it to verify again, Ctrl-C to stop")
        sys.stdout.flush()
    watch(args.file, once)
    return 0


def verify_once(args) -> int:
    """One verification of args.file, printed tier by tier as it goes (or as JSON at the end)."""
    from ..verify import closing_lines, header_lines, tier_lines, verify
    cls = load_user_stage(args.file, None)
    if cls.STAGE == 0:
        raise UserError(f"verify: {args.file} is a stage 0: commits are 1 to {LAST}")
    tty = sys.stderr.isatty()
    shown: set[str] = set()
    if not args.json:
        for line in header_lines(cls.STAGE, args.file):
            out(line)
        sys.stdout.flush()

    def progress(info: dict) -> None:
        if info["event"] == "explore" and tty:
            sys.stderr.write(f"\rrung {cls.STAGE:02d}: {info['level']}, {info['states']} states   \033[K")
            sys.stderr.flush()
        elif info["event"] == "verdict" and not args.json:
            if tty:
                sys.stderr.write("\r\033[K")
            for line in tier_lines(info["verdict"], info["tier"], shown):
                out(line)
            sys.stdout.flush()

    verdict = verify(cls, args.file, args.scope, progress, full=args.full)
    if verdict.ok:
        from ..exercises import record_done
        try:
            record_done(cls.STAGE, args.file)
        except Exception as exc:           # noqa: BLE001 -- a progress file we cannot write is not fatal
            warn(f"warning: progress not recorded: {' '.join(str(exc).split())}")
    if args.json:
        emit_json(verdict.as_dict())
        return 0 if verdict.ok else 1
    out()
    for line in closing_lines(verdict.as_dict(), args.top):
        out(line)
    return 0 if verdict.ok else 1


PARSERS = {"check": add_check, "verify": add_verify}
