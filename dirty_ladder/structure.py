"""What a commit is about, read off the ladder, and whether a stage does it.

A refactoring keeps behaviour by definition, so behaviour alone cannot tell
a commit done from one not done.  This module says, for each commit N, what
else it changes, each read from the ladder itself rather than listed by hand:

- **representation**: how the dirty state is held (:func:`layout`: flag
  bytes and which bit holds each client, or bitmaps and which one holds
  each client) differs between stage N-1 and stage N (commits 14 and 19);
- **api**: the functions of the stage, their parameters, their return
  types and the constants (:func:`api_gaps` of stage N-1 against stage N):
  renames, inlines, removals, new functions, changes of signature;
- **calls**: which of the dirty API's functions (and the machine's
  services) each function calls (:func:`call_edges`, seen by a profile
  hook while the probe traces run): the commits that unfold, extract or
  reroute a call;
- **cost**: the order of the work an operation does over a range of pages
  (:mod:`.counting`): page by page, word by word, or the whole range;
- **declarations**: where the C declares each name (``DECLARED_IN``); a
  commit that changes only that is *text only*: there is no code to write.

:func:`aspects` gives the list for commit N ("what done means"); the
``*_gaps`` functions check a user's class against stage N, each giving the
gaps as sentences a learner can act on.
"""

from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from stages import stage

from .machine import Machine
from .trace import validate
from .views import CLIENTS, client_flag, raw_state, representation

ASPECTS = ("behaviour", "representation", "api", "calls", "cost", "declarations")
STRUCTURE = ASPECTS[1:]


@dataclass
class Aspect:
    """One thing commit N changes that a stage must do as it does."""
    name: str
    what: str                   # what commit N does, in a sentence
    details: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "what": self.what, "details": self.details}


# ------------------------------------------------------------------ representation
def layout(st) -> dict[str, Any]:
    """How a stage instance holds the dirty state: flag bytes and the bit
    of each client, or bitmaps and the index of each client's bitmap."""
    if representation(st) == "bytes":
        return {"kind": "bytes", "clients": {c: client_flag(st, c) for c in CLIENTS}}
    return {"kind": "bitmaps", "count": len(st.ram_list.dirty_memory),
            "clients": {c: getattr(st, "DIRTY_MEMORY_" + c.upper(), None) for c in CLIENTS}}


def layout_text(lay: dict[str, Any]) -> str:
    if lay["kind"] == "bytes":
        bits = ", ".join(f"{c} {_flag_text(v)}" for c, v in lay["clients"].items())
        return f"one flag byte per page (ram_list.phys_dirty), {bits}"
    maps = ", ".join(f"{c} in dirty_memory[{v}]" for c, v in lay["clients"].items())
    return f"{lay['count']} bitmaps of 64-bit words (ram_list.dirty_memory), one bit per page: {maps}"


def _flag_text(flag: Any) -> str:
    if not isinstance(flag, int) or flag <= 0:
        return f"flag {flag!r}"
    return f"bit {flag.bit_length() - 1} ({flag:#04x})"


def stage_layout(n: int) -> dict[str, Any]:
    return layout(Machine(stage(n)).stage)


def _byte_text(value: int, flags: dict[str, int]) -> str:
    names = [c for c, f in flags.items() if isinstance(f, int) and value & f]
    used = sum(f for f in flags.values() if isinstance(f, int))
    spare = value & ~used & 0xFF
    parts = names + ([f"spare bits {spare:#04x}"] if spare else [])
    return f"{value:#04x} ({', '.join(parts) or 'clean'})"


def _pages_text(bits: list[int]) -> str:
    if not bits:
        return "no page"
    spans: list[list[int]] = []
    for b in bits:
        if spans and spans[-1][1] == b - 1:
            spans[-1][1] = b
        else:
            spans.append([b, b])
    text = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)
    return ("page " if len(bits) == 1 else "pages ") + text


def _word_pages(word: int, k: int) -> list[int]:
    return [64 * k + i for i in range(64) if word >> i & 1]


def raw_difference(real, yours, n: int, limit: int = 3) -> list[str]:
    """Where two stage instances hold the dirty state differently, decoded
    into pages and clients: 'what commit N holds -> what yours holds'."""
    a, b = layout(real), layout(yours)
    if a["kind"] != b["kind"] or a != b:
        out = [f"commit {n:02d} holds {layout_text(a)}; yours holds {layout_text(b)}"]
        if a["kind"] != b["kind"]:
            return out
    else:
        out = []
    if a["kind"] == "bytes":
        ra, rb = real.ram_list.phys_dirty, yours.ram_list.phys_dirty
        if len(ra) != len(rb):
            out.append(f"commit {n:02d} has flag bytes for {len(ra)} pages; yours for {len(rb)}")
        diff = [p for p in range(min(len(ra), len(rb))) if int(ra[p]) != int(rb[p])]
        for p in diff[:limit]:
            out.append(f"flag byte of page {p}: {_byte_text(int(ra[p]), a['clients'])} -> "
                       f"{_byte_text(int(rb[p]), b['clients'])}")
        if len(diff) > limit:
            out.append(f"... and {len(diff) - limit} more pages")
        return out
    for c in CLIENTS:
        ia, ib = a["clients"][c], b["clients"][c]
        if not (isinstance(ia, int) and isinstance(ib, int)):
            continue
        ma, mb = real.ram_list.dirty_memory[ia], yours.ram_list.dirty_memory[ib]
        if len(ma) != len(mb):
            out.append(f"the {c} bitmap: commit {n:02d} has {len(ma)} words ({64 * len(ma)} pages); "
                       f"yours {len(mb)} ({64 * len(mb)} pages)")
        diff = [k for k in range(min(len(ma), len(mb))) if int(ma[k]) != int(mb[k])]
        for k in diff[:limit]:
            out.append(f"the {c} bitmap, word {k}: {_pages_text(_word_pages(int(ma[k]), k))} -> "
                       f"{_pages_text(_word_pages(int(mb[k]), k))}")
        if len(diff) > limit:
            out.append(f"... and {len(diff) - limit} more words of the {c} bitmap")
    return out


def same_raw(real, yours) -> bool:
    return layout(real) == layout(yours) and raw_state(real) == raw_state(yours)


# ------------------------------------------------------------------ api
def _api(cls: type):
    from .model import api_of
    return api_of(cls.STAGE, cls)


@cache
def _stage_api(n: int):
    from .model import api_of
    return api_of(n)


def api_gaps(cls: type, n: int) -> list[str]:
    """How the functions and constants of ``cls`` differ from stage ``n``'s:
    each function of stage n with its parameters (and its return type where
    commit n changed it), none of those stage n-1 had and stage n does not,
    and stage n's constants with their values."""
    want, have = _stage_api(n), _api(cls)
    before = _stage_api(n - 1) if n > 0 else want
    gaps = []
    for name, fn in want.functions.items():
        mine = have.functions.get(name)
        if mine is None:
            verb = "adds" if name not in before.functions else "keeps"
            gaps.append(f"commit {n:02d} {verb} {name}{fn.signature}; your Stage has no {name}")
            continue
        if mine.params != fn.params:
            gaps.append(f"{name}: commit {n:02d} takes ({', '.join(fn.params)}); yours takes "
                        f"({', '.join(mine.params)})")
        old = before.functions.get(name)
        if old is not None and old.returns != fn.returns and mine.returns != fn.returns:
            gaps.append(f"{name}: commit {n:02d} changes its return type from {old.returns or 'none said'} "
                        f"to {fn.returns or 'none said'}; yours says {mine.returns or 'none'}")
    for name in sorted(set(have.functions) - set(want.functions)):
        if name in before.functions:
            gaps.append(f"commit {n:02d} removes {name}; your Stage still has it (write "
                        f"{name} = removed(\"why\") in the class)")
    for name, const in want.constants.items():
        mine = have.constants.get(name)
        if mine is None:
            gaps.append(f"commit {n:02d} has the constant {name} = {const.value}; your Stage has no "
                        f"{name} (or not as a whole number)")
        elif mine.value != const.value:
            gaps.append(f"the constant {name}: commit {n:02d} has {const.value}; yours {mine.value}")
    for name in sorted(set(have.constants) - set(want.constants)):
        if name in before.constants:
            gaps.append(f"commit {n:02d} removes the constant {name}; your Stage still has it")
    return gaps


# ------------------------------------------------------------------ declarations
def declaration_gaps(cls: type, n: int) -> list[str]:
    """Where ``cls`` says the C declares each name, against stage ``n``."""
    want, have = stage(n).DECLARED_IN, getattr(cls, "DECLARED_IN", {})
    gaps = []
    for name, where in want.items():
        if have.get(name) != where:
            gaps.append(f"{name}: commit {n:02d} declares it in {where}; yours says "
                        f"{have.get(name) or 'nowhere'}")
    for name in sorted(set(have) - set(want)):
        gaps.append(f"{name}: commit {n:02d} declares it nowhere (DECLARED_IN has no {name}); "
                    f"yours says {have[name]}")
    return gaps


# ------------------------------------------------------------------ calls
SERVICES = ("tcg_enabled", "getpagesize", "xen_modified_memory", "tb_invalidate_phys_page_fast",
            "tb_invalidate_phys_page_range", "tlb_set_dirty", "cpu_tlb_reset_dirty_all",
            "qemu_get_ram_block", "last_ram_offset", "address_space_sync_dirty_bitmap", "ram_block_add")


def _functions(cls: type) -> dict:
    """code object -> the name the class binds it under, for every function
    of the class and its bases (the stage's own code, or a user's)."""
    out = {}
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            func = getattr(value, "__func__", value)
            if inspect.isfunction(func) and not name.startswith("_"):
                out[func.__code__] = name
    return out


def call_edges(cls: type, traces: list) -> set[tuple[str, str]]:
    """(caller, callee) for every call a function of ``cls`` makes to
    another function of ``cls`` or to a service of the machine, while the
    traces run.  A call to a function of the same name (``super()``) is the
    same function going on, not an edge, so inherited code inlined by hand
    gives the same edges as the ``super()`` call it replaces."""
    own = _functions(cls)
    services = {getattr(Machine, name).__code__: name for name in SERVICES}
    names = {**services, **own}
    edges: set[tuple[str, str]] = set()

    def hook(frame, event, arg):             # settrace's global hook: Python calls only, no line events
        callee = names.get(frame.f_code)
        if callee is None:
            return
        f = frame.f_back
        while f is not None and f.f_code not in names:
            f = f.f_back
        if f is None or f.f_code not in own:
            return
        caller = own[f.f_code]
        if caller != callee:
            edges.add((caller, callee))

    old = sys.gettrace()
    sys.settrace(hook)
    try:
        for trace in traces:
            machine = Machine(cls, trace.config)
            for op in trace.ops:
                try:
                    machine.run_op(op)
                except Exception:      # noqa: BLE001 -- a refusal ends the trace; the behaviour checks judge it
                    break
    finally:
        sys.settrace(old)
    return edges


def edges_text(edges: set[tuple[str, str]]) -> list[str]:
    by: dict[str, list[str]] = {}
    for caller, callee in sorted(edges):
        by.setdefault(caller, []).append(callee)
    return [f"{caller} calls {', '.join(callees)}" for caller, callees in by.items()]


def call_gaps(cls: type, n: int, traces: list, real_edges: set | None = None) -> list[str]:
    """How the calls ``cls`` makes differ from stage n's on ``traces``."""
    want = call_edges(stage(n), traces) if real_edges is None else real_edges
    have = call_edges(cls, traces)
    gaps = []
    for caller, callee in sorted(want - have):
        gaps.append(f"commit {n:02d}'s {caller} calls {callee}; yours does not")
    for caller, callee in sorted(have - want):
        gaps.append(f"your {caller} calls {callee}; commit {n:02d}'s does not")
    return gaps


# ------------------------------------------------------------------ the probe traces
PROBE_EVERY = 6          # every 6th conformance trace, and every one whose expected result changes at the rung


def probe_vectors(n: int) -> list[dict]:
    """The conformance vectors the quick tier runs for rung ``n``: those
    whose real result changed at commit n, and every PROBE_EVERY-th."""
    from .conformance import expected, vectors
    out = []
    for i, v in enumerate(vectors()):
        if i % PROBE_EVERY == 0 or expected(v, n) != expected(v, n - 1):
            out.append(v)
    return out


def probe_traces(n: int) -> list:
    """The traces the structural checks run: the register entries' traces of
    rung ``n`` and the probe vectors' traces."""
    from .register import entries_of
    traces = [validate(e.trace) for e in entries_of(n) if e.trace is not None]
    return traces + [validate(v["trace"]) for v in probe_vectors(n)]


# ------------------------------------------------------------------ what commit N is about
@cache
def _edges(n: int) -> frozenset:
    return frozenset(call_edges(stage(n), probe_traces(n)))


def real_edges(n: int) -> set:
    """Stage ``n``'s call edges on rung ``n``'s probe traces."""
    return set(_edges(n))


def _edge_change(n: int) -> tuple[set, set]:
    traces = probe_traces(n)
    before, after = call_edges(stage(n - 1), traces), real_edges(n)
    return after - before, before - after


@cache
def aspects(n: int) -> tuple[Aspect, ...]:
    """What done means for commit ``n``: behaviour, then every structural
    aspect the commit changes, read off stages n-1 and n."""
    from . import counting
    from .register import entries_of
    if not 1 <= n <= len(ASPECTS) * 0 + 39:
        raise ValueError(f"commit {n}: commits are 1 to 39")
    out = []
    entries = entries_of(n)
    if entries:
        out.append(Aspect("behaviour", f"behaviour as stage {n - 1:02d}'s except the register's "
                                       f"{len(entries)} change(s) of commit {n:02d}, bugs included",
                          [f"{e.id} ({e.status}): {e.what}" for e in entries]))
    else:
        out.append(Aspect("behaviour", f"behaviour kept: the same results as stage {n - 1:02d} on every "
                                       f"trace and call"))
    a, b = stage_layout(n - 1), stage_layout(n)
    if a != b:
        out.append(Aspect("representation", f"the dirty state is held differently: your raw state must be "
                                            f"commit {n:02d}'s, byte for byte or word for word",
                          [f"stage {n - 1:02d}: {layout_text(a)}", f"commit {n:02d}: {layout_text(b)}"]))
    gaps = api_gaps(stage(n - 1), n)
    if gaps:
        out.append(Aspect("api", "the functions, their parameters and the constants change", gaps))
    added, dropped = _edge_change(n)
    if added or dropped:
        out.append(Aspect("calls", "who calls whom changes",
                          [f"now: {t}" for t in edges_text(added)]
                          + [f"no longer: {t}" for t in edges_text(dropped)]))
    changed = counting.changed_ops(n)
    if changed:
        before, after = counting.stage_shapes(n - 1), counting.stage_shapes(n)
        out.append(Aspect("cost", "an operation changes the order of its work (counted, not timed)",
                          [f"{op}: {counting.ORDER_TEXT[before[op].order]} -> "
                           f"{counting.ORDER_TEXT[after[op].order]}" for op in changed]))
    if stage(n).DECLARED_IN != stage(n - 1).DECLARED_IN:
        out.append(Aspect("declarations", "where the C declares names changes (DECLARED_IN)",
                          declaration_gaps(stage(n - 1), n)))
    return tuple(out)


def text_only(n: int) -> bool:
    """A commit that changes no Python behaviour, representation, API,
    calls or cost: only where the C declares things."""
    names = [a.name for a in aspects(n)]
    from .register import entries_of
    return not entries_of(n) and names == ["behaviour", "declarations"]
