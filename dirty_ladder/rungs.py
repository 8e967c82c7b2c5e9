"""The random check of a rung: generated traces and API cases.

The exhaustive check (:mod:`.explore`) tries every trace of a small scope;
this one samples longer traces and random dirty states (the ``ci`` profile
in the test suite, ``deep`` for a long run).  It judges what it finds the
same way (:mod:`.compare`): every difference between the bridge (stage N-1
with the overrides of the rung's register entries) and stage N is new, and
each entry's override alone must differ from stage N-1 only where the entry
says.  It also asks that every entry be found, at each level it names.

Before the generated cases it replays the rung's register entries' own
reproducers (each entry's traces and calls, :class:`Collector.add_register`),
so an entry is found whatever the seed and however few the examples; the
generated cases are there for what the register does not know.  The cases
are a function of the rung, the seed and their index only (a seeded
:class:`~dirty_ladder.generate.RandomChooser`), the same from the command line
and in the test suite, whatever else a process has imported or run.

Every difference is shrunk before it is reported (:func:`minimize`): ops are
dropped (ddmin), values move towards boundaries (sizes to whole pages,
addresses to page starts, lengths to 0, 1 or a page), the config goes back to
its defaults, as long as the same pair still first differs at the same
place.  The result is a trace a user can replay (``dirty-ladder replay``), or
for the API level a call (``dirty-ladder replay`` of its ``dirty-call/1``
file).
"""

from __future__ import annotations

from typing import Callable, Iterable

from .compare import (
    LEVELS, ApiCase, RungResult, api_case, api_functions, compare_case, follow, judge, rung_classes,
)
from .register import Divergence, entries_of, load_register
from .trace import CLIENTS, DEFAULT_CONFIG, TARGET_PAGE_SIZE, Config, Trace, TraceError, validate

PROFILES = {"ci": 1000, "deep": 5000}     # examples per rung and level


def environment_profile(environ) -> tuple[str, int | None]:
    """``DIRTY_LADDER_PROFILE`` and ``DIRTY_LADDER_EXAMPLES`` as the test
    suite (conftest.py) and ``dirty-ladder check`` read them: the profile
    (default ci) and the examples per rung and level it overrides (None when
    unset).  A variable set but empty is unset.  A ValueError, one line
    naming the variable, for any other value."""
    profile = environ.get("DIRTY_LADDER_PROFILE") or "ci"
    if profile not in PROFILES:
        raise ValueError(f"DIRTY_LADDER_PROFILE={profile!r}: choose from {', '.join(PROFILES)}")
    text = environ.get("DIRTY_LADDER_EXAMPLES") or ""
    if not text:
        return profile, None
    try:
        examples = int(text, 10)
    except ValueError:
        examples = 0
    if examples < 1:
        raise ValueError(f"DIRTY_LADDER_EXAMPLES={text!r}: give a whole number of examples, at least 1")
    return profile, examples


# ---------------------------------------------------------------- shrinking
def _valid(config: Config, ops: list[dict]) -> Trace | None:
    try:
        return validate(Trace(config, ops).as_dict())
    except TraceError:
        return None


def _ddmin(config: Config, ops: list[dict], shows: Callable[[Trace], bool]) -> list[dict]:
    n = 2
    while len(ops) >= 2:
        chunk = max(1, len(ops) // n)
        reduced = False
        for start in range(0, len(ops), chunk):
            candidate = ops[:start] + ops[start + chunk:]
            t = _valid(config, candidate)
            if t is not None and shows(t):
                ops, n, reduced = candidate, max(n - 1, 2), True
                break
        if not reduced:
            if chunk == 1:
                break
            n = min(len(ops), n * 2)
    return ops


PAGE = TARGET_PAGE_SIZE


def _towards_boundaries(name: str, value: int) -> list[int]:
    """Simpler values to try for a field, most boundary-like first: sizes
    of whole pages no larger than the block (61441 bytes -> 16 pages),
    addresses at word, host-page and page starts, lengths 0, 1, a page."""
    if name == "size":
        pages = (value + PAGE - 1) // PAGE
        tries = [k * PAGE for k in (1, 2, 16, 64, 65, pages) if k <= pages]
    elif name in ("addr", "start"):
        tries = [value & ~(64 * PAGE - 1), value & ~(16 * PAGE - 1), value & ~(PAGE - 1),
                 (value & ~(PAGE - 1)) + PAGE // 2]
        tries = [v for v in tries if v < value]
    elif name == "len":
        tries = [v for v in (0, 1, PAGE, value & ~(PAGE - 1), value // 2) if v < value]
    else:
        return []
    return [v for v in dict.fromkeys(tries) if v >= 0 and v != value]


def _shrink_values(config: Config, ops: list[dict], shows: Callable[[Trace], bool]) -> list[dict]:
    changed = True
    while changed:
        changed = False
        for i, op in enumerate(ops):
            for name in ("size", "addr", "len", "start"):
                if name not in op:
                    continue
                for value in _towards_boundaries(name, op[name]):
                    candidate = ops[:i] + [{**op, name: value}] + ops[i + 1:]
                    t = _valid(config, candidate)
                    if t is not None and shows(t):
                        ops, op, changed = candidate, candidate[i], True
                        break
    return ops


def minimize(trace: Trace, shows: Callable[[Trace], bool]) -> Trace:
    """The smallest trace found that still ``shows``: ddmin over the ops,
    values towards boundaries, then the config back to its defaults (each
    candidate valid, or not tried)."""
    config = trace.config
    ops = _ddmin(config, list(trace.ops), shows)
    ops = _shrink_values(config, ops, shows)
    ops = _ddmin(config, ops, shows)
    for key, default in DEFAULT_CONFIG.items():
        if getattr(config, key) != default:
            candidate_config = Config(**{**config.as_dict(), key: default})
            t = _valid(candidate_config, ops)
            if t is not None and shows(t):
                config = candidate_config
    return validate(Trace(config, ops).as_dict())


# ---------------------------------------------------------------- one rung, random cases
class Collector:
    """What the random check of one rung finds, case by case."""

    def __init__(self, rung: int, levels: Iterable[str] = LEVELS, register: list[Divergence] | None = None,
                 stand_in: type | None = None):
        self.rung, self.levels = rung, tuple(levels)
        self.register = load_register() if register is None else register
        self.classes, self.exact, entry_pairs = rung_classes(rung, self.register, stand_in)
        self.pairs = [self.exact] + entry_pairs
        self.functions = sorted({name for i, j in self.pairs
                                 for name in api_functions(self.classes[i], self.classes[j])})
        self.found: dict = {}
        self.traces = self.cases = 0                    # generated ones
        self.register_traces = self.register_calls = 0  # the entries' own reproducers

    @property
    def trace_levels(self) -> tuple[str, ...]:
        return tuple(level for level in self.levels if level in ("machine", "repr"))

    def add_trace(self, trace: Trace) -> None:
        """Follow a generated trace; shrink each difference the first time it is seen."""
        self.traces += 1
        self._follow(trace)

    def _follow(self, trace: Trace) -> None:
        seen = follow(self.classes, self.pairs, trace, self.trace_levels)
        for k, d in seen.items():
            if k not in self.found:
                (i, j), sig = k
                pair_classes = [self.classes[i], self.classes[j]]
                small = minimize(trace, lambda t: ((0, 1), sig) in follow(pair_classes, [(0, 1)], t,
                                                                           self.trace_levels))
                d = follow(pair_classes, [(0, 1)], small, self.trace_levels)[((0, 1), sig)]
                d.pair = (i, j)
                d.configs |= seen[k].configs
                self.found[k] = d
            else:
                self.found[k].configs |= d.configs

    def add_case(self, case: ApiCase) -> None:
        """Compare a generated call."""
        self.cases += 1
        compare_case(self.classes, self.pairs, case, self.found)

    def add_register(self) -> None:
        """Replay every reproducer of the rung's register entries (their
        traces at the trace levels, their calls at the API level), before
        any generated case: what they show is found whatever the seed."""
        for entry in entries_of(self.rung, self.register):
            if self.trace_levels:
                for trace in entry.traces:
                    self._follow(validate(trace))
                    self.register_traces += 1
            if "api" in self.levels:
                for call in entry.calls:
                    if call["function"] in self.functions:
                        compare_case(self.classes, self.pairs, api_case(call), self.found)
                        self.register_calls += 1

    def result(self, require_found: bool | Callable[[Divergence], bool] = True) -> RungResult:
        """Judge what was found; ``require_found`` (for every entry, or a
        test per entry): an entry that no case showed fails the rung, else
        it is only reported as not reached."""
        how = " and ".join(f"{n} random {what}" for n, what in ((self.traces, "traces"), (self.cases, "API calls"))
                           if n) or "no examples"
        mine = " and ".join(f"{n} {what}{'s' if n > 1 else ''}" for n, what in (
            (self.register_traces, "trace"), (self.register_calls, "call")) if n)
        if mine:
            how += f", after the register's {mine}"
        required = require_found if callable(require_found) else lambda entry: require_found
        return judge(self.rung, self.found, self.levels, self.register, required, how)


def check_rung(rung: int, examples: int, seed: int = 0, levels: Iterable[str] = LEVELS,
               progress: Callable[[str, int], None] | None = None,
               register: list[Divergence] | None = None, stand_in: type | None = None,
               require_found: bool | Callable[[Divergence], bool] = True) -> RungResult:
    """Replay the rung's register entries' reproducers, then run
    ``examples`` random traces (machine and repr levels) and ``examples``
    random API cases on one rung (``stand_in``: a user's class in place of
    stage N), and judge what was found.  Case ``i`` is built from the seed
    ``seed * 1_000_003 + i`` alone."""
    from .generate import RandomChooser, build_trace
    collector = Collector(rung, levels, register, stand_in)
    collector.add_register()
    for level in ("machine", "api"):
        if level == "machine" and not collector.trace_levels or level == "api" and (
                "api" not in collector.levels or not collector.functions):
            continue
        for i in range(examples):
            chooser = RandomChooser(seed * 1_000_003 + i)
            if level == "api":
                collector.add_case(build_api_case(chooser, collector.functions))
            else:
                collector.add_trace(build_trace(chooser, chooser.integer(5, 40)))
            if progress:
                progress(level, i + 1)
    return collector.result(require_found)


def build_api_case(chooser, functions: list[str]) -> ApiCase:
    """A small random state and a call of one of ``functions`` (valid arguments)."""
    from .generate import random_config
    config = random_config(chooser)
    sizes = [chooser.choice((1, 2, 3, 63, 64, 65, 70)) * TARGET_PAGE_SIZE for _ in range(chooser.integer(1, 2))]
    npages = sum(sizes) // TARGET_PAGE_SIZE
    density = chooser.choice((0, 1, 2, 4))          # out of 4: how many pages are dirty

    def pages() -> list[bool]:
        return [chooser.integer(1, 4) <= density for _ in range(npages)]

    clients = {c: pages() for c in CLIENTS}
    spare = pages()
    tlb_dirty = [p for p in range(npages) if chooser.integer(0, 3) == 0]
    function = chooser.choice(functions)
    # a range inside one block
    block_start, block_size = 0, sizes[0]
    if len(sizes) > 1 and chooser.choice((False, True)):
        block_start, block_size = sizes[0], sizes[1]
    # blocks are placed in allocation order here: the first at 0, the next after it
    # keep a page after an unaligned address inside the block: tlb_protect_code
    # and the range functions round [addr, addr + TARGET_PAGE_SIZE) out to
    # whole pages, and QEMU never asks past the end of RAM
    offset = chooser.choice((0, chooser.integer(0, block_size - TARGET_PAGE_SIZE),
                             chooser.integer(0, block_size // TARGET_PAGE_SIZE - 1) * TARGET_PAGE_SIZE))
    length = chooser.choice((0, 1, TARGET_PAGE_SIZE, chooser.integer(0, block_size - offset)))
    length = min(length, block_size - offset)
    args = {"addr": block_start + offset, "length": length, "client": chooser.choice(CLIENTS),
            "enable": chooser.choice((0, 1))}
    return ApiCase(config, sizes, clients, spare, tlb_dirty, chooser.choice((False, True)), function, args)


def explain_change(rung: int, trace: Trace, register: list[Divergence] | None = None) -> list[Divergence] | None:
    """The register entries that explain how ``trace``'s observables change
    from stage rung-1 to stage rung: those whose override alone changes them
    on stage rung-1.  None when the entries do not explain it all: the
    rung's bridge (stage rung-1 with every override) and stage rung give
    different observables, a difference the register does not know."""
    from stages import stage

    from .bridges import bridge, entry_stage
    from .machine import first_difference, replay
    register = load_register() if register is None else register
    if first_difference(replay(bridge(rung, register), trace), replay(stage(rung), trace)) is not None:
        return None
    before = replay(stage(rung - 1), trace)
    return [e for e in entries_of(rung, register)
            if first_difference(before, replay(entry_stage(e), trace)) is not None]
