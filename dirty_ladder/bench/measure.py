"""Measuring the stages: a guest around one stage (``Guest``), the
operations the series changed on it (``make_op``), timed calls taken in
rounds (``Series``, ``in_rounds``), and each stage's cost per page on the
curve's guest, page walks measured on a smaller one and scaled
(``stage_series``)."""

from __future__ import annotations

import gc
import inspect
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stages import LAST
from stages import stage as stage_class
from stages.bitmap import BITS_TO_LONGS, bits_of, words_from_bits
from ..machine import Machine
from ..trace import TARGET_PAGE_BITS, TARGET_PAGE_SIZE, Config
from ..views import client_flag, representation


FORMAT = "dirty-bench/1"
CONFIG = Config(host_page_size=4096, accel="kvm", xen=False)
KiB, MiB, GiB, TiB = 1 << 10, 1 << 20, 1 << 30, 1 << 40
GRANULE = 64 * TARGET_PAGE_SIZE              # sizes are whole words of pages
ALL_ONES = np.uint64((1 << 64) - 1)

# An operation whose call on the curve's guest is predicted (from one call
# on the walk guest and one on a quarter of it) to take longer than this is
# measured on the walk guest and scaled: the page walks of this model cost
# about a microsecond per page, a tenth of a second from 100 Ki pages on.
FULL_BUDGET_NS = 1e8
RANGE_OPS = ("set_range", "clear_range", "get_dirty")      # over the main block only
# Build a big guest with the stage's own qemu_ram_alloc_from_ptr only when
# that is estimated to take less than this (else see Guest.direct).
ALLOC_BUDGET_NS = 2e9

OPS = ("sync", "setup", "set_range", "clear_range", "get_dirty")
OP_LABEL = {
    "sync": "migration_bitmap_sync",
    "setup": "ram_save_setup",
    "set_range": "set_dirty_range",
    "clear_range": "clear/mask_dirty_range",
    "get_dirty": "get_dirty",
}
# Blocks after the main RAM in the "pc" layout, in allocation order, as a PC
# guest of the time has them: the VGA RAM lands 96 pages past a 64-page
# boundary, the misalignment the cover letter's ToDo list mentions.
PC_EXTRA = (("pc.bios", 256 * KiB), ("pc.rom", 128 * KiB), ("vga.vram", 16 * MiB))


# ---- the dirty state of a stage --------------------------------------------------------
def dirty_arrays(st) -> list[np.ndarray]:
    if representation(st) == "bytes":
        return [st.ram_list.phys_dirty]
    return list(st.ram_list.dirty_memory)


def dirty_bytes(st) -> int:
    return sum(a.nbytes for a in dirty_arrays(st))


def snapshot(st) -> list[np.ndarray]:
    return [a.copy() for a in dirty_arrays(st)]


def restore(st, snap: list[np.ndarray]) -> None:
    """Put a snapshot back, in place when the arrays have not been replaced."""
    arrays = dirty_arrays(st)
    if [a.shape for a in arrays] == [s.shape for s in snap]:
        for a, s in zip(arrays, snap):
            np.copyto(a, s)
    elif representation(st) == "bytes":
        st.ram_list.phys_dirty = snap[0].copy()
    else:
        st.ram_list.dirty_memory = [s.copy() for s in snap]


def clean(st) -> None:
    for a in dirty_arrays(st):
        a.fill(0)


def mark_migration_dirty(st, page: int) -> None:
    if representation(st) == "bytes":
        st.ram_list.phys_dirty[page] |= np.uint8(client_flag(st, "migration"))
    else:
        st.ram_list.dirty_memory[st.DIRTY_MEMORY_MIGRATION][page >> 6] |= np.uint64(1 << (page & 63))


def migration_arg(st) -> int:
    """The migration client as this stage's range functions take it: a flag
    mask while ``MIGRATION_DIRTY_FLAG`` exists (before stage 13), else the
    client number."""
    if hasattr(st, "MIGRATION_DIRTY_FLAG"):
        return st.MIGRATION_DIRTY_FLAG
    return st.DIRTY_MEMORY_MIGRATION


def clear_range_function(st) -> tuple[str, Callable]:
    for name in ("cpu_physical_memory_clear_dirty_range", "cpu_physical_memory_mask_dirty_range"):
        fn = getattr(st, name, None)
        if fn is not None:
            return name, fn
    raise AttributeError(f"stage {st.STAGE}: no clear/mask dirty range function")


def set_range_call(st) -> Callable[[int, int], None]:
    """``cpu_physical_memory_set_dirty_range``; before stage 11 it takes the
    flags to set as a third argument (0xff, as allocation passes)."""
    fn = st.cpu_physical_memory_set_dirty_range
    if len(inspect.signature(fn).parameters) == 3:
        return lambda start, length: fn(start, length, 0xFF)
    return fn


# ---- the dirty pattern -----------------------------------------------------------------
def density_words(npages: int, density: float, rng: np.random.Generator) -> np.ndarray:
    """A bitmap of ``npages`` bits, each set with probability ``density``."""
    nwords = BITS_TO_LONGS(npages)
    out = np.zeros(nwords, dtype=np.uint64)
    if density >= 1.0:
        out.fill(ALL_ONES)
    elif density > 0.0:
        chunk = 1 << 22                         # pages per step: bounded scratch memory
        for first in range(0, nwords * 64, chunk):
            n = min(chunk, nwords * 64 - first)
            bits = rng.random(n, dtype=np.float32) < density
            out[first >> 6:(first + n) >> 6] = np.packbits(bits, bitorder="little").view("<u8")
    if npages % 64:
        out[-1] &= np.uint64((1 << (npages % 64)) - 1)
    return out


def block_words(whole: np.ndarray, first: int, npages: int) -> np.ndarray:
    """Bits ``[first, first + npages)`` of a whole-guest bitmap as a block's log."""
    if first % 64 == 0:
        out = whole[first >> 6:(first >> 6) + BITS_TO_LONGS(npages)].copy()
        if npages % 64:
            out[-1] &= np.uint64((1 << (npages % 64)) - 1)
        return out
    return words_from_bits(bits_of(whole, first + npages)[first:])


# ---- a guest ---------------------------------------------------------------------------
def layout_sizes(main_bytes: int, layout: str) -> list[int]:
    return [main_bytes] + ([size for _, size in PC_EXTRA] if layout == "pc" else [])


class Guest:
    """One machine around one stage, its RAM allocated, and snapshots of the
    dirty state after allocation and after ``ram_save_setup``."""

    def __init__(self, cls: type, main_bytes: int, layout: str, template: Guest | None = None,
                 keep_snapshot: bool = True):
        self.machine = Machine(cls, CONFIG)
        self.st = self.machine.stage
        self.layout = layout
        sizes = layout_sizes(main_bytes, layout)
        t0 = time.perf_counter_ns()
        if template is None:
            offsets = [self.st.qemu_ram_alloc_from_ptr(size) for size in sizes]
            self.built = "the stage's qemu_ram_alloc_from_ptr"
        else:
            offsets = [self.machine.ram_block_add(size).offset for size in sizes]
            self._fill_like(template)
            self.built = "directly (see Guest.direct)"
        self.alloc_ns = time.perf_counter_ns() - t0
        self.main, self.main_len = offsets[0], sizes[0]
        self.main_pages = self.main_len >> TARGET_PAGE_BITS
        self.pages = self.machine.last_ram_offset() >> TARGET_PAGE_BITS
        self.in_migration0 = self.st.in_migration
        self.post_alloc = snapshot(self.st) if keep_snapshot else None
        self.post_setup: list[np.ndarray] | None = None
        self.logs: dict[float, tuple[dict[int, np.ndarray], np.ndarray, int]] = {}

    @classmethod
    def direct(cls_, cls: type, main_bytes: int, layout: str, small: Guest) -> Guest:
        """A big guest without the stage's page-by-page allocation: blocks
        placed by the machine, dirty state filled as allocation leaves it
        (every page dirty in every client, spare bits as the stage sets
        them).  Used when the stage's allocation walk would take longer than
        ``ALLOC_BUDGET_NS``; the fill is first checked, on the small guest's
        size, to give exactly the state the stage's own allocation gives."""
        check = Guest(cls, small.main_len, small.layout, template=small)
        if [a.tobytes() for a in dirty_arrays(check.st)] != [a.tobytes() for a in small.post_alloc]:
            raise AssertionError(f"stage {cls.STAGE}: direct build differs from the stage's allocation")
        return Guest(cls, main_bytes, layout, template=small)

    def _fill_like(self, template: Guest) -> None:
        st, npages = self.st, self.machine.last_ram_offset() >> TARGET_PAGE_BITS
        snap = template.post_alloc
        if representation(st) == "bytes":
            value = snap[0][0]
            if not (snap[0] == value).all():
                raise AssertionError("direct build: the template's pages are not all alike")
            st.ram_list.phys_dirty = np.full(npages, value, dtype=np.uint8)
        else:
            maps = []
            for words in snap:
                bits = bits_of(words, template.pages)
                if not (bits.all() or not bits.any()):
                    raise AssertionError("direct build: the template's pages are not all alike")
                m = np.zeros(BITS_TO_LONGS(npages), dtype=np.uint64)
                if bits.all():
                    m.fill(ALL_ONES)
                    if npages % 64:
                        m[-1] = np.uint64((1 << (npages % 64)) - 1)
                maps.append(m)
            st.ram_list.dirty_memory = maps

    def blocks(self):
        return list(self.machine.ram_list.blocks)

    def reset_for_setup(self) -> None:
        st = self.st
        restore(st, self.post_alloc)
        st.migration_bitmap = None
        st.migration_dirty_pages = 0
        st.in_migration = self.in_migration0
        self.machine.kvm_log.clear()

    def ensure_setup(self) -> None:
        if self.post_setup is None:
            self.reset_for_setup()
            self.st.ram_save_setup()
            self.post_setup = snapshot(self.st)

    def log_for(self, density: float, seed: int):
        """Per-block KVM logs, the whole-guest bitmap, and the number of set bits."""
        if density not in self.logs:
            rng = np.random.default_rng([seed, self.pages, round(density * 1e6)])
            whole = density_words(self.pages, density, rng)
            per_block = {b.offset: block_words(whole, b.offset >> TARGET_PAGE_BITS,
                                               b.length >> TARGET_PAGE_BITS) for b in self.blocks()}
            self.logs[density] = (per_block, whole, int(np.bitwise_count(whole).sum()))
        return self.logs[density]


# ---- the operations --------------------------------------------------------------------
@dataclass
class Op:
    prepare: Callable[[], None]
    call: Callable[[], Any]
    check: Callable[[Any], str | None]          # None when the result is as expected
    pages: int                                  # the denominator of ns per page


def make_op(name: str, g: Guest, density: float, seed: int) -> Op:
    st, m = g.st, g.machine
    if name == "setup":
        def check(result):
            return None if int(result) == g.pages else f"ram_save_setup returned {result}, not {g.pages}"
        return Op(g.reset_for_setup, st.ram_save_setup, check, g.pages)

    if name == "sync":
        g.ensure_setup()
        logs, _, expected = g.log_for(density, seed)

        def prepare():
            restore(st, g.post_setup)
            st.migration_bitmap.fill(0)
            st.migration_dirty_pages = 0
            m.kvm_log.clear()
            m.kvm_log.update({off: words.copy() for off, words in logs.items()})

        def check(_):
            got = int(st.migration_dirty_pages)
            return None if got == expected else f"sync counted {got} new dirty pages, the log had {expected}"
        return Op(prepare, st.migration_bitmap_sync, check, g.pages)

    if name == "set_range":
        fn = set_range_call(st)
        return Op(lambda: clean(st), lambda: fn(g.main, g.main_len), lambda _: None, g.main_pages)

    if name == "clear_range":
        _, fn = clear_range_function(st)
        arg = migration_arg(st)
        return Op(lambda: restore(st, g.post_alloc), lambda: fn(g.main, g.main_len, arg),
                  lambda _: None, g.main_pages)

    if name == "get_dirty":
        arg = migration_arg(st)
        last = (g.main >> TARGET_PAGE_BITS) + g.main_pages - 1

        def prepare():
            clean(st)
            mark_migration_dirty(st, last)

        def check(result):
            return None if result else "get_dirty missed the dirty last page"
        return Op(prepare, lambda: st.cpu_physical_memory_get_dirty(g.main, g.main_len, arg),
                  check, g.main_pages)
    raise ValueError(name)


CLOCKS = {"wall": time.perf_counter_ns, "cpu": time.process_time_ns}
clock = CLOCKS["wall"]          # set by run() from --clock


def set_clock(name: str) -> None:
    """Time with ``CLOCKS[name]`` from now on (``--clock``)."""
    global clock
    clock = CLOCKS[name]


def sample(op: Op, problems: list[str] | None = None, what: str = "") -> int:
    """ns of one call after its ``prepare``, the garbage collector off."""
    op.prepare()
    enabled = gc.isenabled()
    gc.disable()
    try:
        t0 = clock()
        result = op.call()
        dt = clock() - t0
    finally:
        if enabled:
            gc.enable()
    bad = op.check(result)
    if bad and problems is not None and f"{what}: {bad}" not in problems:
        problems.append(f"{what}: {bad}")
    return dt


@dataclass
class Series:
    """Timed calls of one operation, taken in rounds with the others (so that
    a slow spell of the machine spreads over every stage instead of
    falling on a few)."""
    op: Op
    what: str
    samples: list[int] = field(default_factory=list)

    def take(self, problems: list[str]) -> None:
        self.samples.append(sample(self.op, problems, self.what))

    @property
    def ns_per_page(self) -> float:
        return float(statistics.median(self.samples)) / self.op.pages


def in_rounds(series: list[Series], reps: int, problems: list[str], progress=None, label: str = "") -> None:
    for r in range(reps):
        for i, one in enumerate(series):
            if progress is not None and i % 10 == 0:
                progress(f"{label}round {r + 1}/{reps}: {one.what}")
            one.take(problems)


# ---- a stage's cost per page -----------------------------------------------------------
@dataclass
class Plan:
    main_bytes: int
    walk_bytes: int
    density: float
    reps: int
    stages: list[int]
    layout: str
    seed: int
    targets: bool
    target_bytes: int
    peak_bytes: int
    full_budget_ns: float = FULL_BUDGET_NS

    @property
    def quarter_bytes(self) -> int:
        return max(GRANULE, (self.walk_bytes // 4) // GRANULE * GRANULE)

    @property
    def interleave(self) -> bool:
        """Keep every stage's guests at once (up to 64 GiB of guest)."""
        return self.guest_pages <= 1 << 24

    @property
    def main_pages(self) -> int:
        return self.main_bytes >> TARGET_PAGE_BITS

    @property
    def guest_pages(self) -> int:
        """Pages of the curve's guest, all blocks."""
        return sum(layout_sizes(self.main_bytes, self.layout)) >> TARGET_PAGE_BITS


@dataclass
class Run:
    plan: Plan
    progress: Callable[[str], None]
    problems: list[str] = field(default_factory=list)


def stage_series(n: int, run: Run) -> tuple[dict[str, Any], list[tuple[str, Series, Series | None]]]:
    """One stage's guests and what to time on them.  Each operation is first
    probed once on the walk guest and (the least of three calls) on one a
    quarter its size; the two, fitted as ``a + b * pages``, predict a call on
    the curve's guest.  One predicted to take longer than ``--full-budget``
    (a page walk) is timed on both small guests, and the walk guest's cost
    per page stands for the big guest's (linear scaling), the quarter's
    telling how linear it is; anything else is timed on the curve's guest
    itself (or scaled after all if its first call there takes ten times the
    budget)."""
    plan, cls = run.plan, stage_class(n)
    small_bytes = min(plan.walk_bytes, plan.main_bytes)
    small = Guest(cls, small_bytes, plan.layout)
    quarter = Guest(cls, plan.quarter_bytes, plan.layout) if small_bytes == plan.walk_bytes else None
    full: Guest | None = small if small_bytes == plan.main_bytes else None
    rec: dict[str, Any] = {"stage": n, "title": cls.TITLE, "upstream": cls.UPSTREAM,
                           "representation": representation(small.st),
                           "bytes_per_page": dirty_bytes(small.st) / small.pages,
                           "clear_function": clear_range_function(small.st)[0],
                           "pages": plan.guest_pages, "measured": {}}
    todo = []
    for name in OPS:
        run.progress(f"stage {n:02d}/{LAST}  probing {OP_LABEL[name]}")
        what = f"stage {n:02d} {name}"
        op = make_op(name, small, plan.density, plan.seed)
        t_small = sample(op, run.problems, what)
        if t_small < 5e6:                   # cheap: the least of three, as for the quarter
            t_small = min([t_small] + [sample(op, run.problems, what) for _ in range(2)])
        if full is not small:
            qop = make_op(name, quarter, plan.density, plan.seed)
            # the least of three cheap calls: a quarter probe slowed by another
            # process would flatten the slope and send a walk to the big guest
            t_quarter = min(sample(qop, run.problems, what) for _ in range(3))
            big_pages = plan.main_pages if name in RANGE_OPS else plan.guest_pages
            # t = a + b * pages through the two probes
            slope = max(0.0, (t_small - t_quarter) / max(1, op.pages - qop.pages))
            predicted = t_small + slope * (big_pages - op.pages)
        scaled = full is not small and predicted > plan.full_budget_ns
        if not scaled:
            if full is None:
                estimate = small.alloc_ns / small.pages * plan.guest_pages
                if estimate < ALLOC_BUDGET_NS:
                    full = Guest(cls, plan.main_bytes, plan.layout)
                else:
                    full = Guest.direct(cls, plan.main_bytes, plan.layout, small)
            big_op = make_op(name, full, plan.density, plan.seed)
            warm = sample(big_op, run.problems, what)           # warms the big guest
            # a walk the probes misjudged (a slow spell during one of them)
            scaled = full is not small and warm > 10 * plan.full_budget_ns
        if not scaled:
            op = big_op
            rec["measured"][name] = {"pages": op.pages, "scaled": False, "guest_built": full.built}
            if full is not small:
                rec["measured"][name]["predicted_ms"] = predicted / 1e6
            todo.append((name, Series(op, what), None))
        else:
            rec["measured"][name] = {"pages": op.pages, "scaled": True, "predicted_ms": predicted / 1e6}
            todo.append((name, Series(op, what), Series(qop, what + " (quarter)")))
    return rec, todo


def fill_record(rec: dict[str, Any], todo: list[tuple[str, Series, Series | None]]) -> None:
    for name, main, quarter in todo:
        rec[f"{name}_ns_per_page"] = main.ns_per_page
        rec["measured"][name]["samples_ns"] = list(main.samples)
        if quarter is not None:
            rec["measured"][name]["linearity"] = {
                "pages": [quarter.op.pages, main.op.pages],
                "ns_per_page": [quarter.ns_per_page, main.ns_per_page],
                "ratio": main.ns_per_page / quarter.ns_per_page}
