"""Which stage code is guarded by a check that looks outside the ladder.

    python tools/guards.py [--rungs] [--skip CHECK] [--data DIR] [--reuse] [--json FILE]

The rung checks (tests/test_ladder.py, tests/test_explore.py) compare each
stage with its neighbour, so a mistake in code that both neighbours share is
invisible to them.  This tool measures, with coverage.py (branch coverage),
which lines and branches of ``stages/*.py`` are executed by the checks that
compare a stage with something outside the ladder:

- conformance   tests/test_conformance.py   what the real C of each commit produced
- stage_api     tests/test_stage_api.py     direct calls, expected values from the C
- guards        tests/test_guards.py        direct calls where nothing else reaches
- misuse        tests/test_misuse.py        bad arguments refused, nothing changed
- invariants    tests/test_invariants.py    what the code is for (no lost write, ...)

Each file is run once under ``coverage run --branch --source=stages`` (about
7 minutes in all on 2 cores, most of it the invariants); ``--rungs`` adds the
rung tests as a sixth run, reported apart, to show whether they execute what
the outside checks do not.  The report gives the statements and branches the
outside checks execute together, then each check's share and the statements
it alone executes, then every line or branch none of them executes: either
listed in ``DEAD`` below, with the reason it cannot matter, or marked
UNGUARDED.  The exit status is 1 when a line is UNGUARDED.

Executed is not checked: a line only the invariants executed would be
guarded only as far as the three invariants reach, one only the misuse tests
executed only as a refusal.  ``tools/mutation.py`` measures what the checks
catch.

Needs coverage.py (``pip install coverage``).  ``--reuse`` reads the data of
an earlier run from ``--data`` (default ``.guards/``) instead of running;
``--skip guards --reuse`` then shows what the other checks execute without
tests/test_guards.py.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

GUARDS = {
    "conformance": "tests/test_conformance.py",
    "stage_api": "tests/test_stage_api.py",
    "guards": "tests/test_guards.py",
    "misuse": "tests/test_misuse.py",
    "invariants": "tests/test_invariants.py",
}
RUNGS = {"rungs": ["tests/test_ladder.py", "tests/test_explore.py"]}

# Lines no outside check executes and that cannot matter, keyed by module and
# the line's text (stripped), so that the table survives edits elsewhere.
DEAD = {
    ("stages/__init__.py", 'raise UnknownStage(f"unknown stage {n!r}: stages are 0 to {LAST}")'):
        "the ladder's index, not stage code; tests/test_stages.py asks for stage 40",
    ("stages/__init__.py", "return [stage(n) for n in range(LAST + 1)]"):
        "all_stages(): the ladder's index, not stage code; nothing in the project calls it",
    ("stages/s00_before_the_series.py", "next_ = nr + 1"):
        "the ram_bulk_stage branch of migration_bitmap_find_and_reset_dirty: the model never "
        "enters the bulk stage (ram_bulk_stage is False at every stage, no op sets it)",
}


def _run(name: str, files: list[str], data: Path) -> None:
    out = data / f"cov.{name}"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "coverage", "run", "--branch", "--source=stages",
           f"--data-file={out}", "-m", "pytest", *files, "-q", "-p", "no:cacheprovider", "-p", "no:xdist"]
    print(f"running {name}: {' '.join(files)}", file=sys.stderr, flush=True)
    done = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL)
    if done.returncode == 0:
        return
    if name in RUNGS:               # what they execute is still what they execute
        print(f"guards: note: {' '.join(files)} failed (exit {done.returncode})", file=sys.stderr)
        return
    raise SystemExit(f"guards: {' '.join(files)} failed (exit {done.returncode}); "
                     f"an outside check that fails guards nothing: fix it first")


def _report(coverage, paths: list[Path], out: Path) -> dict:
    """coverage.py's JSON report (per module) of the union of the runs in ``paths``."""
    cov = coverage.Coverage(data_file=str(out), branch=True, source=["stages"])
    cov.erase()
    cov.combine([str(p) for p in paths], keep=True)
    cov.save()
    cov.json_report(outfile=str(out) + ".json")
    return json.loads(Path(str(out) + ".json").read_text())["files"]


def measure(data: Path, reuse: bool, rungs: bool, skip: tuple[str, ...] = ()) -> dict:
    try:
        import coverage
    except ImportError:
        raise SystemExit("guards: needs coverage.py: pip install coverage")
    data.mkdir(parents=True, exist_ok=True)
    guards = [name for name in GUARDS if name not in skip]
    runs = {name: [GUARDS[name]] for name in guards} | (RUNGS if rungs else {})
    if not reuse:
        for name, files in runs.items():
            _run(name, files, data)
    absent = [name for name in guards if not (data / f"cov.{name}").exists()]
    if absent:
        raise SystemExit(f"guards: no data for {', '.join(absent)} in {data}: run without --reuse first")
    union = _report(coverage, [data / f"cov.{name}" for name in guards], data / "cov.outside")
    alone = {name: _report(coverage, [data / f"cov.{name}"], data / f"cov.{name}.alone")
             for name in runs if (data / f"cov.{name}").exists()}

    def executed(name, rel):
        return set(alone[name].get(rel, {}).get("executed_lines", ()))

    modules = {}
    for rel, r in sorted(union.items()):
        source = (ROOT / rel).read_text().splitlines()
        s = r["summary"]
        unguarded, dead = [], []
        missing = [(line, None) for line in r["missing_lines"]]
        missing += [(a, b) for a, b in r["missing_branches"] if a not in r["missing_lines"]
                    and b not in r["missing_lines"]]
        for line, to in missing:
            text = source[line - 1].strip()
            item = {"where": f"{line}" if to is None else f"{line}->{'exit' if to < 0 else to}", "text": text,
                    "rungs_execute_it": line in executed("rungs", rel) if "rungs" in alone else None}
            reason = DEAD.get((rel, text))
            if reason:
                dead.append(item | {"reason": reason})
            else:
                unguarded.append(item)
        modules[rel] = {
            "statements": s["num_statements"], "missing_statements": s["missing_lines"],
            "branches": s["num_branches"], "missing_branches": s["missing_branches"],
            "unguarded": unguarded, "dead": dead,
            "only": {g: sorted(executed(g, rel) - set().union(*(executed(h, rel) for h in guards if h != g)))
                     for g in guards},
        }
    per_guard = {g: {"statements": sum(len(executed(g, rel)) for rel in modules),
                     "alone": sum(len(m["only"][g]) for m in modules.values())} for g in guards}
    return {"modules": modules, "per_guard": per_guard}


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "100%"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(ROOT / ".guards"), help="where the coverage data goes")
    parser.add_argument("--reuse", action="store_true", help="report on the data of an earlier run")
    parser.add_argument("--rungs", action="store_true", help="also run the rung tests, reported apart")
    parser.add_argument("--skip", action="append", default=[], choices=list(GUARDS),
                        help="leave one outside check out (repeatable): what would the others guard?")
    parser.add_argument("--json", help="write the result to this file")
    args = parser.parse_args(argv)
    result = measure(Path(args.data), args.reuse, args.rungs, tuple(args.skip))
    modules = result["modules"]
    stmts = sum(m["statements"] for m in modules.values())
    miss = sum(m["missing_statements"] for m in modules.values())
    branches = sum(m["branches"] for m in modules.values())
    bmiss = sum(m["missing_branches"] for m in modules.values())
    print(f"stages/*.py executed by the outside checks ({', '.join(result['per_guard'])}):")
    print(f"  statements {stmts - miss}/{stmts} ({_pct(stmts - miss, stmts)}), "
          f"branches {branches - bmiss}/{branches} ({_pct(branches - bmiss, branches)})")
    print("  statements each executes (and that no other outside check does):")
    for g, c in result["per_guard"].items():
        print(f"    {g:12s} {c['statements']:5d} ({_pct(c['statements'], stmts)})  alone {c['alone']}")
    unguarded = 0
    for rel, m in modules.items():
        if not (m["unguarded"] or m["dead"]):
            continue
        print(f"{rel}: {m['missing_statements']} statements, {m['missing_branches']} branches not executed")
        for item in m["dead"]:
            print(f"  {item['where']:>9}  dead: {item['reason']}")
        for item in m["unguarded"]:
            unguarded += 1
            seen = "" if item["rungs_execute_it"] is None else (
                "  (the rung tests execute it)" if item["rungs_execute_it"] else "  (the rung tests do not either)")
            print(f"  {item['where']:>9}  UNGUARDED: {item['text']}{seen}")
    print(f"{unguarded} unguarded" if unguarded else "every line is executed by an outside check or listed as dead")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 1 if unguarded else 0


if __name__ == "__main__":
    sys.exit(main())
