"""Which stage code is guarded by a check that looks outside the ladder.

    python tools/guards.py [--rungs] [--data DIR] [--reuse] [--json FILE]

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
rung tests as a sixth run, reported apart, to show what only they execute.
The report gives, per module, the statements and branches the outside checks
execute together, then every line or branch none of them executes, each
either listed in ``DEAD`` below with the reason it cannot matter, or marked
UNGUARDED.  The exit status is 1 when a line is UNGUARDED.

Executed is not checked: a line the invariants alone execute is guarded
only as far as the three invariants reach.  The report counts those lines
apart (``only invariants``).  ``tools/mutation.py`` measures what the checks
actually catch.

Needs coverage.py (``pip install coverage``).  ``--reuse`` reads the data of
an earlier run from ``--data`` (default ``.guards/``) instead of running.
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
    if done.returncode != 0:
        raise SystemExit(f"guards: {' '.join(files)} failed (exit {done.returncode}); "
                         f"the measurement needs them green")


def _report(coverage, paths: list[Path], out: Path) -> dict:
    """coverage.py's JSON report of the union of ``paths``."""
    cov = coverage.Coverage(data_file=str(out), branch=True, source=["stages"])
    cov.erase()
    cov.combine([str(p) for p in paths], keep=True)
    cov.save()
    cov.json_report(outfile=str(out) + ".json")
    return json.loads(Path(str(out) + ".json").read_text())["files"]


def _executed(coverage, path: Path) -> dict[str, tuple[set, set]]:
    """Module -> (lines, arcs) executed in one run."""
    data = coverage.CoverageData(basename=str(path))
    data.read()
    out = {}
    for f in data.measured_files():
        rel = Path(f).resolve().relative_to(ROOT).as_posix()
        out[rel] = (set(data.lines(f) or ()), set(data.arcs(f) or ()))
    return out


def measure(data: Path, reuse: bool, rungs: bool) -> dict:
    try:
        import coverage
    except ImportError:
        raise SystemExit("guards: needs coverage.py: pip install coverage")
    data.mkdir(parents=True, exist_ok=True)
    runs = {name: [f] for name, f in GUARDS.items()} | (RUNGS if rungs else {})
    if not reuse:
        for name, files in runs.items():
            _run(name, files, data)
    union = _report(coverage, [data / f"cov.{name}" for name in GUARDS], data / "cov.outside")
    per_run = {name: _executed(coverage, data / f"cov.{name}") for name in runs if (data / f"cov.{name}").exists()}
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
            where = f"{line}" if to is None else f"{line}->{'exit' if to < 0 else to}"
            reason = DEAD.get((rel, text))
            rungs_lines = per_run["rungs"].get(rel, (set(), set()))[0] if "rungs" in per_run else None
            item = {"where": where, "text": text,
                    "rungs_execute_it": None if rungs_lines is None else line in rungs_lines}
            if reason:
                dead.append(item | {"reason": reason})
            else:
                unguarded.append(item)
        only_invariants = sorted(
            line for line in per_run.get("invariants", {}).get(rel, (set(), set()))[0]
            if not any(line in per_run[g].get(rel, (set(), set()))[0] for g in GUARDS if g != "invariants"))
        modules[rel] = {
            "statements": s["num_statements"], "missing_statements": s["missing_lines"],
            "branches": s["num_branches"], "missing_branches": s["missing_branches"],
            "partial_branches": s["num_partial_branches"],
            "unguarded": unguarded, "dead": dead, "only_invariants": only_invariants,
        }
    per_guard = {}
    for g in GUARDS:
        lines = sum(len(per_run[g].get(rel, (set(), set()))[0]) for rel in modules)
        per_guard[g] = lines
    return {"modules": modules, "lines_executed_per_guard": per_guard}


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "100%"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(ROOT / ".guards"), help="where the coverage data goes")
    parser.add_argument("--reuse", action="store_true", help="report on the data of an earlier run")
    parser.add_argument("--rungs", action="store_true", help="also run the rung tests, reported apart")
    parser.add_argument("--json", help="write the result to this file")
    args = parser.parse_args(argv)
    result = measure(Path(args.data), args.reuse, args.rungs)
    modules = result["modules"]
    stmts = sum(m["statements"] for m in modules.values())
    miss = sum(m["missing_statements"] for m in modules.values())
    branches = sum(m["branches"] for m in modules.values())
    bmiss = sum(m["missing_branches"] for m in modules.values())
    print(f"stages/*.py executed by the outside checks ({', '.join(GUARDS)}):")
    print(f"  statements {stmts - miss}/{stmts} ({_pct(stmts - miss, stmts)}), "
          f"branches {branches - bmiss}/{branches} ({_pct(branches - bmiss, branches)})")
    print("  lines executed by each: " + ", ".join(
        f"{g} {n}" for g, n in result["lines_executed_per_guard"].items()))
    inv = sum(len(m["only_invariants"]) for m in modules.values())
    print(f"  lines only the invariants execute: {inv}")
    unguarded = 0
    for rel, m in modules.items():
        if not (m["unguarded"] or m["dead"] or m["only_invariants"]):
            continue
        print(f"{rel}: {m['missing_statements']} statements, {m['missing_branches']} branches not executed")
        for item in m["dead"]:
            print(f"  {item['where']:>9}  dead: {item['reason']}")
        for item in m["unguarded"]:
            unguarded += 1
            seen = "" if item["rungs_execute_it"] is None else (
                "  (the rung tests execute it)" if item["rungs_execute_it"] else "  (the rung tests do not either)")
            print(f"  {item['where']:>9}  UNGUARDED: {item['text']}{seen}")
        if m["only_invariants"]:
            print(f"  only the invariants execute lines {m['only_invariants']}")
    print(f"{unguarded} unguarded" if unguarded else "every line is executed by an outside check or listed as dead")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 1 if unguarded else 0


if __name__ == "__main__":
    sys.exit(main())
