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
import functools
import inspect
import math
import re
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stages import LAST as LAST_STAGE, stage
from stages.common import removed

# Class attributes that describe a stage rather than belong to its API.
META = frozenset({"STAGE", "TITLE", "UPSTREAM", "KIND", "DECLARED_IN"})


def warn(line: str) -> None:
    print(line, file=sys.stderr)


def exception_text(exc: BaseException) -> str:
    """An exception in one line: its type and its message, or its type
    alone when it has none (``ZeroDivisionError``, not ``ZeroDivisionError:``)."""
    message = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


USER_MODULE_PREFIX = "dirty_ladder_user_"     # the module name a user's stage file is loaded under (in stages.)


def module_path(module_name: str) -> str:
    """Where a module's source is: a path in the project (stages/s19_...py),
    or, for a user's stage file, the path it was given as."""
    module = sys.modules.get(module_name)
    file = getattr(module, "__file__", None)
    if not module_name.rpartition(".")[2].startswith(USER_MODULE_PREFIX) or not file:
        return module_name.replace(".", "/") + ".py"
    return file


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
    from .register import load_register
    try:
        return list(load_register())
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
                            "diff": diff or f"{name}: redefined with the same source\n"})
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
        "stand_in": sorted(k for k in classes if lo <= k <= hi),
    }


# ------------------------------------------------------------------ a stage's own words
REPO = __import__("pathlib").Path(__file__).resolve().parent.parent
DATA = REPO / "dirty_ladder" / "data"


def shipped_file(name: str):
    """``name`` (CHANGELOG.md, docs/bench.json) in the checkout, or, in an
    installed (not editable) copy where there is no checkout, the copy that
    setup.py's build put in dirty_ladder/data/."""
    in_checkout = REPO / name
    if (REPO / "pyproject.toml").is_file() or not (DATA / in_checkout.name).is_file():
        return in_checkout
    return DATA / in_checkout.name


UPSTREAM_URL = "https://gitlab.com/qemu-project/qemu/-/commit/{hash}"


@dataclass
class StageDoc:
    """A stage module's docstring, split as every docstring is written:
    the title line, the ``Upstream:`` and ``Kind:`` paragraphs, then the body,
    which says what the commit changed (``what``) and, from its first
    sentence about behaviour on, why behaviour is kept or where it is not
    (``why``)."""
    n: int
    title: str
    upstream: str | None
    kind: str
    module: str
    upstream_note: str      # the "Upstream: ..." paragraph, joined
    body: str
    what: str
    why: str

    @property
    def upstream_url(self) -> str | None:
        # "4f08cabe9 (header half)": the hash is the first word
        return UPSTREAM_URL.format(hash=self.upstream.split()[0]) if self.upstream else None


_BEHAVIOUR = re.compile(r"\bbehaviou?r\b", re.IGNORECASE)


def _split_why(body: str) -> tuple[str, str]:
    m = _BEHAVIOUR.search(body)
    if not m:
        return body.strip(), ""
    # back to the start of the sentence (or paragraph) that mentions behaviour
    head = body[:m.start()]
    cut = max([0] + [m2.end() for m2 in re.finditer(r"\.\s+|\n\n", head)])
    return body[:cut].strip(), body[cut:].strip()


def stage_doc(n: int, cls: type | None = None) -> StageDoc:
    import importlib
    cls = stage(n) if cls is None else cls
    doc = inspect.getdoc(importlib.import_module(cls.__module__)) or ""
    paragraphs = [p for p in doc.split("\n\n")]
    rest, upstream_note = [], ""
    for i, para in enumerate(paragraphs):
        if i == 0:
            continue                                  # "Stage NN: title"
        if para.startswith("Upstream:"):
            upstream_note = " ".join(para[len("Upstream:"):].split())
        elif para.startswith("Kind:"):
            pass
        elif not upstream_note and i == 1:
            rest.append(para)
        else:
            rest.append(para)
    body = "\n\n".join(rest)
    what, why = _split_why(body)
    return StageDoc(cls.STAGE, cls.TITLE, cls.UPSTREAM, cls.KIND, module_path(cls.__module__),
                    upstream_note, body, what, why)


def changelog_entries(path=None) -> dict[int, str]:
    """CHANGELOG.md's "## Stage NN: title" entries, by stage (empty when the
    file is not there)."""
    path = shipped_file("CHANGELOG.md") if path is None else path
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return {}
    out_: dict[int, str] = {}
    for part in re.split(r"^## ", text, flags=re.MULTILINE)[1:]:
        m = re.match(r"Stage (\d+): ", part)
        if m:
            out_[int(m.group(1))] = "## " + part.strip() + "\n"
    return out_


# ------------------------------------------------------------------ one function's history
def function_history(name: str) -> list[dict[str, Any]]:
    """``git log -L`` for the ladder: each rung that added, changed, renamed,
    re-declared or removed ``name`` (following renames both ways), with its
    diff.  Empty when no stage ever had such a function."""
    diffs = [compute_diff(k - 1, k) for k in range(1, LAST_STAGE + 1)]
    names = {name}
    grew = True
    while grew:                                           # the rename chain, both ways
        grew = False
        for d in diffs:
            for r in d["renamed"]:
                if (r["from"] in names) != (r["to"] in names):
                    names |= {r["from"], r["to"]}
                    grew = True
    out_: list[dict[str, Any]] = []
    first = next((k for k in range(LAST_STAGE + 1) if any(function_of(stage(k), x) for x in names)), None)
    if first is None:
        return []
    if first == 0:
        fn = next(function_of(stage(0), x) for x in names if function_of(stage(0), x))
        out_.append({"stage": 0, "change": "present before the series", "name": fn.name,
                     "signature": fn.signature, "diff": fn.source})
    for k, d in enumerate(diffs, 1):
        events = []
        for a in d["added"]:
            if a["name"] in names:
                fn = function_of(stage(k), a["name"])
                events.append(("added", a["name"], "".join(difflib.unified_diff(
                    [], fn.source.splitlines(keepends=True), "/dev/null",
                    f"stage {k:02d}: {fn.name} ({fn.written_in})"))))
        for r in d["removed"]:
            if r["name"] in names:
                events.append(("removed", r["name"], ""))
        for r in d["renamed"]:
            if r["to"] in names:
                events = [e for e in events if not (e[0] in ("added", "removed")
                                                    and e[1] in (r["from"], r["to"]))]
                events.append(("renamed", f"{r['from']} -> {r['to']}", ""))
        for c in d["changed_functions"]:
            parts = [p.strip() for p in c["name"].split("->")]
            if parts[-1] in names:
                events = [e for e in events if e[0] != "renamed"]
                kind = "renamed and changed" if len(parts) > 1 else "changed"
                events.append((kind, c["name"], c["diff"]))
        for s in d["signature_changes"]:
            if s["name"].split(" -> ")[-1] in names and not any(e[0] != "removed" for e in events):
                events.append(("signature changed", s["name"], f"{s['from']}  ->  {s['to']}\n"))
        for x in d["declarations_moved"]:
            if x["name"] in names:
                events.append(("declaration moved", x["name"], f"{x['from']} -> {x['to']}\n"))
        for kind, what, diff in events:
            out_.append({"stage": k, "change": kind, "name": what, "title": d["commits"][0]["title"],
                         "kind": d["commits"][0]["kind"], "diff": diff})
    return out_


# ------------------------------------------------------------------ the register, replayed
def observables(result: dict[str, Any], ops: list[dict] | None = None) -> list[tuple[str, Any]]:
    """A replay's result (or an API call's outcome) as rows (name, value):
    each op's result, then each field of the state, one level down."""
    rows: list[tuple[str, Any]] = []
    if "results" in result:
        for i, value in enumerate(result["results"]):
            label = f"results[{i}]"
            if ops is not None and i < len(ops):
                label += " " + ops[i]["op"]
            rows.append((label, value))
    state = result.get("state", {k: v for k, v in result.items() if k not in ("format", "stage", "results")})
    for key, value in state.items():
        if isinstance(value, dict) and value and key != "migration":
            rows += [(f"{key}.{k}", v) for k, v in value.items()]
        else:
            rows.append((key, value))
    return rows


def side_by_side(before: dict[str, Any], after: dict[str, Any], ops: list[dict] | None = None
                 ) -> list[dict[str, Any]]:
    a, b = dict(observables(before, ops)), dict(observables(after, ops))
    keys = list(a) + [k for k in b if k not in a]
    return [{"name": k, "before": a.get(k), "after": b.get(k), "differs": a.get(k) != b.get(k)} for k in keys]


def replay_on(n: int, trace, cls: type | None = None) -> dict[str, Any]:
    """The ``dirty-trace-result/1`` object of ``trace`` on stage ``n`` (or on
    ``cls`` standing in for it): the replay every face shows."""
    from .machine import replay
    return replay(stage(n) if cls is None else cls, trace)


def raw_text(n: int, trace) -> tuple[str, str]:
    """Stage ``n``'s dirty representation itself after ``trace``, as the
    repr level of the rung check compares it: its kind ("flag bytes" or
    "bitmap words") and its bytes in hex, one group per byte or word."""
    from .machine import Machine
    from .views import raw_state, representation
    machine = Machine(stage(n), trace.config)
    for op in trace.ops:
        machine.run_op(op)
    if representation(machine.stage) == "bytes":
        return "flag bytes", raw_state(machine.stage).hex(" ")
    return "bitmap words", " | ".join(" ".join(f"{int(w):016x}" for w in m)
                                      for m in machine.stage.ram_list.dirty_memory)


def representation_row(before_n: int, after_n: int, trace) -> dict[str, Any]:
    """The row a representation-level entry adds to its replay table: what
    an observer sees is the same, the bytes are not."""
    (kind, before), (kind_after, after) = raw_text(before_n, trace), raw_text(after_n, trace)
    name = f"repr: {kind}" if kind == kind_after else f"repr: {kind} / {kind_after}"
    return {"name": name, "before": before, "after": after, "differs": before != after}


def entry_replay(entry) -> dict[str, Any]:
    """A register entry's minimal trace (and/or call) run on the stages
    before and after its rung, the observables side by side; for an entry
    that shows only in the representation, its bytes too."""
    from .compare import api_case, run_api_case
    from .trace import validate
    out_: dict[str, Any] = {"id": entry.id, "rung": entry.rung, "before_stage": entry.rung - 1,
                            "after_stage": entry.rung}
    if entry.trace is not None:
        trace = validate(entry.trace)
        before, after = replay_on(entry.rung - 1, trace), replay_on(entry.rung, trace)
        rows = side_by_side(before, after, trace.ops)
        if entry.levels & {"repr", "machine"} == {"repr"}:      # no observer sees it: show the bytes
            rows.append(representation_row(entry.rung - 1, entry.rung, trace))
        out_["trace"] = {"trace": trace.as_dict(), "before": before, "after": after, "rows": rows}
    if entry.call is not None:
        case = api_case(entry.call)
        before, after = run_api_case(stage(entry.rung - 1), case), run_api_case(stage(entry.rung), case)
        out_["call"] = {"call": entry.call, "describe": case.describe(stage(entry.rung)), "before": before, "after": after,
                        "rows": side_by_side(before, after)}
    return out_


def override_source(entry) -> str:
    """The entry's behaviour change as code: its override class in bridges.py."""
    from .bridges import OVERRIDES
    cls = OVERRIDES.get(entry.override)
    if cls is None:
        return ""
    try:
        return textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return ""


def entry_dict(entry) -> dict[str, Any]:
    """A register entry as data; ``call_file`` is its call as a dirty-call/1
    object, ready to save and ``replay``."""
    from .compare import call_file
    return {"id": entry.id, "rung": entry.rung, "status": entry.status, "what": entry.what,
            "explanation": entry.explanation, "fixed_upstream": entry.fixed_upstream,
            "signatures": entry.signatures, "scope": entry.scope, "override": entry.override,
            "override_source": override_source(entry), "trace": entry.trace, "call": entry.call,
            "call_file": None if entry.call is None else call_file(entry.call)}


def invariant_breaks() -> list:
    from . import invariants
    return invariants.load_register()


def breaks_from(n: int, breaks: list | None = None) -> list:
    """The invariant breaks (dirty_ladder/invariants.toml) that begin at stage ``n``."""
    breaks = invariant_breaks() if breaks is None else breaks
    return [b for b in breaks if b.stages and b.stages[0] == n]


# ------------------------------------------------------------------ what done means
def done_means(n: int) -> list[dict[str, Any]]:
    """What commit ``n`` changes besides behaviour, read off the ladder
    (dirty_ladder/structure.py): behaviour, then each structural aspect
    that applies (representation, api, calls, refusals, cost, declarations,
    source), each ``{"name", "what", "details"}``.  What ``exercise N`` and
    ``verify`` print, for the tour and the book too.  About half a second a
    commit the first time (the cost shapes are counted), cached after."""
    from .structure import aspects
    return [a.as_dict() for a in aspects(n)]


# ------------------------------------------------------------------ the bench's results
def bench_path():
    import os
    from pathlib import Path
    return Path(os.environ.get("DIRTY_LADDER_BENCH") or shipped_file("docs/bench.json"))


def load_bench() -> dict[str, Any] | None:
    """docs/bench.json (or $DIRTY_LADDER_BENCH), or None when it is not there."""
    import json
    try:
        return json.loads(bench_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def repeat_spread(samples: list[float]) -> float:
    """How far one measurement's repeats lie apart: (max - min) / median."""
    import statistics
    middle = statistics.median(samples)
    return (max(samples) - min(samples)) / middle if middle > 0 else 0.0


def bench_noise(bench: dict[str, Any] | None) -> float:
    """The bench's own noise: the median repeat spread of all its page-cost
    measurements (every operation at every stage)."""
    import statistics
    spreads = [repeat_spread([x / m["pages"] for x in m["samples_ns"]])
               for r in (bench or {}).get("stages", []) for m in r.get("measured", {}).values()
               if m and m.get("samples_ns")]
    return statistics.median(spreads) if spreads else 0.0


NOISE_FACTOR = 2      # a change is shown when larger than twice the repeats' spread


# The function each operation of the bench calls at every stage (as
# bench/measure.py's make_op calls it): the first name the stage has.
OP_FUNCTIONS = {
    "sync": ("migration_bitmap_sync",),
    "setup": ("ram_save_setup",),
    "set_range": ("cpu_physical_memory_set_dirty_range",),
    "clear_range": ("cpu_physical_memory_clear_dirty_range", "cpu_physical_memory_mask_dirty_range"),
    "get_dirty": ("cpu_physical_memory_get_dirty",),
}


@functools.cache
def machine_callbacks(service: str) -> frozenset[str]:
    """The stage functions a service of the machine calls back (``self.stage.X``
    in machine.py, through the machine's own methods): the KVM log sync
    (``address_space_sync_dirty_bitmap``) calls ``kvm_get_dirty_pages_log_range``."""
    import textwrap
    from .machine import Machine
    out: set[str] = set()
    todo, seen = [service], set()
    while todo:
        name = todo.pop()
        fn = getattr(Machine, name, None)
        if name in seen or not inspect.isfunction(fn):
            continue
        seen.add(name)
        for node in ast.walk(ast.parse(textwrap.dedent(inspect.getsource(fn)))):
            if not isinstance(node, ast.Attribute):
                continue
            base = node.value
            if isinstance(base, ast.Attribute) and base.attr == "stage" and \
                    isinstance(base.value, ast.Name) and base.value.id == "self":
                out.add(node.attr)
            elif isinstance(base, ast.Name) and base.id == "self" and inspect.isfunction(getattr(Machine, node.attr, None)):
                todo.append(node.attr)
    return frozenset(out)


@functools.cache
def functions_run(op: str, n: int) -> frozenset[str]:
    """The stage functions the bench's operation ``op`` runs at stage ``n``:
    its entry function and all it calls (structure.call_edges, read from the
    source), the machine's callbacks into the stage included."""
    from .structure import call_edges
    cls = stage(n)
    edges: dict[str, set[str]] = {}
    for caller, callee in call_edges(cls):
        edges.setdefault(caller, set()).add(callee)
    todo = [next(name for name in OP_FUNCTIONS[op] if function_of(cls, name) is not None)]
    out: set[str] = set()
    while todo:
        name = todo.pop()
        if name in out:
            continue
        out.add(name)
        todo += list(edges.get(name, ())) + list(machine_callbacks(name))
    return frozenset(out)


@functools.cache
def changed_by(n: int) -> frozenset[str]:
    """The functions commit ``n`` changed, as its API diff says (their source,
    or their name)."""
    diff = compute_diff(n - 1, n)
    names = {x for c in diff["changed_functions"] for x in c["name"].split(" -> ")}
    names |= {x for r in diff["renamed"] for x in (r["from"], r["to"])}
    return frozenset(names)


def cost_changes(n: int, bench: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The costs the bench saw change at rung ``n``, as this Python model's
    timings: those of :func:`noise_changes` whose operation runs, at stage
    ``n - 1`` or ``n``, a function commit ``n`` changed (:func:`changed_by`,
    :func:`functions_run`).  A change anywhere else is the bench's, not the
    commit's (stage 39 changes no range function)."""
    return [c for c in noise_changes(n, bench)
            if (functions_run(c["op"], n - 1) | functions_run(c["op"], n)) & changed_by(n)]


def noise_changes(n: int, bench: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The costs the bench saw change at rung ``n`` by more than its own
    noise: every per-page timing at stage ``n`` lies outside the range of
    those at stage ``n - 1`` (min to max of the repeats), and the two medians
    differ by more than twice the larger of the two stages' repeat spreads
    and of the bench's median spread (:func:`bench_noise`).  Where the seed
    has a real figure for the same operation (the setup times of the v2
    cover letter, for the series as a whole), it is attached to the rung
    where the model's cost of that operation falls the most."""
    if not bench or n < 1:
        return []
    from .bench import OP_LABEL, OPS
    by = {r["stage"]: r for r in bench.get("stages", [])}
    if n not in by or n - 1 not in by:
        return []
    floor = bench_noise(bench)
    out_ = []
    for op in OPS:
        ma, mb = by[n - 1]["measured"].get(op), by[n]["measured"].get(op)
        if not ma or not mb:
            continue
        ra = [x / ma["pages"] for x in ma["samples_ns"]]
        rb = [x / mb["pages"] for x in mb["samples_ns"]]
        if not (max(rb) < min(ra) or min(rb) > max(ra)):
            continue
        before, after = by[n - 1][f"{op}_ns_per_page"], by[n][f"{op}_ns_per_page"]
        ratio = after / before
        noise = max(repeat_spread(ra), repeat_spread(rb), floor)
        if max(ratio, 1 / ratio) - 1 <= NOISE_FACTOR * noise:
            continue
        change = {"op": op, "label": OP_LABEL[op], "before_ns": before, "after_ns": after, "ratio": ratio,
                  "noise": noise, "source": "this Python model (docs/bench.json)"}
        if op == "setup" and n == _largest_fall(bench, op):
            change["seed"] = seed_figures(bench)
        out_.append(change)
    return out_


def _largest_fall(bench: dict[str, Any], op: str) -> int | None:
    """The rung where the model's per-page cost of ``op`` falls by the largest factor."""
    rows = sorted(bench.get("stages", []), key=lambda r: r["stage"])
    best, where = 1.0, None
    for a, b in zip(rows, rows[1:]):
        x, y = a.get(f"{op}_ns_per_page"), b.get(f"{op}_ns_per_page")
        if x and y and x / y > best and b["stage"] == a["stage"] + 1:
            best, where = x / y, b["stage"]
    return where


def seed_figures(bench: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The real setup times of the v2 cover letter (the tester's TCP
    migrations, before the series and with it), beside the model's setup of
    a guest of the same size, as the bench recorded them."""
    out_ = []
    for row in (bench or {}).get("setup_model", []):
        out_.append({"guest_gib": row["guest_gib"], "before_ms": row["seed_before_ms"],
                     "after_ms": row["seed_after_ms"], "ratio": row["seed_before_ms"] / row["seed_after_ms"],
                     "model_before_ms": row["stage00_ms"], "model_after_ms": row["stage39_ms"],
                     "model_ratio": row["stage00_ms"] / row["stage39_ms"]})
    return out_


def _ns(x: float) -> str:
    """A time in ns, three significant digits, never in e-notation."""
    if x >= 100 or x <= 0:
        return f"{x:,.0f}"
    decimals = 2 - math.floor(math.log10(x))         # three significant digits
    return f"{x:.{decimals}f}".rstrip("0").rstrip(".")


def factor_text(ratio: float) -> str:
    """A ratio of costs as a person says it: 1.5x / 4% / 16,202x, cheaper or dearer."""
    factor = 1 / ratio if ratio < 1 else ratio
    if factor >= 10:
        how = f"{factor:,.0f}x"
    elif factor >= 1.1:
        how = f"{factor:.1f}x"
    else:
        how = f"{(factor - 1) * 100:.0f}%"
    return how + (" cheaper" if ratio < 1 else " dearer")


MODEL = "in this Python model"


def cost_text(c: dict[str, Any]) -> str:
    """A cost change of the model, said to be the model's."""
    return f"{c['label']}: {_ns(c['before_ns'])} -> {_ns(c['after_ns'])} ns per page {MODEL} ({factor_text(c['ratio'])})"


def seed_text(s: dict[str, Any]) -> str:
    """A real figure of the v2 cover letter, said to be QEMU's."""
    return (f"QEMU itself, migration setup of a {s['guest_gib']} GB guest without and with the series: "
            f"{s['before_ms']:,} -> {s['after_ms']:,} ms ({s['ratio']:.0f}x; the tester's figures in the v2 cover "
            f"letter); the model, stage 00 -> 39: {s['model_ratio']:,.0f}x")


# ------------------------------------------------------------------ the tour
@dataclass
class Chapter:
    number: int
    id: str
    title: str
    problem: str
    look_at: str
    stages: list[int]
    select: str = ""            # "" for a span; a register status ("bug") for a chapter drawn from it
    result: str = ""            # what came of it in the real world, with its source


def load_tour(register: list | None = None) -> list[Chapter]:
    """dirty_ladder/tour.toml: the chapters' own prose and spans.  A chapter
    with ``select = "STATUS"`` takes the rungs of the register entries with
    that status, so it follows the register."""
    import tomllib
    from importlib import resources
    text = resources.files(__package__).joinpath("tour.toml").read_text(encoding="utf-8")
    chapters = []
    for i, c in enumerate(tomllib.loads(text)["chapter"], 1):
        if "select" in c:
            register = load_register_safely() if register is None else register
            numbers = sorted({e.rung for e in register or [] if e.status == c["select"]})
        else:
            first, last = c["stages"]
            numbers = list(range(first, last + 1))
        chapters.append(Chapter(i, c["id"], c["title"], paragraphs(c["problem"]), paragraphs(c["look_at"]),
                                numbers, c.get("select", ""), paragraphs(c.get("result", ""))))
    return chapters


def paragraphs(text: str) -> str:
    """Prose as written in the TOML files: each paragraph on one line, a
    blank line between paragraphs (Markdown reads it the same)."""
    return "\n\n".join(" ".join(p.split()) for p in text.strip().split("\n\n") if p.strip())


def find_chapter(chapters: list[Chapter], key: str) -> Chapter | None:
    """A chapter by its id or as ``chN`` (a bare number is a stage, not a chapter)."""
    for c in chapters:
        if key in (c.id, f"ch{c.number}"):
            return c
    return None


def tour_stage(n: int, register: list | None = None, bench: dict[str, Any] | None = None,
               breaks: list | None = None, inline: bool = False) -> dict[str, Any]:
    """Everything the tour shows of stage ``n``: its docstring, its diff from
    ``n - 1``, the register entries it caused (replayed), the invariant
    breaks that begin there, and its cost change."""
    register = load_register_safely() if register is None else register
    doc = stage_doc(n)
    entries = [e for e in register or [] if e.rung == n]
    return {
        "stage": n, "doc": doc,
        "diff": compute_diff(n - 1, n, inline=inline) if n else None,
        "entries": [{**entry_dict(e), "replay": entry_replay(e)} for e in entries],
        "breaks": breaks_from(n, breaks),
        "costs": cost_changes(n, bench),
    }


# ------------------------------------------------------------------ the glossary
@dataclass
class Term:
    id: str
    term: str
    aliases: list[str]          # the spellings the book links to the term (whole words, case-sensitive)
    stage: int                  # where it first matters
    text: str                   # Markdown, two or three sentences


def load_glossary() -> list[Term]:
    """dirty_ladder/glossary.toml: the terms the tour and the book use, in
    the order the file gives them."""
    import tomllib
    from importlib import resources
    text = resources.files(__package__).joinpath("glossary.toml").read_text(encoding="utf-8")
    return [Term(t["id"], t["term"], list(t.get("aliases", [])), int(t["stage"]), " ".join(t["text"].split()))
            for t in tomllib.loads(text)["term"]]
