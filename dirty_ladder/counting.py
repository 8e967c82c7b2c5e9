"""The cost shape of a stage, counted rather than timed.

An optimisation commit of the series changes how much work an operation
does for a range of pages: stage 26 searches words where stage 25 tested
every page, stage 27 sets whole words where stage 26 set one bit per page.
Seconds would tell it too, but they move with the machine and its load.
This module counts instead, from the interpreter's side:

- every line of Python the operation executes, in any module (the stage's
  own code, the shared helpers of ``stages/``, a user's file, a lambda
  handed to numpy), seen by a ``sys.settrace`` hook;
- every call of a Python function, by name.

Each operation runs on a block of :data:`SIZES` [0] pages and again on one
of :data:`SIZES` [1] pages; the difference, divided by the difference in
pages, is the operation's *steps per page*.  A loop over pages, whether it
calls ``set_bit`` or indexes the numpy array itself, costs at least one line
per page; a loop over 64-bit words about one line per 64 pages; numpy on a
whole slice of words nothing per page.  That gives an operation's order
(:func:`order_of`): one page at a time, one word at a time, or the whole
range at once.  The last two are both what the series' optimisations do
(QEMU's ``bitmap_set`` loops over words in C; this model's uses numpy), so
a stage is judged by whether it works page by page or not.

What the counter cannot see is work done inside C: numpy's own loops, which
is how the series' commits get their speed, but also a page loop pushed
into C on purpose (``map`` of a builtin over a range of pages), which would
pass for whole-range work.  A learner's stage is judged, not an adversary's.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .machine import Machine
from .trace import TARGET_PAGE_SIZE, Config

SIZES = (128, 192)                  # pages of the block, whole words, the first block of RAM
CONFIG = Config(host_page_size=4096, accel="kvm", xen=False)
PAGE, WORD, RANGE = "page", "word", "range"
ORDER_TEXT = {PAGE: "one page at a time", WORD: "one 64-bit word at a time", RANGE: "the whole range at once"}

# What each counted operation is, in the stage's own terms: the op the
# machine runs, and what it asks of the stage.
OPERATIONS = {
    "ram_alloc": "qemu_ram_alloc_from_ptr of a new block (it sets the block's pages dirty)",
    "reset_dirty": "memory_region_reset_dirty of the block (it clears the block's pages for one client)",
    "get_dirty": "memory_region_get_dirty of the block, every page clean (it looks for a dirty page)",
    "set_dirty": "memory_region_set_dirty of the block (it sets the block's pages dirty)",
    "test_and_clear_dirty": "memory_region_test_and_clear_dirty of the block",
    "kvm_sync": "the KVM dirty log sync, every page in the log (kvm_get_dirty_pages_log_range)",
    "migration_setup": "ram_save_setup, everything dirty (its first migration_bitmap_sync)",
    "migration_sync": "migration_bitmap_sync, every page in the KVM log",
}


@dataclass
class Count:
    """What one operation did on a block of ``pages`` pages."""
    lines: int
    calls: Counter = field(default_factory=Counter)


@dataclass
class Shape:
    """One operation's counts on the two block sizes."""
    op: str
    small: Count
    large: Count

    @property
    def per_page(self) -> float:
        """Lines of Python per extra page of the block."""
        return (self.large.lines - self.small.lines) / (SIZES[1] - SIZES[0])

    @property
    def order(self) -> str:
        return order_of(self.per_page)

    def busiest_call(self) -> tuple[str, float] | None:
        """The function whose calls grow most with the block, and its calls per page."""
        best = None
        for name, n in self.large.calls.items():
            slope = (n - self.small.calls.get(name, 0)) / (SIZES[1] - SIZES[0])
            if slope > 0 and (best is None or slope > best[1]):
                best = (name, slope)
        return best

    def as_dict(self) -> dict[str, Any]:
        return {"op": self.op, "order": self.order, "lines_per_page": round(self.per_page, 4),
                "lines": {str(SIZES[0]): self.small.lines, str(SIZES[1]): self.large.lines}}


def order_of(per_page: float) -> str:
    """One page at a time (half a line per page or more), one word at a
    time (a line per 128 pages or more), or the whole range at once."""
    if per_page >= 0.5:
        return PAGE
    if per_page >= 1 / 128:
        return WORD
    return RANGE


class StageRaised(Exception):
    """The stage raised while it was being counted: ``op`` names the operation."""

    def __init__(self, op: str, exc: BaseException):
        super().__init__(f"{op}: {exc}")
        self.op, self.exc = op, exc


class _Counter:
    """A settrace hook counting the lines of Python run and the calls made."""

    def __init__(self) -> None:
        self.lines = 0
        self.calls: Counter = Counter()

    def global_trace(self, frame, event, arg):
        if event == "call":
            self.calls[frame.f_code.co_name] += 1
            return self.local_trace
        return None

    def local_trace(self, frame, event, arg):
        if event == "line":
            self.lines += 1
        return self.local_trace

    def run(self, fn: Callable[[], Any]) -> Count:
        self.lines, self.calls = 0, Counter()
        old = sys.gettrace()
        sys.settrace(self.global_trace)
        try:
            fn()
        finally:
            sys.settrace(old)
        return Count(self.lines, self.calls)


def _fill_kvm_log(machine: Machine) -> None:
    """Every host page of every block in the KVM log (what kvm_write does, page by page)."""
    hps = machine.config.host_page_size
    for block in machine.ram_list.blocks:
        pages = block.length // hps
        log = np.zeros((pages + 63) // 64, dtype=np.uint64)
        log[:] = np.uint64((1 << 64) - 1)
        if pages % 64:
            log[-1] = np.uint64((1 << (pages % 64)) - 1)
        machine.kvm_log[block.offset] = log


def _script(machine: Machine, pages: int) -> list[tuple[str, Callable[[], Any]]]:
    """The counted operations, in order, on a machine with no block yet."""
    length = pages * TARGET_PAGE_SIZE
    run = machine.run_op
    return [
        ("ram_alloc", lambda: run({"op": "ram_alloc", "size": length})),
        ("reset_dirty", lambda: run({"op": "reset_dirty", "addr": 0, "len": length, "client": "migration"})),
        ("get_dirty", lambda: run({"op": "get_dirty", "addr": 0, "len": length, "client": "migration"})),
        ("set_dirty", lambda: run({"op": "set_dirty", "addr": 0, "len": length})),
        ("test_and_clear_dirty",
         lambda: run({"op": "test_and_clear_dirty", "addr": 0, "len": length, "client": "vga"})),
        ("kvm_sync", lambda: (_fill_kvm_log(machine), run({"op": "kvm_sync"}))),
        ("migration_setup", lambda: run({"op": "migration_setup"})),
        ("migration_sync", lambda: (_fill_kvm_log(machine), run({"op": "migration_sync"}))),
    ]


def count(cls: type, pages: int, ops: list[str] | None = None) -> dict[str, Count]:
    """Each operation of the script (or those of ``ops``; the others run
    uncounted, as they set the state up) on ``cls``, with a block of ``pages`` pages."""
    machine = Machine(cls, CONFIG)
    counter = _Counter()
    out = {}
    for op, fn in _script(machine, pages):
        try:
            if ops is None or op in ops:
                out[op] = counter.run(fn)
            else:
                fn()
        except Exception as exc:           # noqa: BLE001 -- the stage's own failure: the caller says where
            raise StageRaised(op, exc) from exc
        if ops is not None and all(o in out for o in ops):
            break
    return out


def shapes(cls: type, ops: list[str] | None = None) -> dict[str, Shape]:
    """The cost shape of every operation of the script (or of ``ops``) on ``cls``."""
    small, large = count(cls, SIZES[0], ops), count(cls, SIZES[1], ops)
    return {op: Shape(op, small[op], large[op]) for op in small}


def estimate(shape: Shape, pages: int) -> float:
    """The lines an operation would run on a block of ``pages`` pages, extrapolated linearly."""
    return max(0.0, shape.small.lines + shape.per_page * (pages - SIZES[0]))


_SHAPES: dict[int, dict[str, Shape]] = {}


def stage_shapes(n: int) -> dict[str, Shape]:
    """:func:`shapes` of the ladder's stage ``n``, computed once per process."""
    from stages import stage
    if n not in _SHAPES:
        _SHAPES[n] = shapes(stage(n))
    return _SHAPES[n]


def changed_ops(n: int) -> list[str]:
    """The operations whose order commit ``n`` changed (stage n-1 -> n)."""
    before, after = stage_shapes(n - 1), stage_shapes(n)
    return [op for op in OPERATIONS if before[op].order != after[op].order]
