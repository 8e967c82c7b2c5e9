"""Running stages side by side and noting where they differ.

Both checks of a rung use this module: the exhaustive one
(:mod:`.explore`, every trace of a scope) and the random one (:mod:`.rungs`,
generated traces).  A rung is checked on several stages at once
(:func:`rung_classes`): stage N-1, stage N-1 with each register entry's
override alone, the bridge (stage N-1 with all of them) and stage N.  Two
kinds of pair are compared:

- (bridge, stage N) must be exactly equal: any difference is new;
- (stage N-1, stage N-1 + one override) must differ where that entry says,
  and nowhere else.

Three levels:

- machine: after every op of a trace, the op's result, what it told Xen and
  the observables of ``dirty-trace-result/1``'s state (:func:`observe`);
- repr: where both stages keep the same representation, the raw flag bytes
  or bitmap words of the dirty state;
- api: a function both stages have with the same parameters, called on the
  same dirty state: its result (type and value, or the exception it raised)
  and what the machine shows after.

A difference is noted where it *first* shows: a machine-level place only
when the pair's observables were equal before the op, a raw one only when
nothing differed before it, so what later ops read of an earlier difference
is not noted again (:func:`step`).  Each (pair, place) keeps a shortest trace.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

from .machine import Machine, clone
from .register import Divergence, entries_of, signature_matches
from .trace import CALL_FORMAT, CLIENTS, DEFAULT_CONFIG, TARGET_PAGE_SIZE, Config, Trace
from .views import client_flag, dirty_pages_of, load_dirty, raw_state, representation

LEVELS = ("machine", "repr", "api")


# ------------------------------------------------------------------ the stages of a rung
def rung_classes(rung: int, register: list[Divergence] | None = None, stand_in: type | None = None
                 ) -> tuple[list[type], tuple[int, int], list[tuple[int, int]]]:
    """The stages a rung check runs side by side: stage N-1, stage N-1 with
    each entry's override alone, the bridge (all of them, when there are
    several) and stage N (or ``stand_in``, a user's class in its place); the
    pair that must be exactly equal (bridge, stage N) and one pair per entry
    (stage N-1, stage N-1 + its override)."""
    from stages import stage

    from .bridges import bridge, entry_stage
    entries = entries_of(rung, register)
    classes = [stage(rung - 1)] + [entry_stage(e) for e in entries]
    if len(entries) > 1:
        classes.append(bridge(rung, register))
    classes.append(stand_in or stage(rung))
    exact = (len(classes) - 2 if entries else 0, len(classes) - 1)
    return classes, exact, [(0, k) for k in range(1, len(entries) + 1)]


# ------------------------------------------------------------------ differences
@dataclass
class Difference:
    """One place where a pair of stages differs, with a shortest trace or call."""
    pair: tuple[int, int]
    level: str
    place: str                          # results:OP, state.FIELD, raw, or api:FUNCTION:FIELD
    trace: Trace | None                 # machine and repr levels
    detail: str
    configs: set = field(default_factory=set)   # the configs it shows in, as sorted item tuples
    call: dict | None = None            # api level: the call that shows it (register format)

    @property
    def signature(self) -> str:
        return self.place if self.level == "api" else f"{self.level}:{self.place}"

    @property
    def config_dicts(self) -> list[dict]:
        return [dict(c) for c in self.configs]

    def size(self) -> int:
        """How long its reproducer is: ops of the trace (or before the call)."""
        if self.trace is not None:
            return len(self.trace.ops)
        return len((self.call or {}).get("trace", ()))


def config_tag(config: Config) -> tuple:
    return tuple(sorted(config.as_dict().items()))


def note(found: dict, pair, level: str, place: str, config: Config, detail: Callable[[], str],
         trace: Callable[[], Trace] | None = None, call: Callable[[], dict] | None = None,
         size: int = 0) -> None:
    """Record a difference in ``found`` ((pair, signature) -> Difference),
    keeping the shortest reproducer; ``detail``, ``trace`` and ``call`` are
    only built when kept."""
    d = Difference(pair, level, place, None, "")
    k = (pair, d.signature)
    old = found.get(k)
    if old is None or size < old.size():
        d.trace = trace() if trace else None
        d.call = call() if call else None
        d.detail = detail()
        if old is not None:
            d.configs = old.configs
        found[k] = d
    found[k].configs.add(config_tag(config))


# ------------------------------------------------------------------ one step of a trace
# The fields of the result state, in the order observe() gives them.
OBSERVED = ("blocks", "dirty", "tlb", "tb_pages", "kvm_log", "in_migration", "migration")


def observe(m: Machine) -> tuple:
    """A cheap value per field of OBSERVED, equal for two machines exactly
    when that field of their ``dirty-trace-result/1`` states is equal (the
    Xen log is compared op by op instead)."""
    st = m.stage
    npages = m.last_ram_offset() >> 12
    kvm = []
    for block in m.ram_list.blocks:
        log = m.kvm_log.get(block.offset)
        if log is not None and log.any():
            kvm.append((block.offset, log.tobytes()))
    migration = None
    if m.migration_started:
        pages = m.migration_ram_pages
        bits = np.unpackbits(st.migration_bitmap.astype("<u8", copy=False).view(np.uint8), bitorder="little")
        migration = (np.packbits(bits[:pages]).tobytes(), int(st.migration_dirty_pages))
    return (
        tuple((b.offset, b.length) for b in m.ram_list.blocks),
        tuple(np.packbits(dirty_pages_of(st, c, npages)).tobytes() for c in CLIENTS),
        tuple(sorted(m.tlb.items())),
        tuple(sorted(p for p, n in m.tb_count.items() if n)),
        tuple(kvm),
        bool(st.in_migration),
        migration,
    )


def view(m: Machine, cache: dict | None = None, k: tuple | None = None) -> tuple:
    """(observe(m), representation, raw dirty state); with a cache, computed
    once per stage class and state key ``k``."""
    if cache is None:
        return observe(m), representation(m.stage), raw_state(m.stage)
    ck = (type(m.stage), k)
    if ck not in cache:
        cache[ck] = (observe(m), representation(m.stage), raw_state(m.stage))
    return cache[ck]


def run_op(m: Machine, op: dict) -> tuple[Any, list]:
    """The op's result, or ("raises", exception type) when the stage's code
    fails, and what the op told Xen (taken off the machine's log)."""
    try:
        result = m.run_op(op)
    except Exception as exc:               # noqa: BLE001 -- a stage's assertion is an outcome too
        result = ("raises", type(exc).__name__)
    told, m.xen_log[:] = list(m.xen_log), []
    return result, told


def raised(outcomes) -> bool:
    return any(type(result) is tuple for result, _ in outcomes)


def alike(pairs: Iterable[tuple[int, int]], views: list[tuple]) -> dict:
    """Per pair: (observables equal, observables and raw states equal)."""
    out = {}
    for i, j in pairs:
        observed = views[i][0] == views[j][0]
        out[(i, j)] = (observed, observed and views[i][2] == views[j][2])
    return out


def step(found: dict, before: dict, machines: list[Machine], outcomes, views, ops: tuple, config: Config,
         levels: Iterable[str]) -> None:
    """Note every place where a pair differs after the last op of ``ops``:
    its result, what it told Xen and, unless ``views`` is None (the op
    changed nothing, or a stage raised and the state is not looked at), each
    observed field and the raw dirty state.  ``before`` is :func:`alike` of
    the state before the op: a difference is noted where it first shows."""
    trace = lambda: Trace(config, [dict(o) for o in ops])      # noqa: E731
    for (i, j), (observed_alike, raw_alike) in before.items():
        (ri, xi), (rj, xj) = outcomes[i], outcomes[j]
        if "machine" in levels and observed_alike:
            if ri != rj:
                note(found, (i, j), "machine", f"results:{ops[-1]['op']}", config,
                     lambda: f"result of {ops[-1]['op']}: {ri!r} -> {rj!r}", trace, size=len(ops))
            if xi != xj:
                note(found, (i, j), "machine", "state.xen", config, lambda: f"Xen told {xi} -> {xj}", trace,
                     size=len(ops))
        if views is None:
            continue
        (oi, kind_i, raw_i), (oj, kind_j, raw_j) = views[i], views[j]
        if "machine" in levels and observed_alike and oi != oj:
            for name, a, b in zip(OBSERVED, oi, oj):
                if a != b:
                    note(found, (i, j), "machine", f"state.{name}", config,
                         lambda name=name: _state_detail(machines[i], machines[j], name), trace, size=len(ops))
        if "repr" in levels and raw_alike and kind_i == kind_j and raw_i != raw_j:
            note(found, (i, j), "repr", "raw", config, lambda: f"raw: {raw_i.hex()} -> {raw_j.hex()}", trace,
                 size=len(ops))


def _state_detail(a: Machine, b: Machine, name: str) -> str:
    return f"state.{name}: {a.state()[name]!r} -> {b.state()[name]!r}"


def follow(classes: list[type], pairs: list[tuple[int, int]], trace: Trace,
           levels: Iterable[str] = ("machine", "repr"), found: dict | None = None) -> dict:
    """Run one trace on ``classes`` side by side and note, op by op, where
    each pair first differs; ((pair, signature) -> Difference)."""
    found = {} if found is None else found
    machines = [Machine(cls, trace.config) for cls in classes]
    before = {pair: (True, True) for pair in pairs}
    for n, op in enumerate(trace.ops):
        outcomes = [run_op(m, op) for m in machines]
        if raised(outcomes):
            step(found, before, machines, outcomes, None, tuple(trace.ops[:n + 1]), trace.config, levels)
            break
        views = [view(m) for m in machines]
        step(found, before, machines, outcomes, views, tuple(trace.ops[:n + 1]), trace.config, levels)
        before = alike(pairs, views)
    return found


# ------------------------------------------------------------------ the API level
# parameter name -> what the check passes for it (a flag mask and a client
# number both name "who", converted for each stage); two functions are
# compared when their parameters ask for the same things, a range given by
# its end counting as one given by its length (see api_functions)
API_PARAMS = {"addr": "addr", "ram_addr": "addr", "addr1": "addr", "start": "addr",
              "length": "length", "size": "length", "end": "end",
              "dirty_flag": "who", "dirty_flags": "who", "client": "who", "enable": "enable"}


def _range_kinds(params: list[str]) -> set[str]:
    """What a parameter list asks for, an end counting as a length: the
    same abstract call (addr, length) serves ``(start, end)``, ``(start,
    length)`` and ``(start, end, length)`` alike, as rung 30's callers
    passed the same range both ways."""
    return {"length" if API_PARAMS[p] == "end" else API_PARAMS[p] for p in params}


def api_functions(a: type, b: type) -> list[str]:
    """Functions of both stages, taking only plain arguments, with the same
    parameters, or parameters that differ only in giving a range by its end
    or by its length (rung 30's reset_dirty and tlb_reset_dirty_range_all)."""
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
        if [API_PARAMS[p] for p in pa[1:]] != [API_PARAMS[p] for p in pb[1:]] \
                and _range_kinds(pa[1:]) != _range_kinds(pb[1:]):
            continue
        if name.startswith("migration_") or name == "qemu_ram_alloc_from_ptr":
            continue        # these need a trace around them: machine level
        names.append(name)
    return names


def api_params(cls: type, function: str) -> set[str]:
    """What a function asks for: a subset of addr, length, end, who, enable."""
    return {API_PARAMS[p] for p in list(inspect.signature(getattr(cls, function)).parameters)[1:]}


@dataclass
class ApiCase:
    """A dirty state and one call: enough to replay it on any stage."""
    config: Config
    sizes: list[int]                      # block sizes, allocated in this order
    clients: dict[str, list[bool]]        # pages dirty per client
    spare: list[bool]                     # pages whose unused flag bits are set (byte stages)
    tlb_dirty: list[int]                  # pages with a dirty TLB entry
    in_migration: bool
    function: str
    args: dict[str, Any]                  # addr, length, client (by name), enable

    def describe(self, cls: type) -> str:
        """The call as ``cls``'s function takes it, and the state it is made on."""
        dirty = {c: [i for i, d in enumerate(p) if d] for c, p in self.clients.items()}
        return (f"{call_text(cls, self.function, self.args)} on blocks {self.sizes}, dirty {dirty}, "
                f"spare bits {[i for i, s in enumerate(self.spare) if s]}, "
                f"dirty TLB {self.tlb_dirty}, in_migration {self.in_migration}, {self.config.as_dict()}")

    def as_call(self) -> dict[str, Any]:
        """The register's ``call`` form of this case (see :func:`api_case`)."""
        return {"function": self.function, "args": dict(self.args), "config": self.config.as_dict(),
                "sizes": list(self.sizes), "clients": {c: list(p) for c, p in self.clients.items()},
                "spare": list(self.spare), "tlb_dirty": list(self.tlb_dirty), "in_migration": self.in_migration}


def api_case(call: dict) -> ApiCase:
    """The ApiCase of a register entry's ``call``."""
    args = {"enable": 0, **call["args"]}
    return ApiCase(Config(**{**DEFAULT_CONFIG, **call.get("config", {})}), call["sizes"], call["clients"],
                   call["spare"], call.get("tlb_dirty", []), call.get("in_migration", False),
                   call["function"], args)


def _arguments(stage, fn, args: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """Each parameter of ``fn`` (after self) that the check fills: its name,
    its kind (see API_PARAMS) and the value passed at ``stage`` (a class or
    an instance) for the abstract ``args`` (addr, length, client by name,
    enable): a client becomes that stage's flag mask or client number,
    ``end`` is ``addr + length``."""
    out = []
    for p in list(inspect.signature(fn).parameters)[1:]:
        kind = API_PARAMS.get(p)
        if kind == "addr":
            out.append((p, kind, args["addr"]))
        elif kind == "length":
            out.append((p, kind, args["length"]))
        elif kind == "end":
            out.append((p, kind, args["addr"] + args["length"]))
        elif kind == "who" and p == "client":
            out.append((p, kind, getattr(stage, "DIRTY_MEMORY_" + args["client"].upper())))
        elif kind == "who":
            out.append((p, kind, client_flag(stage, args["client"])))
        elif kind == "enable":
            out.append((p, kind, args["enable"]))
    return out


def call_args(st, fn, args: dict[str, Any]) -> list[Any]:
    """The arguments of ``fn`` at stage ``st`` for the abstract ``args``."""
    return [value for _, _, value in _arguments(st, fn, args)]


def call_text(cls: type, function: str, args: dict[str, Any]) -> str:
    """The call :func:`call_args` makes, written with the function's own
    parameter names: ``cpu_physical_memory_set_dirty_flags(addr=0,
    dirty_flags=VGA_DIRTY_FLAG)``, ``..._reset_dirty(start=0, end=4096,
    client=DIRTY_MEMORY_CODE)``; a client or a flag mask by its name where
    the stage has one, else as the value passed."""
    parts = []
    for p, kind, value in _arguments(cls, getattr(cls, function), args):
        if kind == "who":
            name = ("DIRTY_MEMORY_" + args["client"].upper() if p == "client"
                    else args["client"].upper() + "_DIRTY_FLAG")
            parts.append(f"{p}={name if hasattr(cls, name) else hex(value)}")
        else:
            parts.append(f"{p}={value}")
    return f"{function}({', '.join(parts)})"


def api_machine(cls: type, case: ApiCase) -> Machine:
    """A machine whose stage holds the dirty state of ``case``: its blocks
    allocated in order, then each page's flags, TLB entry and in_migration
    written directly."""
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
    return machine


def api_call(machine: Machine, function: str, args: dict[str, Any]) -> dict[str, Any]:
    """Call one function of the machine's stage; its outcome (result type
    and value, or the exception it raised) and what the machine shows after."""
    st = machine.stage
    fn = getattr(type(st), function)
    try:
        result = getattr(st, function)(*call_args(st, fn, args))
        outcome = [type(result).__name__, result if not isinstance(result, np.generic) else result.item()]
    except Exception as exc:               # noqa: BLE001 -- misuse refused, or a stage's own failure:
        outcome = ["raises", type(exc).__name__]   # an outcome to compare, like a result
    npages = machine.last_ram_offset() // TARGET_PAGE_SIZE
    return {
        "result": outcome,
        "dirty": {c: np.flatnonzero(dirty_pages_of(st, c, npages)).tolist() for c in CLIENTS},
        "tlb_notdirty": sorted(p for p, nd in machine.tlb.items() if nd),
        "tb_pages": sorted(p for p, n in machine.tb_count.items() if n),
        "xen": machine.xen_log,
        "in_migration": bool(st.in_migration),
    }


def run_api_case(cls: type, case: ApiCase) -> dict[str, Any]:
    return api_call(api_machine(cls, case), case.function, case.args)


def compare_calls(found: dict, classes: list[type], pairs, machines: list[Machine], functions: dict,
                  args_of: Callable[[str, set], Iterable[dict]], where: Callable[[str, dict], dict],
                  config: Config) -> int:
    """Call, on copies of ``machines`` (one per class, all in the same
    state), every function of ``functions`` (pair -> names) with every
    argument tuple ``args_of(name, params)`` gives; note each field of the
    outcome that differs within a pair, as ``api:FUNCTION:FIELD``, with the
    call ``where(name, args)`` describes.  Returns how many calls were made."""
    calls = 0
    for (i, j), names in functions.items():
        for name in names:
            for args in args_of(name, api_params(classes[i], name)):
                calls += 1
                oi = api_call(clone(machines[i]), name, args)
                oj = api_call(clone(machines[j]), name, args)
                if oi == oj:
                    continue
                for field_, a in oi.items():
                    if a != oj[field_]:
                        call = where(name, args)
                        note(found, (i, j), "api", f"api:{name}:{field_}", config,
                             lambda name=name, args=args, field_=field_, a=a, cls=classes[j]:
                                 f"{call_text(cls, name, args)}: {field_}: {a!r} -> {oj[field_]!r}",
                             call=lambda call=call: call, size=len(call.get("trace", ())))
    return calls


def compare_case(classes: list[type], pairs, case: ApiCase, found: dict | None = None) -> dict:
    """One API case (a loaded state and a call) on ``classes``; the pairs'
    differences, noted as by :func:`compare_calls`."""
    found = {} if found is None else found
    functions = {pair: [case.function] for pair in pairs
                 if case.function in api_functions(classes[pair[0]], classes[pair[1]])}
    machines = [api_machine(cls, case) for cls in classes]
    compare_calls(found, classes, pairs, machines, functions, lambda name, params: [case.args],
                  lambda name, args: case.as_call(), case.config)
    return found


# ------------------------------------------------------------------ judging a rung
@dataclass
class EntryResult:
    entry: Divergence
    found: list[Difference]                 # where stage N-1 and N-1 + its override differ
    unexplained: list[Difference]           # ... at a place its signatures do not name
    missing: list[str]                      # signatures it declares that were not found
    required: bool                          # was it required to be found here?


@dataclass
class RungResult:
    rung: int
    how: str                                # "scope NAME" or "N random examples"
    new: list[Difference]                   # bridge N vs stage N: every one is a new difference
    entries: list[EntryResult]
    runs: list = field(default_factory=list)    # what the exploration saw (explore.Run), if exhaustive
    seconds: float = 0.0                    # how long the check took

    @property
    def status(self) -> str:
        if self.new:
            return "NEW DIFFERENCE"
        if any(e.unexplained for e in self.entries):
            return "override differs beyond its entry"
        if any(e.missing and e.required for e in self.entries):
            return "registered difference not found"
        return "diverges as registered" if self.entries else "same"

    @property
    def ok(self) -> bool:
        return self.status in ("same", "diverges as registered")


def judge(rung: int, found: dict, levels: Iterable[str], register: list[Divergence] | None = None,
          required: Callable[[Divergence], bool] = lambda entry: True, how: str = "") -> RungResult:
    """Sort what a check found at a rung: every difference of the exact pair
    (bridge, stage N) is new; each entry's override must differ from stage
    N-1 only where its signatures say, and (where ``required``) at every one
    of them that the levels checked."""
    levels = tuple(levels)
    entries = entries_of(rung, register)
    _, exact, _ = rung_classes(rung, register)
    differences = list(found.values())
    new = [d for d in differences if d.pair == exact]
    results = []
    for k, entry in enumerate(entries, 1):
        mine = [d for d in differences if d.pair == (0, k)]
        unexplained = [d for d in mine
                       if not any(signature_matches(s, d.level, d.place, d.config_dicts) for s in entry.signatures)]
        wanted = [s for s in entry.signatures if s.split(":")[0] in levels]
        missing = [s for s in wanted
                   if not any(signature_matches(s, d.level, d.place, d.config_dicts) for d in mine)]
        results.append(EntryResult(entry, mine, unexplained, missing, required(entry)))
    return RungResult(rung, how, new, results)


def describe(d: Difference) -> str:
    """A difference in one line, with its reproducer."""
    if d.trace is not None:
        where = f"shortest trace: {json.dumps(d.trace.as_dict())}"
    else:
        where = f"call: {json.dumps(call_file(d.call))}"
    return f"{d.signature}: {d.detail}\n    {where}"


def problems(result: RungResult) -> list[str]:
    """What keeps a rung from passing, one item per difference or entry."""
    out = [f"NEW DIFFERENCE {describe(d)}" for d in result.new]
    for e in result.entries:
        out += [f"{e.entry.id}: its override also differs at {describe(d)}" for d in e.unexplained]
        if e.required:
            out += [f"{e.entry.id}: registered {s} was not found ({result.how})" for s in e.missing]
    return out


# ------------------------------------------------------------------ dirty-call/1 files
CALL_ARGS = {"addr": int, "length": int, "client": str, "enable": int}
STATE_KEYS = ("sizes", "clients", "spare", "tlb_dirty", "in_migration")


def parse_call(raw: Any) -> dict[str, Any]:
    """A decoded ``dirty-call/1`` object as a register-style call, checked
    (one-line TraceError otherwise): a config, a starting state (``state``,
    loaded directly, or ``trace``, a list of ops replayed first) and the call
    (``function`` and ``args``: addr, length, client, enable)."""
    from .trace import FORMAT, TraceError, _config, validate
    if not isinstance(raw, dict) or raw.get("format") != CALL_FORMAT:
        raise TraceError("not a dirty-call/1 object")
    unknown = sorted(set(raw) - {"format", "config", "state", "trace", "call"})
    if unknown:
        raise TraceError(f"unknown top-level field {unknown[0]!r}")
    config = _config(raw.get("config"))
    call = raw.get("call")
    if not isinstance(call, dict) or not isinstance(call.get("function"), str) \
            or not isinstance(call.get("args"), dict):
        raise TraceError("'call' must be an object with a 'function' name and 'args'")
    for name, value in call["args"].items():
        kind = CALL_ARGS.get(name)
        if kind is None:
            raise TraceError(f"call: unknown argument {name!r} (arguments are {', '.join(CALL_ARGS)})")
        if not isinstance(value, kind) or isinstance(value, bool) or kind is int and value < 0:
            raise TraceError(f"call: argument {name!r} must be a {'non-negative integer' if kind is int else 'string'}")
    if "client" in call["args"] and call["args"]["client"] not in CLIENTS:
        raise TraceError(f"call: client must be one of {', '.join(CLIENTS)}")
    out = {"function": call["function"], "args": {"addr": 0, "length": 0, "client": "vga", "enable": 0,
                                                  **call["args"]},
           "config": config.as_dict()}
    if ("state" in raw) == ("trace" in raw):
        raise TraceError("give either a 'state' or a 'trace' to start from")
    if "trace" in raw:
        out["trace"] = validate({"format": FORMAT, "config": config.as_dict(), "ops": raw["trace"]}).ops
        return out
    state = raw["state"]
    if not isinstance(state, dict) or sorted(state) != sorted(STATE_KEYS):
        raise TraceError(f"'state' must have exactly {', '.join(STATE_KEYS)}")
    sizes = state["sizes"]
    if not isinstance(sizes, list) or not sizes or not all(
            isinstance(x, int) and not isinstance(x, bool) and x > 0 and x % TARGET_PAGE_SIZE == 0 for x in sizes):
        raise TraceError("state.sizes must be a list of block sizes, whole pages")
    npages = sum(sizes) // TARGET_PAGE_SIZE
    if npages > 4096:
        raise TraceError("state.sizes: a call's state holds at most 4096 pages")

    def flags(value, what):
        if not isinstance(value, list) or len(value) != npages or not all(isinstance(x, bool) for x in value):
            raise TraceError(f"{what} must be a list of {npages} true/false, one per page")
        return value
    clients = state["clients"]
    if not isinstance(clients, dict) or sorted(clients) != sorted(CLIENTS):
        raise TraceError(f"state.clients must have {', '.join(CLIENTS)}")
    out.update({"sizes": sizes, "clients": {c: flags(clients[c], f"state.clients.{c}") for c in CLIENTS},
                "spare": flags(state["spare"], "state.spare")})
    tlb = state["tlb_dirty"]
    if not isinstance(tlb, list) or not all(isinstance(p, int) and not isinstance(p, bool) and 0 <= p < npages
                                            for p in tlb):
        raise TraceError(f"state.tlb_dirty must be a list of page numbers below {npages}")
    if not isinstance(state["in_migration"], bool):
        raise TraceError("state.in_migration must be true or false")
    out.update({"tlb_dirty": tlb, "in_migration": state["in_migration"]})
    return out


def call_file(call: dict[str, Any]) -> dict[str, Any]:
    """A register-style call as a ``dirty-call/1`` object: a config, a
    starting state (loaded directly, or reached by a trace), and the call."""
    state = {"sizes": call.get("sizes"), "clients": call.get("clients"), "spare": call.get("spare"),
             "tlb_dirty": call.get("tlb_dirty", []), "in_migration": call.get("in_migration", False)}
    out: dict[str, Any] = {"format": CALL_FORMAT, "config": call.get("config", {})}
    if "trace" in call:
        out["trace"] = call["trace"]
    else:
        out["state"] = state
    out["call"] = {"function": call["function"], "args": call["args"]}
    return out


def call_outcome(cls: type, call: dict[str, Any]) -> dict[str, Any]:
    """Replay a register-style call on one stage: the outcome and what the
    machine shows after (:func:`api_call`)."""
    config = Config(**{**DEFAULT_CONFIG, **call.get("config", {})})
    if "trace" in call:
        machine = Machine(cls, config)
        for op in call["trace"]:
            machine.run_op(op)
        machine.xen_log.clear()
    else:
        machine = api_machine(cls, api_case(call))
    return api_call(machine, call["function"], {"enable": 0, **call["args"]})
