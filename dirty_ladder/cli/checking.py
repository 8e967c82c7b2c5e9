"""Checking: ``check`` (the differential check of one rung or of all, on
random traces or every trace of a scope) and ``verify`` (a stage module of
the user's against the ladder)."""

from __future__ import annotations

import os
import time
import tomllib

from stages import LAST

from ..files import FileRefused

from .common import (
    Failure, StatusLine, UserError, add_command, add_timeout, contained, emit_json, load_user_stage, out, positive,
    rung_number, seed_value, stdout, table, warn,
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
    sp.add_argument("--profile", metavar="NAME",
                    help="examples per rung and level from the ladder's profiles: ci (default) or deep "
                         "(default: $DIRTY_LADDER_PROFILE, as for the test suite; $DIRTY_LADDER_EXAMPLES "
                         "overrides its count)")
    sp.add_argument("--seed", type=seed_value, default=0, metavar="S", help="seed (default 0)")
    sp.add_argument("--level", action="append", choices=("machine", "api", "repr"),
                    help="only this level (repeatable; default all three)")
    sp.add_argument("--stage-file", metavar="FILE",
                    help="a module whose class Stage stands in for stage N (its STAGE); checks that rung")
    add_timeout(sp, "the check of --stage-file's module")
    sp.add_argument("--out-dir", default=".", metavar="DIR",
                    help="where to write the reproducers of new differences (default: the current directory); "
                         "a file already there is never replaced")
    sp.add_argument("--json", action="store_true", help="print the summary as JSON")
    sp.set_defaults(func=cmd_check, prog=sp.prog)


def _check_stand_in(file: str, rung: int | None, prog: str, how) -> list:
    """In the child process: the user's module loaded and its rung checked,
    progress and each rung done reported to the parent."""
    from .. import check
    from ..contain import report
    from ..verify import failed_in
    stand_in = load_user_stage(file, rung)
    if stand_in.STAGE == 0:
        raise UserError(f"{prog}: {file} is a stage 0: there is no rung below it")
    try:
        return check.run([stand_in.STAGE], how, 1, lambda n, info: report(("progress", n, info)),
                         lambda result, seconds: report(("done", result, seconds)), stand_in)
    except (tomllib.TOMLDecodeError, OSError):
        raise
    except Exception as exc:               # noqa: BLE001 -- a user's stage that fails: one line
        raise Failure(f"{file}: your stage raised {failed_in(exc, file)}") from None


def cmd_check(args) -> int:
    if args.stage_file and args.all:
        raise UserError(f"{args.prog}: --stage-file checks the one rung of its stage, not --all")
    if not os.path.isdir(args.out_dir):
        raise UserError(f"{args.prog}: --out-dir {args.out_dir}: "
                        + ("not a directory" if os.path.exists(args.out_dir) else "no such directory"))
    if args.all and args.rung is not None:
        raise UserError(f"{args.prog}: give a rung number or --all, not both")
    if not args.all and args.rung is None and not args.stage_file:
        raise UserError(f"{args.prog}: give a rung number (1 to {LAST}) or --all")
    from .. import check
    from ..compare import LEVELS
    from ..rungs import PROFILES, environment_profile
    try:
        env_profile, env_examples = environment_profile(os.environ)
    except ValueError as exc:
        raise UserError(f"{args.prog}: {exc}") from None
    profile = args.profile or env_profile
    if profile not in PROFILES:
        raise UserError(f"{args.prog}: unknown profile {profile!r}: choose from {', '.join(PROFILES)}")
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
    from_profile = args.examples is None and (env_examples is None or args.profile is not None)
    examples = (PROFILES[profile] if from_profile else args.examples if args.examples is not None
                else env_examples)
    levels = tuple(dict.fromkeys(args.level)) if args.level else LEVELS
    how = check.How(examples=examples, seed=args.seed, scope=args.scope or "ci" if scope else None, levels=levels)
    rungs = list(range(1, LAST + 1)) if args.all else [args.rung]
    jobs = args.jobs if args.jobs is not None else (check.default_jobs() if len(rungs) > 1 else 1)
    if scope is not None:
        warn(scope.summary())
    line = StatusLine(every=10)
    last_draw = [0.0]

    def progress(rung: int, info: dict) -> None:
        if line.tty and time.monotonic() - last_draw[0] < 0.1:
            return
        last_draw[0] = time.monotonic()
        if "examples" in info:
            text = f"rung {rung:02d}: {info['level']} {info['examples']}/{examples}"
        else:
            rate = info["states"] / info["seconds"] if info.get("seconds") else 0
            text = (f"rung {rung:02d}: {info['level']} depth {info.get('depth', '-')}, {info['states']} states, "
                    f"{rate:,.0f} states/s")
        line.update(text)

    position = [0]

    def done(result, seconds: float) -> None:
        position[0] += 1
        runs = "; ".join(f"{r.level}: {r.states} states, {r.verdict}" for r in result.runs) or result.how
        line.print(f"[{position[0]}/{len(rungs)}] rung {result.rung:02d} ({result.rung - 1:02d} -> "
                   f"{result.rung:02d}): {result.status} ({runs}; {seconds:.1f} s)")

    def from_child(event: tuple) -> None:
        (progress if event[0] == "progress" else done)(*event[1:])

    started = time.monotonic()
    interrupted = False
    try:
        if args.stage_file:                 # the user's module, contained: results computed in a child
            results = contained(args, _check_stand_in, args.stage_file, args.rung, args.prog, how,
                                file=args.stage_file, what="check", on_event=from_child)
        else:
            results = check.run(rungs, how, jobs, progress if jobs <= 1 else None, done)
    except check.Interrupted as stop:       # Ctrl-C: the rungs finished so far, then exit 130
        results, interrupted = stop.results, True
    except (tomllib.TOMLDecodeError, OSError) as exc:
        raise Failure(f"cannot read the divergence register: {' '.join(str(exc).split())}") from None
    finally:
        line.stop()
    if args.stage_file:
        rungs = [r.rung for r in results]
    rows: list[dict] = []
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
                   "profile": profile if not scope and from_profile else None,
                   "examples": None if scope else examples, "seed": None if scope else args.seed,
                   "levels": list(levels), "rungs": rows, "ok": not any_bad and not interrupted})
        return status
    if not rows:
        return status
    cells = [[str(r["rung"]), r["status"], check.checked_text(r),
              ", ".join(e["id"] + (" (not reached)" if e["not_reached"] else "") for e in r["entries"]) or "-"]
             for r in rows]
    table(["rung", "status", "checked", "register entries"], cells,
          [None if r["ok"] else "bold red" for r in rows])
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
    add_timeout(sp, "verify")
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
        except (UserError, Failure) as exc:     # a file that does not load yet, or ends the run: say so, watch on
            out(f"error: {' '.join(str(exc).split())}")
        out(f"-- watching {args.file}: save it to verify again, Ctrl-C to stop")
        stdout().flush()
    watch(args.file, once)
    return 0


def _verify_in_child(file: str, scope: str, full: bool):
    """In the child process: the user's module loaded and verified, what
    verify reports on the way (the stage loaded, exploration, each tier's
    verdict) sent to the parent, which prints it."""
    from ..contain import report
    from ..verify import verify
    cls = load_user_stage(file, None)
    if cls.STAGE == 0:
        raise UserError(f"verify: {file} is a stage 0: commits are 1 to {LAST}")
    report({"event": "loaded", "stage": cls.STAGE})
    return verify(cls, file, scope, report, full=full)


def verify_once(args) -> int:
    """One verification of args.file, its module run in a child process (see
    dirty_ladder/contain.py), printed tier by tier as it goes (or as JSON at
    the end)."""
    from ..verify import closing_lines, header_lines, tier_lines
    line = StatusLine(every=float("inf"))   # elsewhere than a terminal: no progress line
    shown: set[str] = set()
    loaded = [0]

    def progress(info: dict) -> None:
        if info["event"] == "loaded":
            loaded[0] = info["stage"]
            if not args.json:
                for text in header_lines(loaded[0], args.file):
                    out(text)
                stdout().flush()
        elif info["event"] == "explore" and line.tty:
            line.update(f"rung {loaded[0]:02d}: {info['level']}, {info['states']} states")
        elif info["event"] == "verdict" and not args.json:
            line.stop()
            for text in tier_lines(info["verdict"], info["tier"], shown):
                out(text)
            stdout().flush()

    try:
        verdict = contained(args, _verify_in_child, args.file, args.scope, args.full, file=args.file,
                            what="verify", on_event=progress)
    except Failure as exc:                  # the module ended the run: a failed verify, said how
        if args.json:
            emit_json({"file": args.file, "ok": False, "error": str(exc),
                       "log": str(args.log) if args.log else None})
        raise
    finally:
        line.stop()
    if verdict.ok:
        from ..exercises import record_done
        try:
            record_done(verdict.n, args.file)
        except Exception as exc:           # noqa: BLE001 -- a progress file we cannot write is not fatal
            warn(f"warning: progress not recorded: {' '.join(str(exc).split())}")
    if args.json:
        emit_json({**verdict.as_dict(), "log": str(args.log) if args.log else None})
        return 0 if verdict.ok else 1
    out()
    for text in closing_lines(verdict.as_dict(), args.top):
        out(text)
    return 0 if verdict.ok else 1


PARSERS = {"check": add_check, "verify": add_verify}
