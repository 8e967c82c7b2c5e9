"""The report: the progress line on stderr while the bench runs
(``Progress``), the text table of a result (``render``) and the plot of
cost per page by stage (``plot``, needs matplotlib)."""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

import numpy as np

from stages import LAST
from ..trace import TARGET_PAGE_SIZE
from .measure import OP_LABEL, OPS, GiB, MiB, TiB
from .reference import MACHINE_PART, WATCHED


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


# ---- the text table --------------------------------------------------------------------
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


# ---- the plot --------------------------------------------------------------------------
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
