"""Exhaustive checking of a rung within a declared scope.

The random check (:mod:`.rungs`) samples traces; this module tries them
all.  A *scope* (a small TOML file, :func:`load_scope`) names a finite
alphabet: the configs, the block sizes, how many blocks, and for each kind of
op the arguments that matter (first and last page of a block, word and
host-page boundaries, unaligned addresses, lengths 0, 1, a page, a page and a
byte, the rest of the block; every client).  :func:`explore` then runs
several stages side by side, breadth first, over every valid trace of that
alphabet:

- after every op it compares, for each pair of stages it was asked about,
  the op's result, what the op told Xen, the observables of the machine
  (``dirty-trace-result/1``'s state) and, where both stages keep the same
  representation, the raw bytes or bitmap words of the dirty state;
- it copies machines instead of replaying prefixes, and keeps one node per
  *joint state*: the whole state of every machine (dirty state, TLB, TBs,
  KVM log, migration state, block layout; :func:`dirty_ladder.machine.key`),
  so a state reached twice is explored once;
- breadth first, so the first trace that shows a difference is a shortest
  one.

When a layer adds no new joint state, the reachable set is closed: what was
found (or not) holds for traces of *any* length over that alphabet.  When the
depth bound is reached first, the answer is "bounded at depth d", never a
proof.

:func:`explore_api` does the same at the API level: every function of both
stages with the same parameters, called with every argument tuple of a small
domain, on every state of a small scope (dirty states loaded directly, every
pattern of flags on every page, and the states reachable at the machine
level within a few ops).
"""

from __future__ import annotations

import time
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from itertools import product
from pathlib import Path
from typing import Any, Callable

from .compare import (
    LEVELS, ApiCase, RungResult, alike, api_functions, api_machine, compare_calls, judge, raised,
    rung_classes, run_op, step, view,
)
from .machine import Machine, clone, key
from .trace import (
    CLIENTS, MAX_RAM, OPS, TARGET_PAGE_SIZE, Block, Config, find_ram_offset,
)

# Ops whose only effect is their result: run on the node itself, never copied.
READ_ONLY = frozenset({"get_dirty", "is_clean"})


class ScopeError(ValueError):
    """A scope file that cannot be used; ``str()`` is one line."""


# ------------------------------------------------------------------ the scope
ADDRESSES = {
    # name -> the address in block b (host pages of hps bytes); places outside the block are left out
    "first": lambda b, hps: b.offset,
    "second": lambda b, hps: b.offset + TARGET_PAGE_SIZE,
    "unaligned": lambda b, hps: b.offset + TARGET_PAGE_SIZE // 2,
    "last": lambda b, hps: b.end - TARGET_PAGE_SIZE,
    "last_byte": lambda b, hps: b.end - 1,
    "word": lambda b, hps: b.offset + 64 * TARGET_PAGE_SIZE,
    "host": lambda b, hps: b.offset + hps,
}
LENGTHS = {
    "0": lambda addr, b: 0,
    "1": lambda addr, b: 1,
    "page": lambda addr, b: TARGET_PAGE_SIZE,
    "page+1": lambda addr, b: TARGET_PAGE_SIZE + 1,
    "two_pages": lambda addr, b: 2 * TARGET_PAGE_SIZE,
    "rest": lambda addr, b: b.end - addr,
}
STARTS = {
    # migration_next's start, relative to its block
    "first": lambda b: 0,
    "second": lambda b: TARGET_PAGE_SIZE,
    "last": lambda b: b.length - TARGET_PAGE_SIZE,
    "end": lambda b: b.length,
}
PAGE_FLAGS = ("vga", "code", "migration", "spare")


@dataclass(frozen=True)
class ApiScope:
    layouts: tuple[tuple[int, ...], ...]     # block sizes in pages, allocated in order
    patterns: tuple[frozenset, ...]          # flags a page may hold (subsets of PAGE_FLAGS)
    tlb: tuple[str, ...]                     # "dirty" / "notdirty": every page's entry
    in_migration: tuple[bool, ...]
    addresses: tuple[str, ...]
    lengths: tuple[str, ...]
    clients: tuple[str, ...]
    enable: tuple[int, ...]
    machine_depth: int                       # also every state the machine scope reaches in this many ops


@dataclass(frozen=True)
class Scope:
    name: str
    description: str
    depth: int
    configs: tuple[Config, ...]
    block_pages: tuple[int, ...]
    max_blocks: int
    ops: tuple[str, ...]
    addresses: tuple[str, ...]
    lengths: tuple[str, ...]
    clients: tuple[str, ...]
    write_sizes: tuple[int, ...]
    starts: tuple[str, ...]
    max_states: int
    api: ApiScope | None
    source: str = ""

    def summary(self) -> str:
        configs = ", ".join(f"{c.host_page_size // 1024}K/{c.accel}{'/xen' if c.xen else ''}" for c in self.configs)
        return (f"scope {self.name}: depth {self.depth}; configs {configs}; blocks of "
                f"{'/'.join(map(str, self.block_pages))} pages, at most {self.max_blocks}; "
                f"addresses {','.join(self.addresses)}; lengths {','.join(self.lengths)}; "
                f"{len(self.ops)} kinds of op")


def _list(raw: dict, name: str, allowed=None, kind=None, default=None) -> tuple:
    value = raw.get(name, default)
    if value is None:
        raise ScopeError(f"missing key {name!r}")
    if not isinstance(value, list) or not value:
        raise ScopeError(f"{name} must be a non-empty list")
    for item in value:
        if kind is not None and (not isinstance(item, kind) or isinstance(item, bool) and kind is int):
            raise ScopeError(f"{name}: {item!r} is not a {kind.__name__}")
        if allowed is not None and item not in allowed:
            raise ScopeError(f"{name}: unknown value {item!r} (choose from {', '.join(map(str, allowed))})")
    return tuple(value)


def _int(raw: dict, name: str, lo: int, hi: int, default=None) -> int:
    value = raw.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ScopeError(f"{name} must be a whole number from {lo} to {hi}, not {value!r}")
    return value


SCOPE_KEYS = {"name", "description", "depth", "host_page_size", "accel", "xen", "block_pages", "max_blocks",
              "ops", "addresses", "lengths", "clients", "write_sizes", "starts", "max_states", "api"}
API_KEYS = {"layouts", "patterns", "tlb", "in_migration", "addresses", "lengths", "clients", "enable",
            "machine_depth"}


def parse_scope(raw: dict, source: str = "") -> Scope:
    """A Scope from a decoded TOML table; ScopeError names what is wrong."""
    unknown = sorted(set(raw) - SCOPE_KEYS)
    if unknown:
        raise ScopeError(f"unknown key {unknown[0]!r}")
    hps = _list(raw, "host_page_size", (4096, 65536), int)
    accel = _list(raw, "accel", ("tcg", "kvm"), str)
    xen = _list(raw, "xen", (False, True), bool)
    block_pages = _list(raw, "block_pages", kind=int)
    if any(p < 1 or p * TARGET_PAGE_SIZE > MAX_RAM for p in block_pages):
        raise ScopeError("block_pages: each block is 1 page or more, and fits in the 1 TiB the machine models")
    api = None
    if "api" in raw:
        a = raw["api"]
        if not isinstance(a, dict):
            raise ScopeError("api must be a table")
        bad = sorted(set(a) - API_KEYS)
        if bad:
            raise ScopeError(f"api: unknown key {bad[0]!r}")
        layouts = a.get("layouts", [[2]])
        if (not isinstance(layouts, list) or not layouts
                or not all(isinstance(l, list) and l and all(isinstance(p, int) and not isinstance(p, bool)
                                                             and 1 <= p <= 256 for p in l) for l in layouts)):
            raise ScopeError("api.layouts must be a list of lists of block sizes in pages (1 to 256)")
        patterns = []
        for text in _list(a, "patterns", kind=str):
            flags = frozenset(f for f in text.split(",") if f)
            if not flags <= set(PAGE_FLAGS):
                raise ScopeError(f"api.patterns: {text!r}: flags are {', '.join(PAGE_FLAGS)}")
            patterns.append(flags)
        api = ApiScope(
            tuple(tuple(l) for l in layouts), tuple(patterns),
            _list(a, "tlb", ("dirty", "notdirty"), str, ["dirty", "notdirty"]),
            _list(a, "in_migration", (False, True), bool, [False, True]),
            _list(a, "addresses", tuple(ADDRESSES), str), _list(a, "lengths", tuple(LENGTHS), str),
            _list(a, "clients", CLIENTS, str, list(CLIENTS)), _list(a, "enable", (0, 1), int, [0, 1]),
            _int(a, "machine_depth", 0, 6, 0))
    return Scope(
        name=str(raw.get("name", "scope")),
        description=str(raw.get("description", "")),
        depth=_int(raw, "depth", 1, 50),
        configs=tuple(Config(h, a, x) for h, a, x in product(hps, accel, xen)),
        block_pages=block_pages,
        max_blocks=_int(raw, "max_blocks", 1, 8),
        ops=_list(raw, "ops", tuple(OPS), str, list(OPS)),
        addresses=_list(raw, "addresses", tuple(ADDRESSES), str),
        lengths=_list(raw, "lengths", tuple(LENGTHS), str),
        clients=_list(raw, "clients", CLIENTS, str, list(CLIENTS)),
        write_sizes=_list(raw, "write_sizes", (1, 2, 4), int, [1]),
        starts=_list(raw, "starts", tuple(STARTS), str, ["first", "end"]),
        max_states=_int(raw, "max_states", 1, 100_000_000, 2_000_000),
        api=api, source=source)


def builtin_scopes() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files(__package__).joinpath("scopes").iterdir()
                  if p.name.endswith(".toml"))


def load_scope(name_or_path: str) -> Scope:
    """A built-in scope by name (``ci``, ``medium``, ...) or a TOML file."""
    if name_or_path in builtin_scopes():
        res = resources.files(__package__).joinpath("scopes", name_or_path + ".toml")
        text, source = res.read_text(encoding="utf-8"), f"built-in scope {name_or_path}"
    else:
        path = Path(name_or_path)
        if not path.suffix and not path.exists():
            raise ScopeError(f"unknown scope {name_or_path!r}: built-in scopes are "
                             f"{', '.join(builtin_scopes())}, or give a .toml file")
        try:
            text, source = path.read_text(encoding="utf-8"), f"scope file {path}"
        except (OSError, UnicodeDecodeError) as exc:
            raise ScopeError(f"cannot read scope file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScopeError(f"{source}: not valid TOML: {exc}") from None
    if isinstance(raw, dict):
        raw.setdefault("name", Path(name_or_path).stem)
    try:
        return parse_scope(raw, source)
    except ScopeError as exc:
        raise ScopeError(f"{source}: {exc}") from None


# ------------------------------------------------------------------ the alphabet
def _places(scope_addresses, block: Block, hps: int, room: int = 1) -> list[int]:
    """The addresses the scope names in ``block``, with ``room`` bytes after them."""
    out = []
    for name in scope_addresses:
        addr = ADDRESSES[name](block, hps)
        if block.offset <= addr and addr + room <= block.end and addr not in out:
            out.append(addr)
    return out


def alphabet(scope: Scope, config: Config, blocks: list[Block], migrating: bool) -> list[dict[str, Any]]:
    """Every op of the scope's alphabet that is valid next, given the blocks
    (in RAM-list order) and whether migration_setup has run."""
    hps = config.host_page_size
    wanted = set(scope.ops)
    out: list[dict[str, Any]] = []
    if not migrating:
        if "ram_alloc" in wanted and len(blocks) < scope.max_blocks:
            for pages in scope.block_pages:
                size = pages * TARGET_PAGE_SIZE
                if find_ram_offset(blocks, size) + size <= MAX_RAM:
                    out.append({"op": "ram_alloc", "size": size})
        if "ram_free" in wanted:
            out += [{"op": "ram_free", "offset": b.offset} for b in blocks]
    for b in blocks:
        for name in ("tb_translate", "tlb_fill", "is_clean"):
            if name in wanted:
                out += [{"op": name, "addr": a} for a in _places(scope.addresses, b, hps)]
        if "tcg_write" in wanted:
            for size in scope.write_sizes:
                for a in _places(scope.addresses, b, hps, size):
                    if a >> 12 == (a + size - 1) >> 12:
                        out.append({"op": "tcg_write", "addr": a, "size": size})
        if "stl_phys_notdirty" in wanted:
            out += [{"op": "stl_phys_notdirty", "addr": a} for a in _places(scope.addresses, b, hps, 4)]
        if "kvm_write" in wanted:
            seen = set()
            for a in _places(scope.addresses, b, hps):
                host = b.offset + (a - b.offset) // hps * hps
                if host + hps <= b.end and host not in seen:
                    seen.add(host)
                    out.append({"op": "kvm_write", "addr": host})
        ranges_ = []
        for a in _places(scope.addresses, b, hps):
            for name in scope.lengths:
                length = LENGTHS[name](a, b)
                if a + length <= b.end and (a, length) not in ranges_:
                    ranges_.append((a, length))
        for name in ("dma_write", "set_dirty"):
            if name in wanted:
                out += [{"op": name, "addr": a, "len": n} for a, n in ranges_]
        for name in ("get_dirty", "test_and_clear_dirty", "reset_dirty"):
            if name in wanted:
                out += [{"op": name, "addr": a, "len": n, "client": c} for a, n in ranges_ for c in scope.clients]
    for name in ("kvm_sync", "log_global_start", "log_global_stop"):
        if name in wanted:
            out.append({"op": name})
    if not migrating and "migration_setup" in wanted:
        out.append({"op": "migration_setup"})
    if migrating:
        if "migration_sync" in wanted:
            out.append({"op": "migration_sync"})
        if "migration_next" in wanted:
            for b in blocks:
                starts = []
                for name in scope.starts:
                    s = STARTS[name](b)
                    if s >= 0 and s not in starts:
                        starts.append(s)
                out += [{"op": "migration_next", "block": b.offset, "start": s} for s in starts]
    return out


# ------------------------------------------------------------------ the machine level
@dataclass
class Run:
    """What one exploration saw."""
    scope: str
    level: str
    states: int = 0
    transitions: int = 0
    depth: int = 0                      # the deepest layer that added a state
    closed: bool = True                 # every config's reachable set closed within the depth bound
    seconds: float = 0.0
    truncated: bool = False             # max_states reached
    differences: dict = field(default_factory=dict)     # (pair, signature) -> compare.Difference

    @property
    def verdict(self) -> str:
        if self.truncated:
            return f"stopped at {self.states} states (max_states), depth {self.depth}"
        if self.level == "api":
            return "every state and call of the API domain"
        return f"closed at depth {self.depth}" if self.closed else f"bounded at depth {self.depth}"

    def as_dict(self) -> dict[str, Any]:
        return {"scope": self.scope, "level": self.level, "states": self.states,
                "transitions": self.transitions, "depth": self.depth, "closed": self.closed,
                "truncated": self.truncated, "verdict": self.verdict, "seconds": round(self.seconds, 3),
                "states_per_second": round(self.states / self.seconds) if self.seconds else None}


@dataclass
class _Node:
    machines: list[Machine]
    ops: tuple                          # the trace so far
    alike: dict                         # compare.alike() of its state


def explore(classes: list[type], pairs: list[tuple[int, int]], scope: Scope,
            levels: tuple[str, ...] = ("machine", "repr"),
            progress: Callable[[dict], None] | None = None,
            visit: Callable[[list, tuple], None] | None = None) -> Run:
    """Breadth-first over every trace of ``scope``, on ``classes`` side by
    side; a compare.Difference for every (pair, place) where a pair of them
    first differs, with a shortest trace."""
    run = Run(scope.name, "+".join(levels))
    t0 = last_report = time.monotonic()
    for config in scope.configs:
        seen: set = set()
        cache: dict = {}
        root = _Node([Machine(cls, config) for cls in classes], (), {pr: (True, True) for pr in pairs})
        seen.add(tuple(key(m) for m in root.machines))
        frontier = [root]
        depth = 0
        while frontier and depth < scope.depth:
            depth += 1
            next_frontier: list[_Node] = []
            for node in frontier:
                m0 = node.machines[0]
                for op in alphabet(scope, config, m0.ram_list.blocks, m0.migration_started):
                    run.transitions += 1
                    ops = node.ops + (op,)
                    if op["op"] in READ_ONLY:       # nothing changes but the result: no copy
                        outcomes = [run_op(m, op) for m in node.machines]
                        step(run.differences, node.alike, node.machines, outcomes, None, ops, config, levels)
                        continue
                    machines = [clone(m) for m in node.machines]
                    outcomes = [run_op(m, op) for m in machines]
                    if raised(outcomes):            # a stage's code failed: noted, not explored further
                        step(run.differences, node.alike, machines, outcomes, None, ops, config, levels)
                        continue
                    keys = tuple(key(m) for m in machines)
                    views = [view(m, cache, k) for m, k in zip(machines, keys)]
                    step(run.differences, node.alike, machines, outcomes, views, ops, config, levels)
                    if keys in seen:
                        continue
                    seen.add(keys)
                    run.states += 1
                    run.depth = max(run.depth, depth)
                    next_frontier.append(_Node(machines, ops, alike(pairs, views)))
                    if visit:
                        visit(machines, ops)
                    if run.states >= scope.max_states:
                        run.truncated, run.closed = True, False
                        run.seconds = time.monotonic() - t0
                        return run
                if progress and time.monotonic() - last_report > 0.5:
                    last_report = time.monotonic()
                    progress({"level": run.level, "config": config.as_dict(), "depth": depth,
                              "states": run.states, "seconds": last_report - t0})
            frontier = next_frontier
        if frontier:
            run.closed = False
    run.seconds = time.monotonic() - t0
    return run


# ------------------------------------------------------------------ the API level
def api_states(scope: Scope, classes: list[type]):
    """Every state of the API scope, as (where, machines): the loaded states
    (each layout, every pattern of flags on every page, every TLB setting and
    in_migration), then the joint states the machine scope reaches within
    ``api.machine_depth`` ops (in its first config)."""
    api = scope.api
    config = scope.configs[0]
    for layout in api.layouts:
        sizes = [p * TARGET_PAGE_SIZE for p in layout]
        npages = sum(layout)
        for flags in product(api.patterns, repeat=npages):
            for tlb, in_migration in product(api.tlb, api.in_migration):
                case = ApiCase(config, sizes, {c: [c in f for f in flags] for c in CLIENTS},
                               ["spare" in f for f in flags],
                               list(range(npages)) if tlb == "dirty" else [], in_migration, "", {})
                yield {"state": case}, [api_machine(cls, case) for cls in classes]
    if api.machine_depth:
        sub = Scope(**{**scope.__dict__, "depth": api.machine_depth, "configs": (config,)})
        found: list = []
        explore(classes, [], sub, levels=(), visit=lambda machines, ops: found.append((machines, ops)))
        for machines, ops in found:
            yield {"trace": [dict(o) for o in ops]}, machines


def api_arguments(api: ApiScope, blocks: list[Block], hps: int, params: set[str]):
    """Every argument tuple of the API domain for a function asking for
    ``params`` (addr, length, end, who, enable): addresses and lengths in
    each block, clients, enable."""
    places = [(0, 0)]
    if "addr" in params:
        places = []
        for b in blocks:
            for a in _places(api.addresses, b, hps):
                for name in api.lengths if params & {"length", "end"} else ("0",):
                    n = LENGTHS[name](a, b)
                    if a + n <= b.end and (a, n) not in places:
                        places.append((a, n))
    clients = api.clients if "who" in params else ("vga",)
    enables = api.enable if "enable" in params else (0,)
    for (a, n), c, e in product(places, clients, enables):
        yield {"addr": a, "length": n, "client": c, "enable": e}


def explore_api(classes: list[type], pairs: list[tuple[int, int]], scope: Scope,
                progress: Callable[[dict], None] | None = None) -> Run:
    """Every function present in both stages of a pair with the same
    parameters, called with every argument tuple of the scope's API domain
    on every state of its API scope."""
    run = Run(scope.name, "api")
    if scope.api is None:
        return run
    t0 = last_report = time.monotonic()
    config = scope.configs[0]
    functions = {pair: api_functions(classes[pair[0]], classes[pair[1]]) for pair in pairs}
    for where, machines in api_states(scope, classes):
        run.states += 1
        m0 = machines[0]

        def describe(name: str, args: dict, where=where) -> dict:
            call = {"function": name, "args": dict(args), "config": config.as_dict()}
            if "state" in where:
                state = where["state"].as_call()
                call.update({k: v for k, v in state.items() if k not in ("function", "args", "config")})
            else:
                call["trace"] = where["trace"]
            return call

        run.transitions += compare_calls(
            run.differences, classes, pairs, machines, functions,
            lambda name, params: api_arguments(scope.api, m0.ram_list.blocks, m0.config.host_page_size, params),
            describe, config)
        if progress and time.monotonic() - last_report > 0.5:
            last_report = time.monotonic()
            progress({"level": "api", "states": run.states, "seconds": last_report - t0})
    run.seconds = time.monotonic() - t0
    return run


# ------------------------------------------------------------------ a rung
SCOPE_ORDER = ("ci", "medium", "large")


def finds(entry_scope: str, scope: Scope) -> bool:
    """Must ``scope`` find what an entry whose scope is ``entry_scope``
    says: is it that scope, or a built-in one at least as large?"""
    if entry_scope == scope.name:
        return True
    return (scope.name in SCOPE_ORDER and entry_scope in SCOPE_ORDER
            and SCOPE_ORDER.index(scope.name) >= SCOPE_ORDER.index(entry_scope))


def check_rung(rung: int, scope: Scope, levels: tuple[str, ...] = LEVELS, register: list | None = None,
               progress: Callable[[dict], None] | None = None, stand_in: type | None = None) -> RungResult:
    """Explore a rung within ``scope``: the bridge against stage N (or a
    user's class standing in for it) exactly, and each register entry's
    override alone against stage N-1."""
    from .register import load_register
    register = load_register() if register is None else register
    classes, exact, entry_pairs = rung_classes(rung, register, stand_in)
    pairs = [exact] + entry_pairs
    runs = []
    trace_levels = tuple(level for level in levels if level in ("machine", "repr"))
    if trace_levels:
        runs.append(explore(classes, pairs, scope, trace_levels, progress))
    if "api" in levels and scope.api is not None:
        runs.append(explore_api(classes, pairs, scope, progress))
    found = {k: d for run in runs for k, d in run.differences.items()}
    result = judge(rung, found, levels, register, lambda entry: finds(entry.scope, scope), f"scope {scope.name}")
    result.runs = runs
    return result
