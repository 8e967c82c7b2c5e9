"""The reference and the targets: a plain-numpy sync of the same guest and
log (``Reference``), stage 39 measured against it on the target guest, the
stage 00 -> 39 fold, the peak memory of the stage 39 setup, the setup model
beside the tester's figures, and, where a target is missed, where the time
and the memory go."""

from __future__ import annotations

import gc
import importlib
import inspect
import statistics
import tracemalloc
from typing import Any

import numpy as np

from stages import MODULES
from stages import stage as stage_class
from stages.bitmap import BITS_TO_LONGS
from ..trace import TARGET_PAGE_BITS
from . import measure
from .measure import ALL_ONES, CONFIG, GiB, Guest, Op, Plan, Run, Series, dirty_bytes, in_rounds, make_op


TARGET_DENSITIES = (0.0, 0.05, 1.0)
SYNC_LIMIT, FOLD_LIMIT, PEAK_LIMIT = 1.5, 1000.0, 1.2
# The tester's figures in the v2 cover letter (TCP migration):
# guest GiB -> (setup ms without the series, setup ms with v2).
SEED_SETUP_MS = {256: (6912, 296), 512: (14062, 1171)}


# ---- the plain-numpy reference ---------------------------------------------------------
class Reference:
    """The word work of a sync with nothing around it, on preallocated arrays:
    OR the log into the three dirty bitmaps, then OR the migration one into the
    migration bitmap, counting the new bits, and clear it."""

    def __init__(self, npages: int):
        n = BITS_TO_LONGS(npages)
        self.npages = npages
        self.vga, self.code, self.src, self.dest, self.tmp, self.log = (
            np.zeros(n, dtype=np.uint64) for _ in range(6))
        self.count = np.zeros(n, dtype=np.uint8)
        self.new = 0

    def op(self, whole: np.ndarray, expected: int) -> Op:
        def prepare():
            np.copyto(self.log, whole)
            self.vga.fill(ALL_ONES)
            self.code.fill(ALL_ONES)
            self.src.fill(0)
            self.dest.fill(0)

        def call():
            log, src, dest, tmp = self.log, self.src, self.dest, self.tmp
            np.bitwise_or(self.vga, log, out=self.vga)
            np.bitwise_or(self.code, log, out=self.code)
            np.bitwise_or(src, log, out=src)
            np.bitwise_not(dest, out=tmp)
            np.bitwise_and(tmp, src, out=tmp)
            self.new = int(np.bitwise_count(tmp, out=self.count).sum(dtype=np.uint64))
            np.bitwise_or(dest, src, out=dest)
            src.fill(0)

        def check(_):
            return None if self.new == expected else f"reference counted {self.new}, expected {expected}"
        return Op(prepare, call, check, self.npages)


# ---- where the time and the memory go --------------------------------------------------
class CallTimer:
    """Wraps methods of a stage or machine instance and sums their time per call
    (nested calls count in their callers too)."""

    def __init__(self):
        self.totals: dict[str, int] = {}

    def wrap(self, obj, name: str, label: str) -> None:
        fn = getattr(obj, name, None)
        if fn is None:
            return

        def wrapper(*a, **k):
            t0 = measure.clock()
            try:
                return fn(*a, **k)
            finally:
                self.totals[label] = self.totals.get(label, 0) + measure.clock() - t0
        setattr(obj, name, wrapper)


class PeakProbe:
    """Peak traced memory above entry of wrapped calls, nesting allowed: each
    entry and exit folds the peak so far into the caller's and resets it."""

    def __init__(self):
        self.stack: list[list[int]] = []
        self.above: dict[str, int] = {}
        self.absolute: dict[str, int] = {}

    def enter(self) -> None:
        cur, peak = tracemalloc.get_traced_memory()
        if self.stack:
            self.stack[-1][1] = max(self.stack[-1][1], peak)
        tracemalloc.reset_peak()
        self.stack.append([cur, cur])

    def exit(self, label: str) -> None:
        _, peak = tracemalloc.get_traced_memory()
        base, top = self.stack.pop()
        top = max(top, peak)
        self.above[label] = max(self.above.get(label, 0), top - base)
        self.absolute[label] = max(self.absolute.get(label, 0), top)
        if self.stack:
            self.stack[-1][1] = max(self.stack[-1][1], top)
        tracemalloc.reset_peak()

    def wrap(self, obj, name: str, label: str) -> None:
        fn = getattr(obj, name, None)
        if fn is None:
            return

        def wrapper(*a, **k):
            self.enter()
            try:
                return fn(*a, **k)
            finally:
                self.exit(label)
        setattr(obj, name, wrapper)


def source_line(module: str, needle: str) -> str | None:
    """``stages/<module>.py:N`` of the first line containing ``needle``."""
    try:
        mod = importlib.import_module(f"stages.{module}")
        lines, _ = inspect.getsourcelines(mod)
    except (ImportError, OSError, TypeError):
        return None
    for i, line in enumerate(lines, 1):
        if needle in line:
            return f"stages/{module}.py:{i}"
    return None


WATCHED = (   # (object, method, label) for the stage 39 sync and setup breakdowns
    ("machine", "kvm_sync", "machine.kvm_sync (KVM log, stage calls inside)"),
    ("stage", "cpu_physical_memory_set_dirty_lebitmap", "s37 cpu_physical_memory_set_dirty_lebitmap"),
    ("stage", "migration_bitmap_sync_range", "s39 migration_bitmap_sync_range"),
)


def watch(g: Guest, tool) -> None:
    for owner, name, label in WATCHED:
        tool.wrap(g.machine if owner == "machine" else g.st, name, label)


def overhead_notes() -> list[dict[str, str]]:
    """Copies and gathers on stage 39's sync path that plain numpy does without
    (the stage modules are not edited by the bench; this names the lines)."""
    S37, S39 = MODULES[37], MODULES[39]
    notes = [
        (S37, "np.flatnonzero(words)", "time",
         ("indexes every non-zero log word (int64 per word); with dirt spread at random "
         "nearly every word is non-zero")),
        (S37, "[page + k] |= words[k]", "time, memory",
         ("fancy-index gather, OR and scatter for each of the three clients, plus the "
         "`page + k` and `words[k]` temporaries; `dirty_memory[client][page:page + nr] |= words` "
         "does the same (OR with a zero word changes nothing) at slice speed")),
        (S37, ".astype(np.uint64)", "time, memory",
         ("copies the whole log on a little-endian host; `np.asarray(bitmap[:nr], dtype=np.uint64)` "
         "is a view there")),
        (S39, "new_dirty = ~dest & src", "time, memory",
         ("a fresh range-sized temporary on every sync (numpy reuses the `~dest` one for the AND), "
         "paid in page faults as well as copying; the new bits can be counted as "
         "`bitwise_count(dest)` after the OR minus before it, with byte-sized temporaries only")),
        ("machine", 'log.astype("<u8")', "time, memory",
         ("the machine (not a stage) copies each block's log before handing it to the stage, "
         "after allocating a zeroed log for every block that has none")),
    ]
    out = []
    for module, needle, kind, why in notes:
        where = source_line(module, needle)
        if where:
            out.append({"where": where, "code": needle, "costs": kind, "why": why})
    return out


def stage39_breakdown(g: Guest, density: float, seed: int, reps: int) -> dict[str, float]:
    """Median ns per function of stage 39's sync, from separate, wrapped runs."""
    per: dict[str, list[int]] = {}
    op = make_op("sync", g, density, seed)
    for _ in range(reps):
        timer = CallTimer()
        saved = {(o, n): (g.machine if o == "machine" else g.st).__dict__.get(n) for o, n, _ in WATCHED}
        watch(g, timer)
        op.prepare()
        t0 = measure.clock()
        op.call()
        timer.totals["total"] = measure.clock() - t0
        for (o, n), v in saved.items():           # unwrap
            obj = g.machine if o == "machine" else g.st
            if v is None:
                obj.__dict__.pop(n, None)
        for k, v in timer.totals.items():
            per.setdefault(k, []).append(v)
    order = ["total"] + [label for _, _, label in WATCHED]
    out = {k: float(statistics.median(per[k])) for k in order if k in per}
    kvm, leb = out.get(WATCHED[0][2]), out.get(WATCHED[1][2])
    if kvm is not None and leb is not None:
        out[MACHINE_PART] = kvm - leb
    return out


MACHINE_PART = "machine's own log handling (kvm_sync minus s37)"


# ---- the targets -----------------------------------------------------------------------
def bench_targets(run: Run, result: dict[str, Any]) -> None:
    plan, progress = run.plan, run.progress
    reps = plan.reps
    # stage 00 on the walk guest: sync at the three densities, setup (scaled linearly)
    s00 = Guest(stage_class(0), min(plan.walk_bytes, plan.target_bytes), plan.layout)
    big = Guest(stage_class(39), plan.target_bytes, plan.layout)
    setups = [Series(make_op("setup", s00, 0.0, plan.seed), "stage 00 setup (walk guest)"),
              Series(make_op("setup", big, 0.0, plan.seed), "stage 39 setup (target guest)")]
    in_rounds(setups, reps, run.problems, progress)
    s00_setup, big_setup = setups[0].ns_per_page, setups[1].ns_per_page * big.pages
    ref = Reference(big.pages)
    rows, s00_sync = [], {}
    for d in TARGET_DENSITIES:
        _, whole, expected = big.log_for(d, plan.seed)
        three = [Series(make_op("sync", big, d, plan.seed), f"stage 39 sync {d:.0%}, target guest"),
                 Series(ref.op(whole, expected), f"reference {d:.0%}, target guest"),
                 Series(make_op("sync", s00, d, plan.seed), f"stage 00 sync {d:.0%}, walk guest")]
        in_rounds(three, reps, run.problems, progress)
        s39, r = (float(statistics.median(x.samples)) for x in three[:2])
        s00_sync[d] = three[2].ns_per_page
        progress(f"stage 39 sync {d:.0%}: where the time goes")
        parts = stage39_breakdown(big, d, plan.seed, reps)
        machine_ns = parts.get(MACHINE_PART, 0.0)
        rows.append({"density": d, "pages": big.pages,
                     "stage39_ns_per_page": s39 / big.pages, "reference_ns_per_page": r / big.pages,
                     "ratio": s39 / r, "ratio_without_machine": (s39 - machine_ns) / r,
                     "stage00_ns_per_page": s00_sync[d],
                     "fold_00_to_39": s00_sync[d] / (s39 / big.pages),
                     "stage39_breakdown_ms": {k: v / 1e6 for k, v in parts.items()}})
        big.logs.pop(d, None)
    del big, ref, s00

    # peak memory of the setup at stage 39
    progress(f"stage 39 setup of {plan.peak_bytes >> TARGET_PAGE_BITS} pages under tracemalloc")
    peak = peak_of_setup(plan)
    g = Guest(stage_class(39), plan.peak_bytes, plan.layout)
    one = [Series(make_op("setup", g, 0.0, plan.seed), "stage 39 setup (peak guest)")]
    in_rounds(one, reps, run.problems, progress)
    peak_setup = float(statistics.median(one[0].samples))
    del g, one

    # targets
    main = {r["stage"]: r for r in result["stages"]}
    targets = []
    worst = max(rows, key=lambda r: r["ratio"])
    targets.append({
        "name": "stage39_sync_vs_reference",
        "text": f"stage 39 sync of {rows[0]['pages']} pages within {SYNC_LIMIT}x the numpy reference "
                "at 0, 5 and 100 % dirty",
        "limit": SYNC_LIMIT, "value": worst["ratio"],
        "values": {f"{r['density']:.0%}": r["ratio"] for r in rows},
        "pass": all(r["ratio"] <= SYNC_LIMIT for r in rows)})
    folds = {f"{r['density']:.0%} at {r['pages']} pages": r["fold_00_to_39"] for r in rows}
    if 0 in main and 39 in main:
        folds[f"{plan.density:.0%} at {main[39]['pages']} pages (curve)"] = (
            main[0]["sync_ns_per_page"] / main[39]["sync_ns_per_page"])
    targets.append({
        "name": "sync_fold_00_to_39",
        "text": f"stage 00 -> 39 sync cost per page falls at least {FOLD_LIMIT:.0f}-fold",
        "limit": FOLD_LIMIT, "value": min(folds.values()), "values": folds,
        "pass": min(folds.values()) >= FOLD_LIMIT})
    targets.append({
        "name": "stage39_setup_peak_memory",
        "text": f"peak memory of the {peak['pages']}-page setup at stage 39 "
                f"within {PEAK_LIMIT}x the bytes of its bitmaps",
        "limit": PEAK_LIMIT, "value": peak["ratio"], "pass": peak["ratio"] <= PEAK_LIMIT})

    # the setup model next to the seed
    walk_pages = min(plan.walk_bytes, plan.target_bytes) >> TARGET_PAGE_BITS
    model = []
    for gib, (before, after) in SEED_SETUP_MS.items():
        pages = gib * GiB >> TARGET_PAGE_BITS
        measured = {plan.target_bytes: (big_setup, rows[0]["pages"]),
                    plan.peak_bytes: (peak_setup, plan.peak_bytes >> TARGET_PAGE_BITS)}
        exact = measured.get(gib * GiB)
        if exact:
            s39_ms, how39 = exact[0] / 1e6, f"measured on {exact[1]} pages"
        else:
            ns, n = max(measured.values(), key=lambda v: v[1])
            s39_ms, how39 = ns / n * pages / 1e6, f"scaled linearly from {n} pages"
        s00_ms = s00_setup * pages / 1e6
        model.append({"guest_gib": gib, "pages": pages,
                      "seed_before_ms": before, "seed_after_ms": after, "seed_ratio": before / after,
                      "stage00_ms": s00_ms, "stage00_how": f"scaled linearly from {walk_pages} pages",
                      "stage39_ms": s39_ms, "stage39_how": how39, "model_ratio": s00_ms / s39_ms,
                      "seed_before_ns_per_page": before * 1e6 / pages,
                      "seed_after_ns_per_page": after * 1e6 / pages})
    result["targets"] = targets
    result["stage39_sync"] = rows
    result["peak"] = peak
    result["setup_model"] = model
    missed = {t["name"] for t in targets if not t["pass"]}
    if missed & {"stage39_sync_vs_reference", "stage39_setup_peak_memory"}:
        result["overhead_notes"] = overhead_notes()


def peak_of_setup(plan: Plan) -> dict[str, Any]:
    """Traced peak of ``ram_save_setup`` at stage 39 on a freshly allocated
    guest, against the bytes of its bitmaps: the three dirty bitmaps and the
    migration bitmap (the stage's), and the KVM log, one bitmap per block
    (which a real QEMU also allocates during the sync: kvm_physical_sync_dirty_bitmap's
    buffer)."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        gc.collect()
        g = Guest(stage_class(39), plan.peak_bytes, plan.layout, keep_snapshot=False)
        probe = PeakProbe()
        watch(g, probe)
        probe.wrap(g.st, "ram_save_setup", "ram_save_setup")
        before = tracemalloc.get_traced_memory()[0]
        g.st.ram_save_setup()
        peak_abs = probe.absolute["ram_save_setup"]
        st = g.st
        dirty = dirty_bytes(st)
        migration = st.migration_bitmap.nbytes
        kvm = sum(BITS_TO_LONGS(b.length // CONFIG.host_page_size) * 8 for b in g.blocks())
        out = {"pages": g.pages, "peak_bytes": peak_abs, "traced_before_setup": before,
               "dirty_bitmaps_bytes": dirty, "migration_bitmap_bytes": migration,
               "kvm_log_bytes": kvm, "bitmaps_bytes": dirty + migration + kvm,
               "ratio": peak_abs / (dirty + migration + kvm),
               "ratio_stage_bitmaps_only": peak_abs / (dirty + migration),
               "above_entry_bytes": dict(probe.above)}
        del g, st
        return out
    finally:
        if started:
            tracemalloc.stop()
