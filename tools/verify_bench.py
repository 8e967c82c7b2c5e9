"""How long ``dirty-ladder verify`` takes to its first and its full verdict, for all 39 commits.

    python tools/verify_bench.py                 # every commit: a table, as in the README
    python tools/verify_bench.py 19 27 --json    # some commits, as JSON

For each commit N, in a fresh Python process each time (so start-up and
imports count, as they do for a user): a copy of the real stage module
(relative imports and all) is verified, and the time of its first verdict
(the quick tier) and of its full verdict (both tiers) is taken as the
command line prints them; then the untouched exercise starter is verified,
which stops at its first verdict.  Times are wall-clock seconds from the
start of the process.  A benchmark, not a test: the figures depend on the
machine and its load (the load average is printed with them).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHILD = """
import json, sys, time
t0 = float(sys.argv[1])
from dirty_ladder.exercises import load_stage_file
from dirty_ladder.verify import verify
cls = load_stage_file(sys.argv[2], None)
def progress(info):
    if info["event"] == "verdict":
        print(json.dumps({"tier": info["tier"], "ok": info["verdict"]["ok"] or (
            info["tier"] == "quick" and not info["verdict"]["failed"]), "failed": info["verdict"]["failed"],
            "seconds": time.time() - t0}), flush=True)
verify(cls, sys.argv[2], progress=progress)
"""


def timed(path: Path) -> dict[str, dict]:
    """The verdicts of one fresh ``verify`` of ``path``, each with its time."""
    env = {**os.environ, "DIRTY_LADDER_PROGRESS": str(path.parent / "progress.json")}
    proc = subprocess.run([sys.executable, "-c", CHILD, repr(time.time()), str(path)], capture_output=True,
                          text=True, env=env, cwd=ROOT)
    if proc.returncode:
        raise SystemExit(f"verify of {path} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return {v["tier"]: v for v in map(json.loads, proc.stdout.splitlines())}


def bench(numbers: list[int], progress=None) -> list[dict]:
    from dirty_ladder.exercises import starter
    from stages import MODULES
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in numbers:
            copy = Path(tmp) / f"copy_{MODULES[n]}.py"
            shutil.copy(ROOT / "stages" / f"{MODULES[n]}.py", copy)
            real = timed(copy)
            exercise = Path(tmp) / f"exercise_{n:02d}.py"
            exercise.write_text(starter(n), encoding="utf-8")
            untouched = timed(exercise)
            row = {"stage": n, "first_verdict_s": round(real["quick"]["seconds"], 2),
                   "full_verdict_s": round(real["full"]["seconds"], 2), "real_passes": real["full"]["ok"],
                   "starter_first_verdict_s": round(untouched["quick"]["seconds"], 2),
                   "starter_fails": untouched["quick"]["failed"]}
            rows.append(row)
            if progress:
                progress(row)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| stage | first verdict (s) | full verdict (s) | untouched starter: first verdict (s) | it fails |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['stage']:02d} | {r['first_verdict_s']:.1f} | {r['full_verdict_s']:.1f} | "
                     f"{r['starter_first_verdict_s']:.1f} | {', '.join(dict.fromkeys(r['starter_fails']))} |")
    first = sorted(r["first_verdict_s"] for r in rows)
    full = sorted(r["full_verdict_s"] for r in rows)
    lines.append("")
    lines.append(f"first verdict: median {first[len(first) // 2]:.1f} s, at most {first[-1]:.1f} s; "
                 f"full verdict: median {full[len(full) // 2]:.1f} s, at most {full[-1]:.1f} s "
                 f"({len(rows)} commits; load average {os.getloadavg()[0]:.1f} at the end)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stages", nargs="*", type=int, help="the commits (default 1 to 39)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    from stages import LAST
    numbers = args.stages or list(range(1, LAST + 1))
    bad = [n for n in numbers if not 1 <= n <= LAST]
    if bad:
        print(f"error: commits are 1 to {LAST}, not {bad[0]}", file=sys.stderr)
        return 2
    try:
        rows = bench(numbers, None if args.json else
                     lambda r: print(f"stage {r['stage']:02d}: first {r['first_verdict_s']:.1f} s, full "
                                     f"{r['full_verdict_s']:.1f} s", file=sys.stderr, flush=True))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps({"load_average": os.getloadavg(), "rows": rows}, indent=2))
    else:
        print(table(rows))
    return 0 if all(r["real_passes"] and r["starter_fails"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
