"""The checks that compare neighbouring stages, and the divergence register.

Three levels, as the ladder issue defines them:

- machine: a trace is replayed on stage k-1 and stage k; the whole
  ``dirty-trace-result/1`` object (``stage`` aside) must be equal.
- api: a function present in both stages with the same parameters is called
  with the same arguments on the same random dirty state; its result (type
  and value), the pages dirty per client, the TLB and the Xen log must match.
- representation: the raw flag bytes or bitmap words after a trace must be
  equal where both stages use the same representation.

A difference is reduced before it is named: a differing trace is shrunk
(ddmin over its ops, then its config put back to defaults where the
difference survives) and its *signature* is the level, where the reduced
trace first differs (an op's result, by op name, or a state field) and the
config values it needs.  The register (``divergences.toml``) lists, per rung,
the signatures the tests must find, each with a minimal trace and the
explanation.  A rung passes only when the signatures found are exactly the
registered ones.
"""

from __future__ import annotations

import inspect
import itertools
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Callable, Iterable

import numpy as np

from stages import stage
from .machine import Machine, first_difference, replay
from .trace import DEFAULT_CONFIG, TARGET_PAGE_SIZE, Config, Trace, TraceError, decode, validate
from .views import CLIENTS, client_flag, dirty_pages_of, load_dirty, raw_state, representation

LEVELS = ("machine", "api", "repr")


# ---------------------------------------------------------------- machine level
def machine_difference(trace: Trace, a: type, b: type) -> tuple[str, Any, Any] | None:
    return first_difference(replay(a, trace), replay(b, trace))


def repr_difference(trace: Trace, a: type, b: type) -> tuple[str, Any, Any] | None:
    ma, mb = Machine(a, trace.config), Machine(b, trace.config)
    for op in trace.ops:
        ma.run_op(op)
        mb.run_op(op)
    if representation(ma.stage) != representation(mb.stage):
        return None
    ra, rb = raw_state(ma.stage), raw_state(mb.stage)
    if ra == rb:
        return None
    return ("raw", ra.hex(), rb.hex())


def location(path: str, trace: Trace) -> str:
    """Where a difference lies, independent of op indices and list positions."""
    if path.startswith("results[") or path.startswith("results"):
        index = int(path[path.index("[") + 1:path.index("]")]) if "[" in path else None
        return "results:" + (trace.ops[index]["op"] if index is not None else "length")
    return ".".join(path.split(".")[:2])


def _valid(config: Config, ops: list[dict]) -> Trace | None:
    try:
        return validate(Trace(config, ops).as_dict())
    except TraceError:
        return None


def minimize(trace: Trace, differs: Callable[[Trace], bool]) -> Trace:
    """ddmin over the ops (keeping only valid candidates), then config defaults."""
    ops = list(trace.ops)
    config = trace.config
    n = 2
    while len(ops) >= 2:
        chunk = max(1, len(ops) // n)
        reduced = False
        for start in range(0, len(ops), chunk):
            candidate = ops[:start] + ops[start + chunk:]
            t = _valid(config, candidate)
            if t is not None and differs(t):
                ops, n, reduced = candidate, max(n - 1, 2), True
                break
        if not reduced:
            if chunk == 1:
                break
            n = min(len(ops), n * 2)
    for key, default in DEFAULT_CONFIG.items():
        if getattr(config, key) != default:
            candidate_config = Config(**{**config.as_dict(), key: default})
            t = _valid(candidate_config, ops)
            if t is not None and differs(t):
                config = candidate_config
    return validate(Trace(config, ops).as_dict())


def config_needs(trace: Trace) -> str:
    return ",".join(f"{k}={str(v).lower()}" for k, v in trace.config.as_dict().items()
                    if v != DEFAULT_CONFIG[k])


@dataclass(frozen=True)
class Finding:
    rung: int
    level: str
    signature: str
    trace: Trace | None = field(default=None, compare=False, hash=False)
    detail: str = field(default="", compare=False, hash=False)


def trace_findings(rung: int, level: str, trace: Trace, skip: Callable[[str], bool] = lambda k: False
                   ) -> list[Finding]:
    """Compare stage rung-1 and rung on ``trace`` at the machine or repr level;
    reduce a difference (unless ``skip`` says its place was seen enough) to a
    minimal trace and its signature: where the minimal trace first differs,
    and the config values it needs.  (A list: empty when the stages agree.)"""
    a, b = stage(rung - 1), stage(rung)
    compare = machine_difference if level == "machine" else repr_difference
    diff = compare(trace, a, b)
    if diff is None:
        return []
    where = location(diff[0], trace) if level == "machine" else "raw"
    if skip(f"{where}|{config_needs(trace)}"):
        return []
    small = minimize(trace, lambda t: compare(t, a, b) is not None)
    path, va, vb = compare(small, a, b)
    where = location(path, small) if level == "machine" else "raw"
    needs = config_needs(small)
    signature = f"{level}:{where}" + (f":{needs}" if needs else "")
    return [Finding(rung, level, signature, small, f"{path}: {va!r} -> {vb!r}")]


def trace_finding(rung: int, level: str, trace: Trace) -> Finding | None:
    """The finding of :func:`trace_findings`, or None when the stages agree."""
    found = trace_findings(rung, level, trace)
    return found[0] if found else None


class Budget:
    """At most ``per_key`` reductions per (place, config) pair in one run."""

    def __init__(self, per_key: int = 20):
        self.per_key, self.seen = per_key, {}

    def __call__(self, key: str) -> bool:
        self.seen[key] = self.seen.get(key, 0) + 1
        return self.seen[key] > self.per_key


# ---------------------------------------------------------------- API level
# parameter name -> what the test passes for it; two functions are compared
# when their parameters ask for the same things in the same order (a flag
# mask and a client number both name "who", converted for each stage)
API_PARAMS = {"addr": "addr", "ram_addr": "addr", "addr1": "addr", "start": "addr",
              "length": "length", "size": "length", "end": "end",
              "dirty_flag": "who", "dirty_flags": "who", "client": "who", "enable": "enable"}


def api_functions(a: type, b: type) -> list[str]:
    """Functions of both stages, taking only plain arguments, with equal parameters."""
    names = []
    for name in sorted(set(dir(a)) & set(dir(b))):
        if name.startswith("_") or not (hasattr(a, name) and hasattr(b, name)):
            continue
        fa, fb = getattr(a, name), getattr(b, name)
        if not (callable(fa) and callable(fb)) or isinstance(fa, type):
            continue
        pa = list(inspect.signature(fa).parameters)
        pb = list(inspect.signature(fb).parameters)
        if pa[:1] != ["self"] or pb[:1] != ["self"] or len(pa) == 1:
            continue
        if not set(pa[1:]) <= set(API_PARAMS) or not set(pb[1:]) <= set(API_PARAMS):
            continue
        if [API_PARAMS[p] for p in pa[1:]] != [API_PARAMS[p] for p in pb[1:]]:
            continue
        if name.startswith("migration_") or name == "qemu_ram_alloc_from_ptr":
            continue        # these need a trace around them: machine level
        names.append(name)
    return names


@dataclass
class ApiCase:
    """A random dirty state and one call: enough to replay it on any stage."""
    config: Config
    sizes: list[int]                      # block sizes, allocated in this order
    clients: dict[str, list[bool]]        # pages dirty per client
    spare: list[bool]                     # pages whose unused flag bits are set (byte stages)
    tlb_dirty: list[int]                  # pages with a dirty TLB entry
    in_migration: bool
    function: str
    args: dict[str, Any]                  # addr, length, client (by name), enable

    def describe(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.args.items())
        dirty = {c: [i for i, d in enumerate(p) if d] for c, p in self.clients.items()}
        return (f"{self.function}({args}) on blocks {self.sizes}, dirty {dirty}, "
                f"spare bits {[i for i, s in enumerate(self.spare) if s]}, "
                f"dirty TLB {self.tlb_dirty}, in_migration {self.in_migration}, {self.config.as_dict()}")


def _call_args(st, fn, case: ApiCase) -> list[Any]:
    out = []
    for p in list(inspect.signature(fn).parameters)[1:]:
        if p in ("addr", "ram_addr", "addr1", "start"):
            out.append(case.args["addr"])
        elif p in ("length", "size"):
            out.append(case.args["length"])
        elif p == "end":
            out.append(case.args["addr"] + case.args["length"])
        elif p in ("dirty_flag", "dirty_flags"):
            out.append(client_flag(st, case.args["client"]))
        elif p == "client":
            out.append(getattr(st, "DIRTY_MEMORY_" + case.args["client"].upper()))
        elif p == "enable":
            out.append(case.args["enable"])
    return out


def run_api_case(cls: type, case: ApiCase) -> dict[str, Any]:
    machine = Machine(cls, case.config)
    st = machine.stage
    for size in case.sizes:
        st.qemu_ram_alloc_from_ptr(size)
    machine.xen_log.clear()
    load_dirty(st, {c: np.array(p, dtype=bool) for c, p in case.clients.items()},
               np.array(case.spare, dtype=bool))
    for page in range(machine.last_ram_offset() // TARGET_PAGE_SIZE):
        machine.tlb[page] = page not in case.tlb_dirty
    st.in_migration = case.in_migration
    fn = getattr(cls, case.function)
    try:
        result = getattr(st, case.function)(*_call_args(st, fn, case))
        outcome = [type(result).__name__, result if not isinstance(result, np.generic) else result.item()]
    except (AssertionError, IndexError, ValueError) as exc:
        outcome = ["raises", type(exc).__name__]
    npages = machine.last_ram_offset() // TARGET_PAGE_SIZE
    return {
        "result": outcome,
        "dirty": {c: np.flatnonzero(dirty_pages_of(st, c, npages)).tolist() for c in CLIENTS},
        "tlb_notdirty": sorted(p for p, nd in machine.tlb.items() if nd),
        "tb_pages": sorted(machine.tb_count),
        "xen": machine.xen_log,
        "in_migration": bool(st.in_migration),
    }


def api_finding(rung: int, case: ApiCase) -> Finding | None:
    a, b = stage(rung - 1), stage(rung)
    ra, rb = run_api_case(a, case), run_api_case(b, case)
    diff = first_difference(ra, rb)
    if diff is None:
        return None
    path = diff[0].split(".")[0]
    return Finding(rung, "api", f"api:{case.function}:{path}", None,
                   f"{case.describe()}: {diff[0]}: {diff[1]!r} -> {diff[2]!r}")


# ---------------------------------------------------------------- the register
@dataclass
class Divergence:
    id: str
    rung: int
    signatures: list[str]
    what: str
    explanation: str
    status: str                     # intended | fix | bug | benign
    fixed_upstream: str = ""
    trace: dict | None = None       # minimal trace (machine and repr levels)
    call: dict | None = None        # minimal call (api level), see api_case()

    @property
    def levels(self) -> set[str]:
        return {sig.split(":")[0] for sig in self.signatures}


def api_case(call: dict) -> ApiCase:
    """The ApiCase of a register entry's ``call``."""
    args = {"enable": 0, **call["args"]}
    return ApiCase(Config(**{**DEFAULT_CONFIG, **call.get("config", {})}), call["sizes"], call["clients"],
                   call["spare"], call.get("tlb_dirty", []), call.get("in_migration", False),
                   call["function"], args)


def load_register() -> list[Divergence]:
    text = resources.files(__package__).joinpath("divergences.toml").read_text(encoding="utf-8")
    out = []
    for entry in tomllib.loads(text).get("divergence", []):
        out.append(Divergence(
            id=entry["id"], rung=entry["rung"], signatures=entry["signatures"], what=entry["what"],
            explanation=entry["explanation"], status=entry["status"],
            fixed_upstream=entry.get("fixed_upstream", ""),
            trace=decode(entry["trace"]) if "trace" in entry else None,
            call=decode(entry["call"]) if "call" in entry else None))
    return out


def explain_change(rung: int, path: str, trace: Trace, register: list[Divergence]) -> Divergence | None:
    """The register entry of ``rung`` that explains a machine-level change
    first seen at ``path`` (as :func:`dirty_ladder.machine.first_difference`
    names it) when ``trace`` runs on stages rung-1 and rung; None when no
    entry does.

    The trace is not reduced first, so its config may hold values the
    difference does not need: an entry matches when one of its signatures
    is ``machine:<location>`` followed by the config values of some subset
    of the trace's non-default ones (the most specific subset first), as
    :class:`Finding` signatures are written.
    """
    where = location(path, trace)
    given = {k: v for k, v in trace.config.as_dict().items() if v != DEFAULT_CONFIG[k]}
    candidates = []
    for size in range(len(given), -1, -1):
        for keys in itertools.combinations(given, size):
            config = Config(**{**DEFAULT_CONFIG, **{k: given[k] for k in keys}})
            needs = config_needs(Trace(config, []))
            candidates.append(f"machine:{where}" + (f":{needs}" if needs else ""))
    entries = [d for d in register if d.rung == rung]
    for signature in candidates:
        for entry in entries:
            if signature in entry.signatures:
                return entry
    return None


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


def explore(rung: int, level: str, examples: int, seed: int = 0,
            progress: Callable[[int], None] | None = None) -> dict[str, Finding]:
    """Run ``examples`` random cases on one rung and level; signatures found.

    Each place a trace differs is reduced; to keep the cost bounded, at most
    two traces are reduced per (place, config) pair.
    """
    from .generate import RandomChooser, build_trace
    found: dict[str, Finding] = {}
    budget = Budget()
    a, b = stage(rung - 1), stage(rung)
    functions = api_functions(a, b) if level == "api" else []
    for i in range(examples):
        chooser = RandomChooser(seed * 1_000_003 + i)
        if level == "api":
            if not functions:
                break
            f = api_finding(rung, build_api_case(chooser, functions))
        else:
            trace = build_trace(chooser, chooser.integer(5, 40))
            for f in trace_findings(rung, level, trace, budget):
                found.setdefault(f.signature, f)
            f = None
        if f is not None and f.signature not in found:
            found[f.signature] = f
        if progress:
            progress(i + 1)
    return found


PROFILES = {"ci": 1000, "deep": 5000}     # examples per rung and level


@dataclass
class RungReport:
    rung: int
    examples: int
    found: dict[str, Finding]                 # signature -> finding, all levels
    new: list[Finding]                        # found, not in the register
    missing: list[Divergence]                 # registered, not found this run
    explained: list[Divergence]               # registered and found

    @property
    def status(self) -> str:
        if self.new:
            return "NEW DIFFERENCE"
        if self.missing:
            return "registered difference not found"
        return "diverges as registered" if self.explained else "same"


def judge(rung: int, found: dict[str, Finding], levels: Iterable[str] = LEVELS) -> tuple[list, list, list]:
    """(new findings, registered entries not found, registered entries found).

    An entry is required at every level its signatures name among ``levels``."""
    levels = set(levels)
    entries = [d for d in load_register() if d.rung == rung and d.levels & levels]
    known = {sig for d in entries for sig in d.signatures}
    new = [f for sig, f in found.items() if sig not in known]
    # an entry is missing when none of its signatures at the levels that ran was found
    def required(d: Divergence) -> set[str]:
        return {s for s in d.signatures if s.split(":")[0] in levels}

    missing = [d for d in entries if required(d) and not required(d) & set(found)]
    explained = [d for d in entries if d not in missing]
    return new, missing, explained


def check_rung(rung: int, examples: int, seed: int = 0, levels: Iterable[str] = LEVELS,
               progress: Callable[[str, int], None] | None = None) -> RungReport:
    """Explore one rung at each level and judge what was found against the register."""
    found: dict[str, Finding] = {}
    for level in levels:
        cb = (lambda i, level=level: progress(level, i)) if progress else None
        found.update(explore(rung, level, examples, seed, cb))
    new, missing, explained = judge(rung, found, levels)
    return RungReport(rung, examples, found, new, missing, explained)
