"""The ladder as data: what the command line, the book and the exercises show.

- :func:`api_of` -- the dirty API of stage N: its functions (signature, the C
  file that declares each, the stage that last changed it, the source) and
  constants, and how it represents the dirty state;
- :func:`compute_diff` -- what changed between two stages: functions added,
  removed and renamed, signatures, constants, declarations, representation,
  the source diff of each changed function, and the register's entries;
- :func:`load_register_safely` / :func:`entries_by_rung` -- the divergence
  register, per rung.

Everything here is read off the stage classes, their modules and the
register files; nothing is written twice.
"""

from __future__ import annotations

import ast
import difflib
import inspect
import re
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stages import stage
from stages.common import removed

# Class attributes that describe a stage rather than belong to its API.
META = frozenset({"STAGE", "TITLE", "UPSTREAM", "KIND", "DECLARED_IN"})


def warn(line: str) -> None:
    print(line, file=sys.stderr)


def module_path(module_name: str) -> str:
    return module_name.replace(".", "/") + ".py"


def stage_label(n: int) -> str:
    return f"{n:02d}"


# ------------------------------------------------------------------ the API of a stage
def resolve(cls: type, name: str) -> tuple[type | None, Any]:
    """The class of the MRO whose ``__dict__`` holds ``name``, and the raw value there."""
    for klass in cls.__mro__:
        if name in vars(klass):
            return klass, vars(klass)[name]
    return None, None


def _format_annotation(ann: Any) -> str:
    if isinstance(ann, str):
        return ann
    return inspect.formatannotation(ann)


def format_signature(sig: inspect.Signature) -> str:
    params = []
    for p in sig.parameters.values():
        text = p.name
        if p.kind is p.VAR_POSITIONAL:
            text = "*" + text
        elif p.kind is p.VAR_KEYWORD:
            text = "**" + text
        if p.annotation is not p.empty:
            text += ": " + _format_annotation(p.annotation)
        if p.default is not p.empty:
            text += (" = " if p.annotation is not p.empty else "=") + repr(p.default)
        params.append(text)
    ret = ""
    if sig.return_annotation is not sig.empty:
        ret = " -> " + _format_annotation(sig.return_annotation)
    return f"({', '.join(params)}){ret}"


@dataclass
class Function:
    name: str
    func: Callable                  # the underlying function
    owner: type                     # the class whose __dict__ holds the name (last change)
    signature: str                  # without self
    params: list[str]
    returns: str
    declared_in: str | None

    @property
    def last_changed(self) -> int:
        return self.owner.STAGE

    @property
    def source(self) -> str:
        try:
            return textwrap.dedent(inspect.getsource(self.func))
        except (OSError, TypeError):
            return f"# source of {self.name} not available\n"

    @property
    def inlined_source(self) -> str:
        """The source with each ``super().NAME(...)`` statement replaced by the
        body it inherits (recursively), so a wrapper reads as the code it runs."""
        return inline_super(self)

    @property
    def written_in(self) -> str:
        """Where the source was written: module path and first line."""
        try:
            _, line = inspect.getsourcelines(self.func)
        except (OSError, TypeError):
            line = 0
        return f"{module_path(self.func.__module__)}:{line}"

    @property
    def alias_of(self) -> str | None:
        """The name the function was written under, when bound under another."""
        return self.func.__name__ if self.func.__name__ != self.name else None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "signature": self.signature, "declared_in": self.declared_in,
                "last_changed": self.last_changed, "defined_in": module_path(self.owner.__module__),
                "written_in": self.written_in, "alias_of": self.alias_of}


def function_of(cls: type, name: str) -> Function | None:
    owner, raw = resolve(cls, name)
    if owner is None or isinstance(raw, removed):
        return None
    if isinstance(raw, staticmethod):
        func, drop_self = raw.__func__, False
    elif isinstance(raw, classmethod):
        func, drop_self = raw.__func__, True
    elif inspect.isfunction(raw):
        func, drop_self = raw, True
    else:
        return None
    try:
        sig = inspect.signature(func, eval_str=True)
    except Exception:                  # noqa: BLE001 -- an annotation that does not evaluate
        sig = inspect.signature(func)
    params = list(sig.parameters.values())
    if drop_self and params:
        params = params[1:]
    sig = sig.replace(parameters=params)
    returns = "" if sig.return_annotation is sig.empty else _format_annotation(sig.return_annotation)
    return Function(name, func, owner, format_signature(sig), [p.name for p in params], returns,
                    cls.DECLARED_IN.get(name))


def _super_calls(tree: ast.AST) -> list[tuple[ast.stmt, ast.Call, str]]:
    """``return super().NAME(...)`` and ``super().NAME(...)`` statements."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Return, ast.Expr)) and isinstance(node.value, ast.Call):
            func = node.value.func
            if (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Call)
                    and isinstance(func.value.func, ast.Name) and func.value.func.id == "super"
                    and not func.value.args):
                found.append((node, node.value, func.attr))
    return found


def _body_lines(source: str) -> list[str]:
    """The lines of a function's body (after its ``def`` and signature), dedented."""
    tree = ast.parse(source)
    fdef = tree.body[0]
    assert isinstance(fdef, ast.FunctionDef)
    lines = source.splitlines()
    first = fdef.body[0].lineno - 1
    if (isinstance(fdef.body[0], ast.Expr) and isinstance(fdef.body[0].value, ast.Constant)
            and isinstance(fdef.body[0].value.value, str) and len(fdef.body) > 1):
        first = fdef.body[1].lineno - 1                      # leave the docstring out
    return textwrap.dedent("\n".join(lines[first:])).splitlines()


def inline_super(fn: Function) -> str:
    source = fn.source
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    calls = _super_calls(tree)
    if not calls:
        return source
    lines = source.splitlines()
    fdef = tree.body[0]
    parent_cls = fn.owner.__mro__[1]
    for node, call, name in sorted(calls, key=lambda c: -c[0].lineno):
        parent = function_of(parent_cls, name)
        if parent is None:
            continue
        indent = lines[node.lineno - 1][:len(lines[node.lineno - 1]) - len(lines[node.lineno - 1].lstrip())]
        body = _body_lines(parent.inlined_source)
        if isinstance(node, ast.Expr):           # the parent's result is not used here
            body = [line[len("return "):] + "  # (result unused)" if line.startswith("return ")
                    else line for line in body]
            body = [line for line in body if line != "return"]
        params = list(parent.params)
        bind = []
        for param, arg in zip(params, call.args):
            text = ast.unparse(arg)
            if text != param:
                bind.append(f"{param} = {text}")
        for kw in call.keywords:
            if kw.arg and ast.unparse(kw.value) != kw.arg:
                bind.append(f"{kw.arg} = {ast.unparse(kw.value)}")
        where = f"stage {parent.last_changed:02d}, {parent.written_in}"
        new = ([f"{indent}# super().{name}(...) inlined: the body in force at {where}"]
               + [indent + line if line else "" for line in bind + body]
               + [f"{indent}# end of stage {parent.last_changed:02d}'s body"])
        lines[node.lineno - 1:node.end_lineno] = new
    del fdef
    return "\n".join(lines) + "\n"


@dataclass
class Constant:
    name: str
    value: int
    owner: type
    declared_in: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "declared_in": self.declared_in,
                "last_changed": self.owner.STAGE}


@dataclass
class Api:
    cls: type
    functions: dict[str, Function]
    constants: dict[str, Constant]
    other: dict[str, str]           # DECLARED_IN names that are neither (types)
    representation: str             # "bytes" | "bitmaps"
    bytes_per_page: float
    bitmaps: int

    @property
    def n(self) -> int:
        return self.cls.STAGE

    def repr_dict(self) -> dict[str, Any]:
        if self.representation == "bytes":
            store = "ram_list.phys_dirty: one uint8 of flags per page"
        else:
            store = f"ram_list.dirty_memory: {self.bitmaps} bitmaps of uint64 words, one bit per page each"
        return {"kind": self.representation, "bytes_per_page": self.bytes_per_page, "store": store}


def api_of(n: int, cls: type | None = None) -> Api:
    """The API of stage ``n`` (or of ``cls``, a class standing in for it)."""
    from .machine import Machine
    from .views import representation

    cls = stage(n) if cls is None else cls
    functions, constants = {}, {}
    for name in sorted(dir(cls)):
        if name.startswith("_") or name in META:
            continue
        fn = function_of(cls, name)
        if fn is not None:
            functions[name] = fn
            continue
        owner, raw = resolve(cls, name)
        if (owner is not None and name.isupper() and isinstance(raw, int)
                and not isinstance(raw, bool)):
            constants[name] = Constant(name, raw, owner, cls.DECLARED_IN.get(name))
    other = {}
    for name, where in cls.DECLARED_IN.items():
        if name in functions or name in constants:
            continue
        owner, raw = resolve(cls, name)
        if isinstance(raw, removed):
            continue                # declared in C no longer: the class removed it
        other[name] = where
    st = Machine(cls).stage
    kind = representation(st)
    if kind == "bytes":
        bitmaps, per_page = 0, float(st.ram_list.phys_dirty.itemsize)
    else:
        bitmaps = len(st.ram_list.dirty_memory)
        per_page = bitmaps / 8
    return Api(cls, functions, constants, other, kind, per_page, bitmaps)


def bytes_text(x: float) -> str:
    return f"{x:g} byte" + ("" if x == 1 else "s")


def per_page_text(api: Api) -> str:
    if api.representation == "bytes":
        return f"one flag byte per page: {bytes_text(api.bytes_per_page)} per page"
    return f"{api.bitmaps} bitmaps, {api.bitmaps} bits per page: {bytes_text(api.bytes_per_page)} per page"


# ------------------------------------------------------------------ the register
def load_register_safely() -> list | None:
    """The register's entries, or None (with a warning) when it cannot be read."""
    from . import rungs as ladder
    try:
        return list(ladder.load_register())
    except Exception as exc:           # noqa: BLE001 -- e.g. a register being edited
        warn(f"warning: cannot read the divergence register: {' '.join(str(exc).split())}")
        return None


def entries_by_rung(register: list) -> dict[int, list]:
    out_: dict[int, list] = {}
    for entry in register:
        out_.setdefault(entry.rung, []).append(entry)
    return out_


def spans(numbers: list[int]) -> str:
    spans: list[list[int]] = []
    for k in numbers:
        if spans and spans[-1][1] == k - 1:
            spans[-1][1] = k
        else:
            spans.append([k, k])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in spans)


def _body(fn: Function) -> str:
    """The function's source without its ``def`` line(s), its own name
    replaced by a placeholder (a rename changes the name in messages too)."""
    src = fn.source
    lines = src.splitlines()
    # drop decorators and the header up to the line ending the signature
    i = 0
    while i < len(lines) and not lines[i].lstrip().startswith("def "):
        i += 1
    while i < len(lines) and not re.search(r":\s*(#.*)?$", lines[i]):
        i += 1
    body = "\n".join(lines[i + 1:])
    return body.replace(fn.func.__name__, "\0NAME\0").replace(fn.name, "\0NAME\0")


def _renames(a: Api, b: Api, removed_names: list[str], added_names: list[str]) -> list[dict]:
    out_, taken = [], set()
    for r in removed_names:
        fa = a.functions[r]
        best = None
        for n in added_names:
            if n in taken:
                continue
            fb = b.functions[n]
            if fa.func is fb.func:
                best = (n, True, "same function object", 1.0)
                break
            if _body(fa) == _body(fb):
                best = (n, True, "same body", 1.0)
                break
            ratio = difflib.SequenceMatcher(None, _body(fa), _body(fb)).ratio()
            if ratio >= 0.6 and (best is None or ratio > best[3]):
                best = (n, False, f"body changed, {ratio:.0%} similar", ratio)
        if best:
            taken.add(best[0])
            out_.append({"from": r, "to": best[0], "likely": best[1], "reason": best[2]})
    return out_


def _param_changes(fa: Function, fb: Function) -> dict[str, Any]:
    change: dict[str, Any] = {"name": fb.name, "from": fa.signature, "to": fb.signature}
    if fa.params != fb.params:
        change["parameters"] = {"from": fa.params, "to": fb.params}
    if fa.returns != fb.returns:
        change["returns"] = {"from": fa.returns or None, "to": fb.returns or None}
    return change


def _source_diff(fa: Function, fb: Function, a: Api, b: Api, inline: bool = False) -> str:
    sa, sb = (fa.inlined_source, fb.inlined_source) if inline else (fa.source, fb.source)
    return "".join(difflib.unified_diff(
        sa.splitlines(keepends=True), sb.splitlines(keepends=True),
        fromfile=f"stage {a.n:02d}: {fa.name} ({fa.written_in})",
        tofile=f"stage {b.n:02d}: {fb.name} ({fb.written_in})"))


def compute_diff(n: int, m: int, classes: dict[int, type] | None = None,
                 inline: bool = False) -> dict[str, Any]:
    """What changed from stage ``n`` to ``m``.  ``classes`` maps a stage number
    to a class standing in for it (a user's module); ``inline`` shows
    inherited code in place of ``super()`` calls in the source diffs."""
    classes = classes or {}
    a, b = api_of(n, classes.get(n)), api_of(m, classes.get(m))
    lo, hi = sorted((n, m))
    commits = [{"stage": k, "title": stage(k).TITLE, "upstream": stage(k).UPSTREAM, "kind": stage(k).KIND}
               for k in range(lo + 1, hi + 1)]
    removed_names = sorted(set(a.functions) - set(b.functions))
    added_names = sorted(set(b.functions) - set(a.functions))
    renames = _renames(a, b, removed_names, added_names)
    likely_from = {r["from"] for r in renames if r["likely"]}
    likely_to = {r["to"] for r in renames if r["likely"]}
    common = sorted(set(a.functions) & set(b.functions))
    signature_changes, changed, declarations = [], [], []
    for name in common:
        fa, fb = a.functions[name], b.functions[name]
        if fa.signature != fb.signature:
            signature_changes.append(_param_changes(fa, fb))
        if fa.func is not fb.func:
            diff = _source_diff(fa, fb, a, b, inline)
            changed.append({"name": name, "from_stage": fa.last_changed, "to_stage": fb.last_changed,
                            "diff": diff or "(redefined with the same source)\n"})
    for r in renames:
        fa, fb = a.functions[r["from"]], b.functions[r["to"]]
        if fa.signature.replace(fa.name, "") != fb.signature.replace(fb.name, ""):
            signature_changes.append({**_param_changes(fa, fb), "name": f"{fa.name} -> {fb.name}"})
        if fa.func is not fb.func:
            changed.append({"name": f"{fa.name} -> {fb.name}", "from_stage": fa.last_changed,
                            "to_stage": fb.last_changed, "diff": _source_diff(fa, fb, a, b, inline)})
    da, db = a.cls.DECLARED_IN, b.cls.DECLARED_IN
    present_a = set(a.functions) | set(a.constants) | set(a.other)
    present_b = set(b.functions) | set(b.constants) | set(b.other)
    for name in sorted(present_a & present_b):
        if da.get(name) != db.get(name):
            declarations.append({"name": name, "from": da.get(name), "to": db.get(name)})
    ca, cb = a.constants, b.constants
    constants = {
        "added": {k: cb[k].value for k in sorted(set(cb) - set(ca))},
        "removed": {k: ca[k].value for k in sorted(set(ca) - set(cb))},
        "changed": {k: [ca[k].value, cb[k].value] for k in sorted(set(ca) & set(cb))
                    if ca[k].value != cb[k].value},
    }
    register = load_register_safely()
    divergences = [{"id": e.id, "rung": e.rung, "status": e.status, "what": e.what}
                   for e in register or [] if lo < e.rung <= hi]
    doc = ""
    if hi - lo == 1:
        import importlib
        doc = inspect.getdoc(importlib.import_module(b.cls.__module__ if hi == m else a.cls.__module__)) or ""
    return {
        "from": n, "to": m, "commits": commits, "message": doc,
        "added": [{"name": k, "signature": b.functions[k].signature,
                   "declared_in": b.functions[k].declared_in} for k in added_names if k not in likely_to],
        "removed": [{"name": k, "signature": a.functions[k].signature,
                     "declared_in": a.functions[k].declared_in} for k in removed_names if k not in likely_from],
        "renamed": renames,
        "signature_changes": signature_changes,
        "declarations_moved": declarations,
        "constants": constants,
        "representation": {"from": a.repr_dict(), "to": b.repr_dict(),
                           "changed": a.representation != b.representation},
        "changed_functions": changed,
        "divergences": divergences,
    }
