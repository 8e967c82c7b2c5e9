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
"""

from __future__ import annotations

import argparse
import gc
import importlib
import inspect
import json
import os
import platform
import re
import statistics
import sys
import time
import tracemalloc
from typing import Any

import numpy as np

from stages import LAST, MODULES
from stages import stage as stage_class
from stages.bitmap import BITS_TO_LONGS
from ..trace import TARGET_PAGE_BITS, TARGET_PAGE_SIZE
from . import measure
from .measure import (
    ALL_ONES, CLOCKS, CONFIG, FORMAT, FULL_BUDGET_NS, GRANULE, OP_LABEL, OPS, PC_EXTRA, Guest, GiB, KiB, MiB, Op,
    Plan, Run,
    Series, TiB, density_words, dirty_bytes, fill_record, in_rounds, make_op, stage_series,
)
from .reference import MACHINE_PART, WATCHED, Reference, bench_targets


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
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--quiet", action="store_true", help="no progress line on stderr")


# ---- progress --------------------------------------------------------------------------
class Progress:
    """One line on stderr, rewritten in place on a terminal; elsewhere (a log
    file, a pipe) a line at most every ``interval`` seconds."""

    def __init__(self, enabled: bool, stream=None, interval: float = 5.0):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.t0 = time.perf_counter()
        self.width = 0
        self.interval = interval
        self.last: float | None = None

    def __call__(self, text: str) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        line = f"bench {now - self.t0:5.1f}s  {text}"
        if not self.tty:
            if self.last is not None and now - self.last < self.interval:
                return
            self.last = now
        if self.tty:
            pad = max(0, self.width - len(line))
            self.stream.write("\r" + line + " " * pad)
            self.width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def done(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0


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


# ---- output ---------------------------------------------------------------------------------
def fmt_ns(x: float | None) -> str:
    if x is None:
        return "-"
    if x >= 1000:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}"


def fmt_ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


def fmt_bytes(n: float) -> str:
    return f"{n / MiB:,.1f} MiB"


def pages_text(pages: int) -> str:
    size = pages * TARGET_PAGE_SIZE
    unit = next((u for u, v in (("TiB", TiB), ("GiB", GiB), ("MiB", MiB)) if size >= v and size % v == 0), None)
    return f"{pages:,} pages ({size // {'TiB': TiB, 'GiB': GiB, 'MiB': MiB}[unit]} {unit})" if unit else f"{pages:,} pages"


def render(result: dict[str, Any]) -> str:
    cfg, out = result["config"], []
    out.append(f"dirty-ladder bench: guest {pages_text(cfg['pages'])}, layout {cfg['layout']}, "
               f"accel {cfg['accel']}, host pages {cfg['host_page_size'] // 1024} KiB, "
               f"KVM log {cfg['density']:.0%} dirty, median of {cfg['reps']}, "
               f"{'wall clock (perf_counter_ns)' if cfg['clock'] == 'wall' else 'CPU time (process_time_ns)'}")
    m = result["machine"]
    load = ""
    if m.get("load_average_before") and m.get("load_average_after"):
        load = (f"; load average {m['load_average_before'][0]:.2f} at the start, "
                f"{m['load_average_after'][0]:.2f} at the end")
    out.append(f"machine: {m['processor']}, {m['cpus']} CPUs, {m['platform']}, Python {m['python']}, "
               f"numpy {m['numpy']}{load}")
    out.append("ns per page (the model's, not QEMU's); 'vs 00' = cost / stage 00's cost; "
               "* = page walk measured on a smaller guest and scaled linearly")
    out.append("")
    head = (f"{'st':>2}  {'sync':>9} {'vs 00':>9}  {'setup':>9} {'vs 00':>9}  {'set_range':>9} "
            f"{'clear':>9} {'get_dirty':>9}  {'B/page':>6}  title")
    out.append(head)
    out.append("-" * len(head))
    def cell(r, name):
        star = "*" if r["measured"][name]["scaled"] else " "
        return f"{fmt_ns(r[name + '_ns_per_page']):>8}{star}"

    for r in result["stages"]:
        out.append(f"{r['stage']:02d}  {cell(r, 'sync')} {fmt_ratio(r['sync_ratio_to_00']):>9}  "
                   f"{cell(r, 'setup')} {fmt_ratio(r['setup_ratio_to_00']):>9}  {cell(r, 'set_range')} "
                   f"{cell(r, 'clear_range')} {cell(r, 'get_dirty')}  {r['bytes_per_page']:>6.3f}  "
                   f"{r['title'][:60]}")
    ref = result["reference"]
    out.append("-" * len(head))
    line = (f"ref {fmt_ns(ref['sync_ns_per_page']):>8}   plain-numpy sync of the same guest and log "
            "(scratch arrays allocated once)")
    if ref.get("stage39_ratio"):
        line += f"; stage 39 / reference = {ref['stage39_ratio']:.2f}"
    out.append(line)
    out.append("")
    scaled = sorted({r["stage"] for r in result["stages"] if any(v["scaled"] for v in r["measured"].values())})
    if scaled:
        out.append(f"* measured on {pages_text(cfg['walk_pages'])} (main block) and scaled linearly to the "
                   f"guest: stages {compress(scaled)}.")
        lin = result["linearity"]
        if lin["worst"]:
            worst = lin["worst"]
            out.append(f"  linearity (cost per page on {cfg['walk_pages']:,} pages / on {cfg['quarter_pages']:,}; "
                       f"1 is linear): {lin['checked']} measurements, median {lin['median']:.3f}, "
                       f"{lin['within_20pct']} within 0.8-1.25, worst {worst[2]:.3f} "
                       f"(stage {worst[0]:02d} {worst[1]}).")
    direct = sorted({r["stage"] for r in result["stages"]
                     if any(v.get("guest_built", "").startswith("directly") for v in r["measured"].values())})
    if direct:
        out.append(f"  stages {compress(direct)}: the big guest's dirty state was filled directly (the stage's "
                   "own allocation walks page by page); checked equal to the stage's allocation on the small guest.")
    if result.get("setup_model"):
        out.append("")
        out.append("setup (ram_save_setup: migration bitmap, log start, first sync with everything dirty):")
        out.append(f"  {'guest':>7}  {'seed before':>11} {'seed after':>10} {'ratio':>6}  |"
                   f"  {'model s00':>11} {'model s39':>10} {'ratio':>8}")
        for s in result["setup_model"]:
            out.append(f"  {s['guest_gib']:>4}GiB  {s['seed_before_ms']:>8} ms {s['seed_after_ms']:>7} ms "
                       f"{s['seed_ratio']:>5.1f}x  |  {s['stage00_ms'] / 1000:>8,.1f} s {s['stage39_ms']:>7.1f} ms "
                       f"{s['model_ratio']:>7,.0f}x")
        s = result["setup_model"][0]
        out.append(f"  model s00: {s['stage00_how']}; model s39: "
                   + "; ".join(f"{x['guest_gib']} GiB {x['stage39_how']}" for x in result["setup_model"]) + ".")
        out.append(f"  per page: seed {s['seed_before_ns_per_page']:.0f} -> {s['seed_after_ns_per_page']:.1f} ns "
                   f"(C, the whole setup phase); model {s['stage00_ms'] * 1e6 / s['pages']:,.0f} -> "
                   f"{s['stage39_ms'] * 1e6 / s['pages']:.2f} ns (Python, the dirty-state work only).")
        slow = s["stage00_ms"] * 1e6 / s["pages"] / s["seed_before_ns_per_page"]
        out.append(f"  The direction matches; the sizes cannot: the model's stage 00 walk costs {slow:.0f}x the seed's "
                   "whole setup per page, and the seed's 'after' still holds setup work the series did not touch "
                   "(which bounds its ratio), while stage 39 here is numpy on whole words.")
    if result.get("stage39_sync"):
        out.append("")
        out.append("stage 39 sync vs the plain-numpy reference (target guest):")
        for r in result["stage39_sync"]:
            b = r["stage39_breakdown_ms"]
            kvm, leb, rng = (b.get(label, 0.0) for _, _, label in WATCHED)
            own = b.get(MACHINE_PART, 0.0)
            parts = (f"machine.kvm_sync {kvm:.2f} (s37 set_dirty_lebitmap {leb:.2f} + the machine's own {own:.2f})"
                     f" + s39 sync_range {rng:.2f} + rest {b.get('total', 0.0) - kvm - rng:.2f}")
            out.append(f"  {r['density']:>4.0%}  s39 {r['stage39_ns_per_page']:.3f} ns/page, reference "
                       f"{r['reference_ns_per_page']:.3f} ns/page: ratio {r['ratio']:.2f} "
                       f"({r['ratio_without_machine']:.2f} without the machine's log handling);  "
                       f"s00 {r['stage00_ns_per_page']:,.0f} ns/page, {r['fold_00_to_39']:,.0f}-fold")
            out.append(f"        ms per call: {b.get('total', 0.0):.2f} = {parts}")
    if result.get("peak"):
        p = result["peak"]
        out.append("")
        out.append(f"peak traced memory of the stage 39 setup, {pages_text(p['pages'])}: {fmt_bytes(p['peak_bytes'])}; "
                   f"bitmaps {fmt_bytes(p['bitmaps_bytes'])} (dirty {fmt_bytes(p['dirty_bitmaps_bytes'])}, migration "
                   f"{fmt_bytes(p['migration_bitmap_bytes'])}, KVM log {fmt_bytes(p['kvm_log_bytes'])}): "
                   f"{p['ratio']:.2f}x ({p['ratio_stage_bitmaps_only']:.2f}x of the stage's own bitmaps)")
        order = ["ram_save_setup"] + [label for _, _, label in WATCHED]
        above = p["above_entry_bytes"]
        out.append("  peak above the call's entry: " + "; ".join(f"{k} +{fmt_bytes(above[k])}" for k in order if k in above))
    if result.get("targets"):
        out.append("")
        out.append("targets:")
        for t in result["targets"]:
            vals = t.get("values")
            if t["name"] == "sync_fold_00_to_39":
                detail = ", ".join(f"{k}: {v:,.0f}-fold" for k, v in vals.items())
            elif vals:
                detail = ", ".join(f"{k}: {v:.2f}x" for k, v in vals.items())
            else:
                detail = f"{t['value']:.2f}x"
            out.append(f"  [{'PASS' if t['pass'] else 'FAIL'}] {t['text']}: {detail}")
    if result.get("overhead_notes"):
        out.append("")
        out.append("avoidable overhead on stage 39's path (stages not edited by the bench):")
        for n in result["overhead_notes"]:
            out.append(f"  {n['where']}  `{n['code']}` ({n['costs']}): {n['why']}")
    if result.get("problems"):
        out.append("")
        out.append("problems (results not as expected):")
        out.extend(f"  {p}" for p in result["problems"])
    out.append("")
    out.append(f"run time {result['elapsed_s']:.1f} s")
    return "\n".join(out)


def compress(nums: list[int]) -> str:
    out, i = [], 0
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        out.append(f"{nums[i]:02d}" if i == j else f"{nums[i]:02d}-{nums[j]:02d}")
        i = j + 1
    return ",".join(out)


def plot(result: dict[str, Any], path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = result["stages"]
    xs = [r["stage"] for r in recs]
    fig, ax = plt.subplots(figsize=(13, 7))
    styles = {"sync": ("o-", 2.2), "setup": ("s-", 1.2), "set_range": ("^-", 1.0),
              "clear_range": ("v-", 1.0), "get_dirty": ("d-", 1.0)}
    for name in OPS:
        style, lw = styles[name]
        ax.semilogy(xs, [r[f"{name}_ns_per_page"] for r in recs], style, lw=lw, ms=4,
                    label=OP_LABEL[name] + (f" ({result['config']['density']:.0%} dirty)" if name == "sync" else ""))
    ax.axhline(result["reference"]["sync_ns_per_page"], color="k", ls="--", lw=1,
               label="plain-numpy sync reference")
    drops: dict[int, list[str]] = {}
    for name in OPS:
        ys = [r[f"{name}_ns_per_page"] for r in recs]
        for i in range(1, len(ys)):
            # a drop at this rung that lasts: below half the rung before, and
            # the next rungs stay below half the rungs before
            before = statistics.median(ys[max(0, i - 5):i])
            if (ys[i] <= ys[i - 1] / 2 and ys[i] <= before / 2
                    and statistics.median(ys[i:i + 3]) <= before / 2):
                drops.setdefault(recs[i]["stage"], []).append(name)
    values = [r[f"{n}_ns_per_page"] for r in recs for n in OPS] + [result["reference"]["sync_ns_per_page"]]
    top, bottom = max(values), min(v for v in values if v > 0)
    # the data in the lower 55 % of the axes, the labels in the band above it
    lo, hi = np.log10(bottom / 3), np.log10(top * 2)
    ax.set_ylim(10 ** lo, 10 ** (lo + (hi - lo) / 0.55))
    for n, names in drops.items():
        title = next(r["title"] for r in recs if r["stage"] == n)
        ax.axvline(n, color="0.85", lw=0.8, zorder=0)
        short = title if len(title) <= 46 else title[:45] + "\u2026"
        ax.annotate(f"{n:02d} {short}\n[{', '.join(names)}]", (n, 0.99), xycoords=("data", "axes fraction"),
                    rotation=90, fontsize=7, ha="center", va="top", linespacing=1.1)
    cfg = result["config"]
    ax.set_xlabel("stage")
    ax.set_ylabel("ns per page (log)")
    ax.set_title(f"dirty-ladder: cost per page by stage, guest of {pages_text(cfg['pages'])}, "
                 f"Python model; labelled: rungs where a cost halves")
    ax.set_xticks(range(LAST + 1))
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(True, which="major", axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
        if path:                    # say so now, not after minutes of measuring
            try:
                open(path, "a").close()
            except OSError as exc:
                print(f"bench: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
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
    if args.plot:
        plot(result, args.plot)
        result["plot"] = args.plot
    if args.json_file:
        with open(args.json_file, "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(render(result))
        if args.plot:
            print(f"plot: {args.plot}")
    if args.check and any(not t["pass"] for t in result.get("targets", [])):
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dirty_ladder.bench", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))

