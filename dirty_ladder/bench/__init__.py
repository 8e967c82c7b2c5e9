"""The bench: what each of the 40 stages costs per page, and how close the last
one is to what numpy can do.

``python -m dirty_ladder bench`` (or ``python -m dirty_ladder.bench``).  In one run:

- For every stage, on a guest of ``--size`` (default 4 GiB, accel kvm, 4 KiB
  host pages), the cost per page of the operations whose algorithm the series
  changed: ``migration_bitmap_sync`` after a KVM log at ``--density`` (the
  sync includes the KVM log sync, as the stage's own code calls it), the
  ``ram_save_setup`` of a freshly allocated guest (everything dirty, KVM log
  empty), ``cpu_physical_memory_set_dirty_range`` and the stage's clear-range
  function over the main block, and ``cpu_physical_memory_get_dirty`` over
  the main block when only its last page is dirty.  Median of ``--reps``
  timings (``time.perf_counter_ns``, or CPU time with ``--clock cpu``;
  garbage collector off while timing), taken in rounds over all the stages
  so that a slow spell of a shared machine does not fall on a few of them.
- Operations that walk page by page (a call on the big guest, predicted
  from one on a guest of ``--walk-size`` and one on a quarter of it, would
  take more than ``--full-budget``) are measured on the ``--walk-size``
  guest and their cost per page is taken as the big guest's (linear
  scaling); each such measurement is repeated on the quarter guest, and the
  ratio of the two costs per page is reported (1.0 is linear).  The walk
  guest should be big enough for the cost per call to be small (default
  64 MiB).
- Bytes of dirty state per page, from the stage's own arrays.
- A plain-numpy reference on the same guest and density: OR the KVM log into
  three bitmaps, OR the migration one into the migration bitmap counting the
  new bits with ``np.bitwise_count``, clear it.
- Targets, reported PASS/FAIL: stage 39's sync of a ``--target-size`` guest
  (default 256 GiB) at 0, 5 and 100 % dirty within 1.5x the reference;
  stage 00 -> 39 sync cost per page falling at least 1000-fold; peak traced
  memory (tracemalloc) of the ``--peak-size`` (default 512 GiB) setup at
  stage 39 within 1.2x the bytes of its bitmaps.  When a target is missed,
  where the time or memory goes, by function, with the source lines.
- The setup model: stage 00 and 39 setup cost of 256 and 512 GiB guests next
  to the tester's figures in the seed (6912 -> 296 ms and 14062 -> 1171 ms).

Timings are of this Python model, not of QEMU: only ratios compare.

The package: ``measure`` (guests, the operations, timed calls, each stage's
cost per page), ``reference`` (the plain-numpy reference, the targets, where
the time and memory go) and ``report`` (the progress line, the table, the
plot); this module holds one run of the bench (``bench``) and its command
line (``add_arguments``, ``run``, ``main``), shared by ``dirty-ladder bench``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import time
from typing import Any

import numpy as np

from stages import LAST
from stages import stage as stage_class
from .. import files
from ..trace import TARGET_PAGE_BITS
from . import measure
from .measure import (
    CLOCKS, CONFIG, FORMAT, FULL_BUDGET_NS, GRANULE, OP_LABEL, OPS, PC_EXTRA, GiB, Guest, KiB, MiB, Op, Plan, Run,
    Series, TiB, density_words, fill_record, in_rounds, stage_series,
)
from .reference import Reference, bench_targets
from .report import Progress, plot, render

# what the command line, the tour, the book and the tests use
__all__ = [
    "FORMAT", "OPS", "OP_LABEL", "PC_EXTRA", "Guest", "Plan", "Progress", "Reference", "add_arguments", "bench",
    "density_words", "main", "parse_density", "parse_reps", "parse_size", "parse_stages", "plot", "render", "run",
]


# ---- argument parsing ------------------------------------------------------------------
def parse_size(text: str) -> int:
    """``4G``, ``512M``, ``256GiB``, ``1048576`` (bytes): a multiple of 256 KiB."""
    m = re.fullmatch(r"\s*(\d+)\s*([kmgt]?)(i?b)?\s*", text, re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (say 4G, 512M or a number of bytes)")
    value = int(m.group(1)) * {"": 1, "k": KiB, "m": MiB, "g": GiB, "t": TiB}[m.group(2).lower()]
    if value <= 0 or value % GRANULE:
        raise argparse.ArgumentTypeError(f"size {text!r} must be a positive multiple of 256K (64 pages)")
    if value > TiB:
        raise argparse.ArgumentTypeError(f"size {text!r} is more than the model's 1 TiB of RAM")
    return value


def parse_density(text: str) -> float:
    """A percentage, ``5`` or ``5%``: the fraction of pages in the KVM log."""
    try:
        value = float(text.strip().rstrip("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a percentage: {text!r}") from None
    if not 0.0 <= value <= 100.0:
        raise argparse.ArgumentTypeError(f"density {text!r} must be between 0 and 100 (%)")
    return value / 100.0


def parse_stages(text: str) -> list[int]:
    """``0-39``, ``0,19,37-39``."""
    out: set[int] = set()
    try:
        for part in text.split(","):
            a, _, b = part.strip().partition("-")
            lo, hi = int(a), int(b) if b else int(a)
            if not 0 <= lo <= hi <= LAST:
                raise ValueError
            out.update(range(lo, hi + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"stages {text!r}: say 0-{LAST} or a list like 0,19,37-39") from None
    return sorted(out)


def parse_reps(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"reps {text!r} must be a positive integer")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The bench's options (``python -m dirty_ladder bench`` and ``python -m dirty_ladder.bench``)."""
    parser.add_argument("--size", type=parse_size, default=4 * GiB, metavar="SIZE",
                        help="guest RAM of the per-stage curve (default 4G; multiple of 256K)")
    parser.add_argument("--density", type=parse_density, default=0.05, metavar="PCT",
                        help="dirty pages in the KVM log for the sync, in %% (default 5)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall: time.perf_counter_ns (default); cpu: time.process_time_ns, this "
                             "process's CPU time, steadier on a machine other processes keep busy")
    parser.add_argument("--reps", type=parse_reps, default=5, metavar="N",
                        help="timed repetitions, the median is reported (default 5)")
    parser.add_argument("--walk-size", type=parse_size, default=64 * MiB, metavar="SIZE",
                        help="guest on which page-by-page walks are measured, then scaled "
                             "linearly; linearity is checked at a quarter of it (default 64M)")
    parser.add_argument("--full-budget", type=float, default=FULL_BUDGET_NS / 1e6, metavar="MS",
                        help="an operation predicted to take longer than this on the curve's guest is "
                             "measured on the walk guest and scaled (default %(default)g ms)")
    parser.add_argument("--stages", type=parse_stages, default=list(range(LAST + 1)), metavar="LIST",
                        help=f"stages of the curve, e.g. 0-{LAST} (default) or 0,19,37-39")
    parser.add_argument("--layout", choices=("single", "pc"), default="single",
                        help="one RAM block (default), or pc: main RAM then bios, rom and a "
                             "16 MiB VGA block that is not 64-page aligned")
    parser.add_argument("--target-size", type=parse_size, default=256 * GiB, metavar="SIZE",
                        help="guest of the stage 39 vs reference target (default 256G)")
    parser.add_argument("--peak-size", type=parse_size, default=512 * GiB, metavar="SIZE",
                        help="guest of the peak-memory target (default 512G)")
    parser.add_argument("--no-targets", action="store_true",
                        help="only the per-stage curve: no targets, no setup model")
    parser.add_argument("--seed", type=int, default=0, help="seed of the dirty pattern (default 0)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--json-file", metavar="FILE", help="also write the JSON to FILE")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="also draw cost per page by stage (needs matplotlib: pip install '.[plot]')")
    parser.add_argument("--force", action="store_true", help="overwrite the files of --json-file and --plot")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--quiet", action="store_true", help="no progress line on stderr")


# ---- the bench --------------------------------------------------------------------------------
def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def bench(plan: Plan, progress: Progress) -> dict[str, Any]:
    run = Run(plan, progress)
    t0 = time.perf_counter()
    load_before = load_average()
    # the guests of every stage first, then the timed calls in rounds over all
    # of them (per stage when the guests are too big to keep all at once)
    staged = [stage_series(n, run) for n in plan.stages] if plan.interleave else []
    if staged:
        in_rounds([x for _, todo in staged for _, main, q in todo for x in (main, q) if x is not None],
                  plan.reps, run.problems, progress)
    else:
        for n in plan.stages:
            rec, todo = stage_series(n, run)
            in_rounds([x for _, main, q in todo for x in (main, q) if x is not None], plan.reps,
                      run.problems, progress, f"stage {n:02d} ")
            staged.append((rec, [(name, main, q) for name, main, q in todo]))
            for _, main, q in todo:                     # keep the samples, drop the guests
                main.op = Op(None, None, None, main.op.pages)
                if q is not None:
                    q.op = Op(None, None, None, q.op.pages)
    records = []
    for rec, todo in staged:
        fill_record(rec, todo)
        records.append(rec)
    by = {r["stage"]: r for r in records}
    for r in records:
        for name in OPS:
            base = by.get(0, {}).get(f"{name}_ns_per_page")
            r[f"{name}_ratio_to_00"] = r[f"{name}_ns_per_page"] / base if base else None

    # the reference on the curve's guest
    g = Guest(stage_class(LAST), plan.main_bytes, plan.layout)      # for its blocks and log
    _, whole, expected = g.log_for(plan.density, plan.seed)
    ref = [Series(Reference(g.pages).op(whole, expected), "reference, curve's guest")]
    in_rounds(ref, plan.reps, run.problems, progress)
    ref_ns = ref[0].ns_per_page
    del g, ref

    lin = [(r["stage"], name, m["linearity"]["ratio"]) for r in records
           for name, m in r["measured"].items() if "linearity" in m]
    result: dict[str, Any] = {
        "format": FORMAT,
        "config": {"size_bytes": plan.main_bytes, "pages": plan.main_bytes >> TARGET_PAGE_BITS,
                   "density": plan.density, "reps": plan.reps, "walk_size_bytes": plan.walk_bytes,
                   "walk_pages": plan.walk_bytes >> TARGET_PAGE_BITS,
                   "quarter_pages": plan.quarter_bytes >> TARGET_PAGE_BITS,
                   "layout": plan.layout, "seed": plan.seed, "accel": CONFIG.accel,
                   "host_page_size": CONFIG.host_page_size,
                   "target_size_bytes": plan.target_bytes, "peak_size_bytes": plan.peak_bytes,
                   "full_budget_ms": plan.full_budget_ns / 1e6,
                   "clock": next(k for k, v in CLOCKS.items() if v is measure.clock)},
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
                    "load_average_before": load_before},
        "stages": records,
        "reference": {"sync_ns_per_page": ref_ns, "pages": plan.guest_pages,
                      "density": plan.density,
                      "stage39_ratio": (by[LAST]["sync_ns_per_page"] / ref_ns) if LAST in by else None},
        "linearity": {"checked": len(lin),
                      "median": float(statistics.median([x[2] for x in lin])) if lin else None,
                      "within_20pct": sum(1 for x in lin if 0.8 <= x[2] <= 1.25),
                      "worst": max(lin, key=lambda x: abs(np.log(x[2])), default=None)},
    }
    if plan.targets:
        bench_targets(run, result)
    result["problems"] = run.problems
    result["elapsed_s"] = time.perf_counter() - t0
    result["machine"]["load_average_after"] = load_average()
    return result


# ---- entry points ----------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    """Run the bench as ``args`` say; the exit status (2: cannot plot)."""
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("bench: --plot needs matplotlib, which is not installed "
                  "(pip install 'dirty-ladder[plot]', or '.[plot]' from the source tree)", file=sys.stderr)
            return 2
    for path in (args.json_file, args.plot):
        if path:                    # say so now, not after minutes of measuring; create nothing yet
            try:
                files.check_writable(path, args.force)
            except files.FileRefused as exc:
                print(f"bench: {exc}", file=sys.stderr)
                return 2
    measure.set_clock(args.clock)
    plan = Plan(main_bytes=args.size, walk_bytes=args.walk_size, density=args.density, reps=args.reps,
                stages=list(args.stages), layout=args.layout, seed=args.seed,
                targets=not args.no_targets, target_bytes=args.target_size, peak_bytes=args.peak_size,
                full_budget_ns=args.full_budget * 1e6)
    progress = Progress(not args.quiet)
    try:
        result = bench(plan, progress)
    finally:
        progress.done()
        measure.set_clock("wall")
    failed = []                     # a file that cannot be written now: the results are still printed
    if args.plot:
        try:
            files.produce(args.plot, lambda path: plot(result, path), args.force)
            result["plot"] = args.plot
        except files.FileRefused as exc:
            failed.append(f"bench: {exc}")
    if args.json_file:
        try:
            files.write_atomic(args.json_file, json.dumps(result, indent=1) + "\n", args.force)
        except files.FileRefused as exc:
            failed.append(f"bench: {exc}")
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(render(result))
        if args.plot:
            print(f"plot: {args.plot}")
    for line in failed:
        print(line, file=sys.stderr)
    if failed:
        return 2
    if args.check and any(not t["pass"] for t in result.get("targets", [])):
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    from ..cli.common import Parser, parse_one_line
    parser = Parser(prog="python -m dirty_ladder.bench", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parse_one_line(parser, argv))

