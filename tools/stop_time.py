"""How long ``dirty-ladder check --all`` takes to stop at Ctrl-C.

    python tools/stop_time.py [--runs 3] [CHECK OPTIONS ...]      # default: --exhaustive --jobs 2

Starts the check in a session of its own, waits until ``--after`` rungs are
done, sends SIGINT to its whole process group (as a terminal's Ctrl-C
does), and prints the seconds until it exited, its exit status and how many
finished rungs its table holds.  README.md quotes these figures;
tests/test_stopping.py only checks that the stop comes within 2 s.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def once(options: list[str], after: int) -> tuple[float, int, int]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "dirty_ladder", "check", "--all", *options], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    finished = threading.Event()
    out: list[str] = []

    def read_err() -> None:
        done = 0
        for line in proc.stderr:
            if re.match(r"\[\d+/\d+\] rung ", line):
                done += 1
                if done >= after:
                    finished.set()

    readers = [threading.Thread(target=read_err, daemon=True),
               threading.Thread(target=lambda: out.append(proc.stdout.read()), daemon=True)]
    for t in readers:
        t.start()
    finished.wait()
    t0 = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait()
    seconds = time.monotonic() - t0
    for t in readers:
        t.join()
    rows = len(out[0].splitlines()) - 1 if out and out[0] else 0
    return seconds, proc.returncode, rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--after", type=int, default=2, help="rungs to let finish before Ctrl-C (default 2)")
    args, options = p.parse_known_args()
    options = options or ["--exhaustive", "--jobs", "2"]
    for _ in range(args.runs):
        seconds, status, rows = once(options, args.after)
        print(f"check --all {' '.join(options)}: exit {status} {seconds:.2f} s after SIGINT, {rows} rungs in its table",
              flush=True)
    print(f"load average: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
