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

import ast
import textwrap
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from stages import stage

from .machine import Machine
from .trace import validate
from .views import CLIENTS, client_flag, raw_state, representation

ASPECTS = ("behaviour", "representation", "api", "calls", "refusals", "cost", "declarations", "source")


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


def api_gaps(cls: type, n: int, who: str = "yours") -> list[str]:
    """How the functions and constants of ``cls`` differ from stage ``n``'s:
    each function of stage n with its parameters (and its return type where
    commit n changed it), none of those stage n-1 had and stage n does not,
    and stage n's constants with their values.  ``who`` names ``cls`` in
    the sentences."""
    want, have = _stage_api(n), _api(cls)
    before = _stage_api(n - 1) if n > 0 else want
    gaps = []
    for name, fn in want.functions.items():
        mine = have.functions.get(name)
        if mine is None:
            verb = "adds" if name not in before.functions else "keeps"
            gaps.append(f"commit {n:02d} {verb} {name}{fn.signature}; {who} has no {name}")
            continue
        if mine.params != fn.params:
            gaps.append(f"{name}: commit {n:02d} takes ({', '.join(fn.params)}); {who} takes "
                        f"({', '.join(mine.params)})")
        old = before.functions.get(name)
        if old is not None and old.returns != fn.returns and mine.returns != fn.returns:
            gaps.append(f"{name}: commit {n:02d} changes its return type from {_returns(old.returns)} "
                        f"to {_returns(fn.returns)}; {who} is {_returns(mine.returns)}")
    for name in sorted(set(have.functions) - set(want.functions)):
        if name in before.functions:
            gaps.append(f"commit {n:02d} removes {name}; {who} still has it (write "
                        f"{name} = removed(\"why\") in the class)")
    for name, const in want.constants.items():
        mine = have.constants.get(name)
        if mine is None:
            gaps.append(f"commit {n:02d} has the constant {name} = {const.value}; {who} has no "
                        f"{name} (or not as a whole number)")
        elif mine.value != const.value:
            gaps.append(f"the constant {name}: commit {n:02d} has {const.value}; {who} has {mine.value}")
    for name in sorted(set(have.constants) - set(want.constants)):
        if name in before.constants:
            gaps.append(f"commit {n:02d} removes the constant {name}; {who} still has it")
    return gaps


def _returns(text: str) -> str:
    return f"-> {text}" if text else "unannotated"


# ------------------------------------------------------------------ declarations
def declaration_gaps(cls: type, n: int, who: str = "yours") -> list[str]:
    """Where ``cls`` says the C declares each name, against stage ``n``."""
    want, have = stage(n).DECLARED_IN, getattr(cls, "DECLARED_IN", {})
    gaps = []
    for name, where in want.items():
        if have.get(name) != where:
            gaps.append(f"{name}: commit {n:02d} declares it in {where}; {who} says "
                        f"{have.get(name) or 'nowhere'}")
    for name in sorted(set(have) - set(want)):
        gaps.append(f"{name}: commit {n:02d} declares it nowhere (DECLARED_IN has no {name}); "
                    f"{who} says {have[name]}")
    return gaps


# ------------------------------------------------------------------ calls
SERVICES = ("tcg_enabled", "getpagesize", "xen_modified_memory", "tb_invalidate_phys_page_fast",
            "tb_invalidate_phys_page_range", "tlb_set_dirty", "cpu_tlb_reset_dirty_all",
            "qemu_get_ram_block", "last_ram_offset", "address_space_sync_dirty_bitmap", "ram_block_add")


def _public_functions(cls: type) -> list[str]:
    return [name for name in dir(cls) if not name.startswith("_") and function_of_class(cls, name) is not None]


def function_of_class(cls: type, name: str):
    from .model import function_of
    return function_of(cls, name)


def _references(cls: type, name: str, targets: set[str]) -> set[str]:
    """The names of ``targets`` that the function ``name`` of ``cls``
    refers to: ``self.X``, ``self.machine.X`` or a bare ``X`` (a helper
    imported as QEMU's code calls it); a ``super().name`` reference brings
    in what the parent's version refers to."""
    from .model import resolve
    owner, _ = resolve(cls, name)
    fn = function_of_class(cls, name)
    if fn is None:
        return set()
    try:
        tree = ast.parse(fn.source)
    except SyntaxError:
        return set()
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in targets:
            base = node.value
            if isinstance(base, ast.Name) and base.id == "self":
                out.add(node.attr)
            elif isinstance(base, ast.Attribute) and base.attr == "machine" and \
                    isinstance(base.value, ast.Name) and base.value.id == "self":
                out.add(node.attr)
            elif isinstance(base, ast.Call) and isinstance(base.func, ast.Name) and base.func.id == "super":
                if node.attr == name and owner is not None and len(owner.__mro__) > 1:
                    out |= _references(owner.__mro__[1], name, targets)
                else:
                    out.add(node.attr)
        elif isinstance(node, ast.Name) and node.id in targets and isinstance(node.ctx, ast.Load):
            out.add(node.id)
    out.discard(name)
    return out


def _all_functions(cls: type) -> list[str]:
    return [name for name in dir(cls) if not name.startswith("__") and function_of_class(cls, name) is not None]


def call_edges(cls: type, keep: set[str] | None = None) -> set[tuple[str, str]]:
    """(caller, callee): every function of ``cls`` that refers to another
    function of ``cls`` or to a service of the machine, read from the
    source (statically, every branch).  A ``super()`` call of the same
    function is that function going on, so inherited code inlined by hand
    gives the same edges as the ``super()`` call it replaces.  A helper of
    your own is seen through: a private one (``_name``) always, and, given
    ``keep`` (the names a commit's stage has), any function not in it, so
    what it calls counts as called by its caller."""
    names = _all_functions(cls)
    targets = set(names) | set(SERVICES)

    def through(name: str) -> bool:
        return name.startswith("_") or (keep is not None and name not in keep and name not in SERVICES)

    def reached(caller: str, seen: set[str]) -> set[str]:
        out = set()
        for callee in _references(cls, caller, targets):
            if through(callee):
                if callee not in seen:
                    out |= reached(callee, seen | {callee})
            else:
                out.add(callee)
        return out

    return {(caller, callee) for caller in names if not through(caller)
            for callee in reached(caller, {caller}) if callee != caller}


def edges_text(edges: set[tuple[str, str]]) -> list[str]:
    by: dict[str, list[str]] = {}
    for caller, callee in sorted(edges):
        by.setdefault(caller, []).append(callee)
    return [f"{caller} calls {', '.join(callees)}" for caller, callees in by.items()]


@cache
def _stage_edges(n: int) -> frozenset:
    return frozenset(call_edges(stage(n)))


def call_gaps(cls: type, n: int) -> list[str]:
    """How the calls of ``cls`` differ from stage n's."""
    want = set(_stage_edges(n))
    have = call_edges(cls, keep=set(_all_functions(stage(n))))
    gaps = []
    for caller, callee in sorted(want - have):
        gaps.append(f"commit {n:02d}'s {caller} calls {callee}; yours does not")
    for caller, callee in sorted(have - want):
        gaps.append(f"your {caller} calls {callee}; commit {n:02d}'s does not")
    return gaps


# ------------------------------------------------------------------ refusals
BAD_CLIENTS = (3, 7, 8)          # a spare bit of the byte, the last one, past the byte


def _client_functions(cls: type) -> list[str]:
    out = []
    for name in _public_functions(cls):
        fn = function_of_class(cls, name)
        if "client" in fn.params and set(fn.params) <= {"addr", "start", "length", "end", "client"}:
            out.append(name)
    return out


def refusal_outcomes(cls: type, names: list[str]) -> dict[str, Any]:
    """Each function of ``names`` called with each client of BAD_CLIENTS
    (and the first page of a fresh 2-page block): its result, or the
    exception it raised."""
    out = {}
    for name in names:
        fn = function_of_class(cls, name)
        for client in BAD_CLIENTS:
            machine = Machine(cls)
            machine.stage.qemu_ram_alloc_from_ptr(2 * 4096)
            args = {"addr": 0, "start": 0, "length": 4096, "end": 4096, "client": client}
            try:
                result = getattr(machine.stage, name)(*[args[p] for p in fn.params])
                outcome = f"returns {result!r}"
            except Exception as exc:           # noqa: BLE001 -- the refusal is the outcome
                outcome = f"raises {type(exc).__name__}"
            out[f"{name}(client={client})"] = outcome
    return out


def refusal_gaps(cls: type, n: int) -> list[str]:
    names = [f for f in _client_functions(stage(n)) if f in _client_functions(cls)]
    want, have = refusal_outcomes(stage(n), names), refusal_outcomes(cls, names)
    return [f"{call}: commit {n:02d} {want[call]}; yours {have[call]}" for call in want if want[call] != have[call]]


def _refusal_change(n: int) -> list[str]:
    before, after = _client_functions(stage(n - 1)), _client_functions(stage(n))
    names = [f for f in after if f in before]
    a, b = refusal_outcomes(stage(n - 1), names), refusal_outcomes(stage(n), names)
    return [f"{call}: stage {n - 1:02d} {a[call]}; commit {n:02d} {b[call]}" for call in a if a[call] != b[call]]


# ------------------------------------------------------------------ source
def _tree(source: str) -> str:
    """A function's code without its docstring and comments, to compare."""
    tree = ast.parse(textwrap.dedent(source))
    fdef = tree.body[0]
    body = fdef.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        fdef.body = body[1:] or [ast.Pass()]
    return ast.dump(fdef.body and ast.Module(fdef.body, []))


def changed_functions(n: int) -> list[str]:
    """The functions commit ``n`` rewrites (their code differs from stage n-1's)."""
    from .model import function_of
    out = []
    for name, value in vars(stage(n)).items():
        new, old = function_of(stage(n), name), function_of(stage(n - 1), name)
        if new is None or old is None or name.startswith("_"):
            continue
        if _tree(new.inlined_source) != _tree(old.inlined_source):
            out.append(name)
    return out


def source_gaps(cls: type, n: int) -> list[str]:
    """The functions commit ``n`` rewrites that ``cls`` still has as stage
    n-1 wrote them (comments and docstrings aside)."""
    from .model import function_of
    gaps = []
    for name in changed_functions(n):
        mine, old = function_of(cls, name), function_of(stage(n - 1), name)
        if mine is None:
            continue
        if _tree(mine.inlined_source) in (_tree(old.inlined_source), _tree(old.source)):
            gaps.append(f"your {name} is still stage {n - 1:02d}'s, line for line; commit {n:02d} rewrites it")
    return gaps


# ------------------------------------------------------------------ the probe traces
PROBE_EVERY = 8          # every 8th conformance trace ...
PROBE_CHANGED = 12       # ... and the first 12 whose expected result changes at the rung


def probe_vectors(n: int) -> list[dict]:
    """The conformance vectors the quick tier runs for rung ``n``: the first
    PROBE_CHANGED whose real result changed at commit n, and every
    PROBE_EVERY-th of the others."""
    from .conformance import expected, vectors
    changed = [i for i, v in enumerate(vectors()) if expected(v, n) != expected(v, n - 1)][:PROBE_CHANGED]
    return [v for i, v in enumerate(vectors()) if i % PROBE_EVERY == 0 or i in changed]


def probe_traces(n: int) -> list:
    """The traces the quick tier's representation check runs: the register
    entries' traces of rung ``n`` and the probe vectors' traces."""
    from .register import entries_of
    traces = [validate(e.trace) for e in entries_of(n) if e.trace is not None]
    return traces + [validate(v["trace"]) for v in probe_vectors(n)]


# ------------------------------------------------------------------ what commit N is about
ASPECT_TEXT = {"behaviour": "behaviour", "representation": "representation", "api": "API surface",
               "calls": "calls", "refusals": "refusals", "cost": "cost shape", "declarations": "declarations",
               "source": "source"}


@cache
def aspects(n: int) -> tuple[Aspect, ...]:
    """What done means for commit ``n``: behaviour, then every structural
    aspect the commit changes, read off stages n-1 and n."""
    from . import counting
    from .register import entries_of
    from stages import LAST
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= LAST:
        raise ValueError(f"commit {n!r}: commits are 1 to {LAST}")
    out = []
    entries = entries_of(n)
    if entries:
        out.append(Aspect("behaviour", f"behaves as stage {n - 1:02d} except for the register's "
                                       f"{len(entries)} behaviour change(s) of commit {n:02d}, bugs included",
                          [f"{e.id} ({e.status}): {e.what}" for e in entries]))
    else:
        out.append(Aspect("behaviour", f"behaviour kept: the same results as stage {n - 1:02d} on every "
                                       f"trace and call"))
    a, b = stage_layout(n - 1), stage_layout(n)
    if a != b:
        out.append(Aspect("representation", f"the dirty state is held differently: your raw state must be "
                                            f"commit {n:02d}'s, byte for byte or word for word",
                          [f"stage {n - 1:02d}: {layout_text(a)}", f"commit {n:02d}: {layout_text(b)}"]))
    gaps = api_gaps(stage(n - 1), n, f"stage {n - 1:02d}")
    if gaps:
        out.append(Aspect("api", "the functions, their parameters or the constants change", gaps))
    before, after = _stage_edges(n - 1), _stage_edges(n)
    if before != after:
        out.append(Aspect("calls", f"who calls whom changes: each function must call what commit {n:02d}'s calls",
                          [f"now: {t}" for t in edges_text(after - before)]
                          + [f"no longer: {t}" for t in edges_text(before - after)]))
    refusals = _refusal_change(n)
    if refusals:
        out.append(Aspect("refusals", "what the functions do with a client number outside the three "
                                      "(C's assertions) changes", refusals))
    changed = counting.changed_ops(n)
    if changed:
        shapes_a, shapes_b = counting.stage_shapes(n - 1), counting.stage_shapes(n)
        out.append(Aspect("cost", "an operation changes the order of its work (counted, not timed)",
                          [f"{op}: {counting.ORDER_TEXT[shapes_a[op].order]} -> "
                           f"{counting.ORDER_TEXT[shapes_b[op].order]}" for op in changed]))
    if stage(n).DECLARED_IN != stage(n - 1).DECLARED_IN:
        out.append(Aspect("declarations", "where the C declares names changes (DECLARED_IN)",
                          declaration_gaps(stage(n - 1), n, f"stage {n - 1:02d}")))
    if not entries and {x.name for x in out} <= {"behaviour", "declarations"} and changed_functions(n):
        out.append(Aspect("source", "a local rewrite that no check can see from outside: the functions it "
                                    "rewrites must be rewritten, and behave as before",
                          [f"{name}" for name in changed_functions(n)]))
    return tuple(out)


def text_only(n: int) -> bool:
    """A commit with no Python change but where the C declares things."""
    return [a.name for a in aspects(n)] == ["behaviour", "declarations"] and not changed_functions(n)
