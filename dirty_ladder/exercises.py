"""Exercises: redo one commit of the series yourself, and have the ladder check it.

- :func:`starter` -- the module ``dirty-ladder exercise N`` writes: a ``Stage``
  class that subclasses stage N-1 and holds stage N-1's code (inherited code
  inlined) for every name commit N changes, stubs for the names it adds, a
  note for the names it removes, the commit's title and description with
  its code said in words, and what done means for the commit (the aspects
  ``verify`` checks, read off the ladder);
- :func:`hints` -- graded hints: one to three a teacher wrote
  (``dirty_ladder/hints.toml``), then "what changed", read off the diff and
  the register;
- :func:`load_stage_file` -- import a user's module and return its ``Stage``
  class for stage N (``--stage-file``, ``verify``), with one-line errors;
- :func:`record_done`, :func:`record_started`, :func:`read_progress` -- the
  progress file (``$DIRTY_LADDER_PROGRESS``, else
  ``$XDG_STATE_HOME/dirty-ladder/progress.json``, else
  ``~/.local/state/dirty-ladder/progress.json``).
"""

from __future__ import annotations

import ast
import builtins
import datetime
import importlib.util
import json
import linecache
import os
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

from stages import LAST, MODULES, stage
from stages.common import removed

from . import files, model, structure

PROGRESS_FORMAT = "dirty-ladder-progress/1"
TOOLBOX = ("stages.bitmap", "stages.common")   # star-imported by every starter
# Class attributes a starter never copies (they describe the stage, or are Python's own).
SKIP = model.META | {"__module__", "__doc__", "__qualname__", "__firstlineno__", "__static_attributes__",
                     "__dict__", "__weakref__"}


class StageFileError(Exception):
    """A user's stage module that cannot stand in for a stage: one line, exit status 2."""


# ------------------------------------------------------------------ loading a user's module
def load_stage_file(path: str | os.PathLike, n: int | None) -> type:
    """The ``Stage`` class of the module at ``path``, checked to stand in for
    stage ``n`` (``None``: whichever stage its ``STAGE`` names).  The module
    is loaded inside the ``stages`` package, so a copy of a stage module
    with its relative imports (``from . import s26_find_next_bit as
    parent``) loads as the ladder's own do, and so does one that imports
    ``stages`` absolutely.  Raises :class:`StageFileError` with a one-line
    message when the file does not import (saying how to write its imports
    when that is why), has no ``Stage`` class, names another stage, or does
    not subclass the stage before it."""
    p = Path(path)
    if not p.is_file():
        raise StageFileError(f"{path}: no such file")
    name = "stages." + model.USER_MODULE_PREFIX + re.sub(r"\W", "_", p.stem) + f"_{abs(hash(str(p.resolve()))):x}"
    spec = importlib.util.spec_from_file_location(name, p)
    if spec is None or spec.loader is None:
        raise StageFileError(f"{path}: not a Python module")
    module = importlib.util.module_from_spec(spec)
    linecache.checkcache(str(p))                 # a file edited since it was last read (--watch)
    sys.modules[name] = module                   # inspect and the diff read it back by name
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        del sys.modules[name]
        raise StageFileError(f"{path}:{exc.lineno}: does not import: SyntaxError: {exc.msg}") from None
    except Exception as exc:                     # noqa: BLE001 -- the user's module failed: say how
        del sys.modules[name]
        line = ""
        tb = exc.__traceback__
        while tb is not None:
            if Path(tb.tb_frame.f_code.co_filename) == p:
                line = f":{tb.tb_lineno}"
            tb = tb.tb_next
        how = _import_advice(exc)
        if how:
            raise StageFileError(f"{path}{line}: {how}") from None
        raise StageFileError(f"{path}{line}: does not import: {model.exception_text(exc)}") from None
    cls = vars(module).get("Stage")
    if not isinstance(cls, type):
        raise StageFileError(f"{path}: no class Stage (the stage's class must be called Stage)")
    if "STAGE" not in vars(cls):
        inherited = getattr(cls, "STAGE", None)
        raise StageFileError(f"{path}: class Stage does not set STAGE"
                             + (f" (it would inherit {inherited} from its parent)" if inherited is not None else "")
                             + ": set STAGE = N, the stage it stands in for")
    got = getattr(cls, "STAGE", None)
    if isinstance(got, bool) or not isinstance(got, int) or not 0 <= got <= LAST:
        raise StageFileError(f"{path}: Stage.STAGE is {got!r}, not a stage number (0 to {LAST})")
    if n is not None and got != n:
        raise StageFileError(f"{path}: Stage.STAGE is {got}, not {n}: set STAGE = {n} in class Stage")
    if got > 0 and not issubclass(cls, stage(got - 1)):
        raise StageFileError(f"{path}: Stage does not subclass stage {got - 1:02d}'s Stage "
                             f"(from stages import {MODULES[got - 1]} as parent)")
    return cls


IMPORTS_HOW = ("write its imports as a stage module does (from . import s26_find_next_bit as parent; "
               "from .bitmap import bitmap_set) or absolutely (from stages import s26_find_next_bit as parent; "
               "from stages.bitmap import bitmap_set)")


def _import_advice(exc: BaseException) -> str:
    """How to write the imports, when ``exc`` is an import of the ladder's
    modules written another way ('' otherwise)."""
    if not isinstance(exc, ImportError):
        return ""
    missing = getattr(exc, "name", None) or ""
    ours = set(MODULES) | {"bitmap", "common"}
    if isinstance(exc, ModuleNotFoundError) and missing.split(".")[0] in ours:
        return f"cannot import {missing}: {IMPORTS_HOW}"
    text = str(exc)
    if "relative import" in text or "from 'stages'" in text or "(unknown location)" in text:
        return f"cannot import ({' '.join(text.split())}): {IMPORTS_HOW}"
    return ""


# ------------------------------------------------------------------ progress
def progress_path() -> Path:
    env = os.environ.get("DIRTY_LADDER_PROGRESS")
    if env:
        return Path(env)
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state) / "dirty-ladder" / "progress.json"


MAX_PROGRESS_BYTES = 1 << 20          # a progress file holds 39 short entries: far less
ENTRY_STRINGS = ("started", "done", "file")   # the fields the tool writes; other keys are kept as they are


def _progress_problem(path: Path, what: str) -> StageFileError:
    return StageFileError(f"{path}: {what}; fix or remove the progress file (or set DIRTY_LADDER_PROGRESS)")


def _load_progress() -> dict[str, Any]:
    """The progress file's document as read, every key kept (a new document
    when there is no file); a StageFileError, one line, when the file is not
    a regular file, is larger than MAX_PROGRESS_BYTES, or does not hold a
    dirty-ladder-progress/1 document."""
    path = progress_path()
    try:
        raw = files.read_limited(path, MAX_PROGRESS_BYTES)
    except files.FileRefused as exc:
        raise StageFileError(f"{exc}: cannot be the progress file (set DIRTY_LADDER_PROGRESS to a file's path)"
                             ) from None
    if raw is None:
        return {"format": PROGRESS_FORMAT, "exercises": {}}
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise _progress_problem(path, "the progress file is not UTF-8 text") from None
    except ValueError as exc:
        raise _progress_problem(path, f"the progress file is not JSON ({exc})") from None
    except RecursionError:
        raise _progress_problem(path, "the progress file is not JSON (nested too deep)") from None
    _check_progress(path, data)
    return data


def _check_progress(path: Path, data: Any) -> None:
    """The schema: {"format": PROGRESS_FORMAT, "exercises": {"N": {"started":
    str, "done": str, "file": str, ...}}, ...}, any other key allowed."""
    if not isinstance(data, dict):
        raise _progress_problem(path, f"the progress file must hold a JSON object, not {_kind(data)}")
    if data.get("format") != PROGRESS_FORMAT:
        raise _progress_problem(path, f"not a {PROGRESS_FORMAT} file (its format is {data.get('format')!r})")
    exercises = data.setdefault("exercises", {})
    if not isinstance(exercises, dict):
        raise _progress_problem(path, f'"exercises" must be an object of exercise numbers, not {_kind(exercises)}')
    for key, entry in exercises.items():
        if not (key.isascii() and key.isdigit() and str(int(key)) == key and 1 <= int(key) <= LAST):
            raise _progress_problem(path, f"exercise key {key!r} is not an exercise number (1 to {LAST})")
        if not isinstance(entry, dict):
            raise _progress_problem(path, f"exercise {key} must be an object, not {_kind(entry)}")
        for field in ENTRY_STRINGS:
            if field in entry and not isinstance(entry[field], str):
                raise _progress_problem(path, f'exercise {key}\'s "{field}" must be a string, not '
                                              f"{json.dumps(entry[field])[:40]}")


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true or false", type(None): "null"}.get(
        type(value), "a number")


def read_progress() -> dict[int, dict[str, Any]]:
    """Per exercise done or started: ``{"started": ISO time, "file": path,
    "done": ISO time}`` (and any other key the file holds)."""
    return {int(k): v for k, v in _load_progress()["exercises"].items()}


def _staged_progress(n: int, file: str | os.PathLike | None, done: bool) -> files.Staged:
    """The progress file with exercise ``n`` started (or done), written beside
    it and not yet in place; every key the tool does not know kept."""
    n = _exercise_number(n)
    data = _load_progress()
    entry = data["exercises"].setdefault(str(n), {})
    if done:
        entry["done"] = _now()
    else:
        entry.setdefault("started", _now())
    if file is not None:
        entry["file"] = str(Path(file).resolve())
    data["exercises"] = {k: data["exercises"][k] for k in sorted(data["exercises"], key=int)}
    path = progress_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise StageFileError(f"{path}: cannot write the progress file: {path.parent} is not a directory") from None
    except OSError as exc:
        raise StageFileError(f"{path}: cannot write the progress file: {exc.strerror or exc}") from None
    try:
        return files.staged(path, json.dumps(data, indent=2) + "\n", force=True)
    except (OSError, files.FileRefused) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise StageFileError(f"{path}: cannot write the progress file: {why}") from None


def _commit(staged: files.Staged) -> Path:
    try:
        return staged.commit()
    except files.FileRefused as exc:
        raise StageFileError(f"{exc} (the progress file)") from None


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _exercise_number(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= LAST:
        raise StageFileError(f"unknown exercise {n!r}: exercises are 1 to {LAST} (one per commit)")
    return n


def stage_started(n: int, file: str | os.PathLike) -> files.Staged:
    """record_started in two steps: the new progress file, written beside the
    old one; ``.commit()`` puts it in place, ``.discard()`` drops it."""
    return _staged_progress(n, file, done=False)


def record_started(n: int, file: str | os.PathLike) -> Path:
    return _commit(_staged_progress(n, file, done=False))


def record_done(n: int, file: str | os.PathLike | None = None) -> Path:
    """Mark exercise ``n`` done (``verify`` calls this when a stage passes)."""
    return _commit(_staged_progress(n, file, done=True))


def progress_rows() -> list[dict[str, Any]]:
    progress = read_progress()
    rows = []
    for n in range(1, LAST + 1):
        p = progress.get(n, {})
        status = "done" if p.get("done") else "started" if p.get("started") else "-"
        rows.append({"exercise": n, "title": stage(n).TITLE, "status": status, **p})
    return rows


# ------------------------------------------------------------------ what a commit changes
def own_names(n: int) -> dict[str, Any]:
    """What stage ``n``'s class itself defines (its commit's change), in order."""
    return {k: v for k, v in vars(stage(n)).items() if k not in SKIP and k != "DECLARED_IN"}


def _parent_function(n: int, name: str) -> model.Function | None:
    return model.function_of(stage(n - 1), name)


def _code_names(source: str) -> set[str]:
    """The global names a function's source reads."""
    tree = ast.parse(source)
    local = {a.arg for node in ast.walk(tree) if isinstance(node, ast.arguments)
             for a in node.posonlyargs + node.args + node.kwonlyargs + [node.vararg, node.kwarg] if a}
    stored = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)
              and isinstance(node.ctx, ast.Store)}
    loaded = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)
              and isinstance(node.ctx, ast.Load)}
    return loaded - local - stored - set(dir(builtins))


def _import_lines(names: set[str], n: int) -> list[str]:
    """Imports for the names the starter's code reads that the toolbox does not give."""
    toolbox = {k for mod in TOOLBOX for k in vars(sys.modules.get(mod) or __import__(mod, fromlist=["_"]))
               if not k.startswith("_")}
    lines = set()
    for name in sorted(names - toolbox):
        value, home = None, None
        for klass in stage(n - 1).__mro__:
            mod = sys.modules.get(klass.__module__)
            if mod is not None and name in vars(mod):
                value, home = vars(mod)[name], mod.__name__
                break
        if value is None:
            continue
        if inspect_module(value):
            lines.add(f"import {value.__name__}" + (f" as {name}" if name != value.__name__ else ""))
        elif getattr(sys.modules.get(getattr(value, "__module__", "") or ""), name, None) is value:
            lines.add(f"from {value.__module__} import {name}")
        else:
            lines.add(f"from {home} import {name}")
    return sorted(lines)


def inspect_module(value: Any) -> bool:
    return type(value).__name__ == "module"


# ------------------------------------------------------------------ the commit's description, without its code
_SIMPLE = re.compile(r"^([A-Za-z_][\w.*]*(\[[A-Za-z_][\w.]*\])?(\(\))?|-?(0x[0-9a-fA-F]+|\d+))$")
_CALL = re.compile(r"^([A-Za-z_][\w.]*)\(.*\)$", re.DOTALL)


def redact(text: str) -> str:
    """The text with every code literal that is more than a name or a number
    (``name``, ``a.b``, ``name()``, ``name[N]``, ``0xff``) said in words
    instead: a call keeps its function's name and leaves its arguments out,
    anything else is named as an expression left out.  The description
    says what to do; the code is the exercise."""
    def words(m: re.Match) -> str:
        code = m.group(1).strip()
        if _SIMPLE.match(code):
            return m.group(0)
        call = _CALL.match(code)
        if call and "(" not in call.group(1):
            return f"``{call.group(1)}`` (its arguments are left for you to work out)"
        return "(an expression, left out for you to write)"
    return re.sub(r"``(.+?)``", words, text, flags=re.DOTALL)


def helper_imports(n: int) -> list[str]:
    """Imports of the helpers the stage modules before ``n`` define at
    module level (stage 18's ``bitmap_zero_extend``), so that a starter can
    call them by name, as QEMU's code does."""
    import importlib
    import inspect
    lines = []
    for k in range(n):
        module = importlib.import_module(f"stages.{MODULES[k]}")
        for name, value in vars(module).items():
            if (not name.startswith("_") and inspect.isfunction(value) and value.__module__ == module.__name__):
                lines.append(f"from stages.{MODULES[k]} import {name}")
    return lines


# ------------------------------------------------------------------ the starter module
def starter(n: int) -> str:
    n = _exercise_number(n)
    cls, parent = stage(n), stage(n - 1)
    doc = model.stage_doc(n)
    names = own_names(n)
    parent_mod = MODULES[n - 1]
    body: list[str] = []
    used: set[str] = set()
    todo: list[str] = []
    for name, value in names.items():
        if isinstance(value, removed):
            todo.append(f"remove {name}")
            old = model.resolve(parent, name)[1]
            if inspect_callable(old):
                body.append(f"    # TODO: commit {n:02d} removes {name}; mark it removed:")
                body.append(f"    #     {name} = removed(\"why\")")
            else:
                body.append(f"    # TODO: commit {n:02d} removes the constant {name} = {getattr(parent, name)!r};"
                            f" mark it: {name} = removed(\"why\")")
            body.append("")
            continue
        owner, raw = model.resolve(parent, name)
        fn = model.function_of(parent, name) if owner is not None else None
        if owner is None:                                   # new in this commit
            todo.append(f"add {name}")
            new = model.function_of(cls, name)
            if new is not None:
                # commented out: the machine asks whether some names exist, so the
                # untouched starter must behave as stage n-1
                deco = "    # @staticmethod\n" if isinstance(value, staticmethod) else ""
                self_ = "" if isinstance(value, staticmethod) else "self, " if new.params else "self"
                sig = new.signature.replace("(", "(" + self_, 1) if self_ else new.signature
                body.append(f"    # TODO: commit {n:02d} adds {name}; write it here:")
                body.append(f"{deco}    # def {name}{sig}:")
                body.append("    #     ...")
            else:
                body.append(f"    # TODO: commit {n:02d} adds the constant {name}.")
                body.append(f"    {name} = None")
            body.append("")
            continue
        if fn is not None or name == "__init__":
            todo.append(f"change {name}")
            fn = fn or _init_of(parent)
            source = fn.inlined_source
            used |= _code_names(source)
            deco = "    @staticmethod\n" if isinstance(raw, staticmethod) else ""
            where = f"stage {fn.last_changed:02d}, {fn.written_in}"
            body.append(_comment(f"stage {n - 1:02d}'s {name} (in force since {where}); commit {n:02d} changes it"))
            body.append(deco + textwrap.indent(source.rstrip("\n"), "    "))
            body.append("")
            continue
        todo.append(f"change {name}")
        body.append(f"    # stage {n - 1:02d}'s value; commit {n:02d} changes it")
        body.append(f"    {name} = {getattr(parent, name)!r}")
        body.append("")
    if "DECLARED_IN" in vars(cls) and vars(cls)["DECLARED_IN"] != parent.DECLARED_IN:
        todo.append("update DECLARED_IN")
        body.insert(0, "")
        body.insert(0, f"    DECLARED_IN = {{**parent.Stage.DECLARED_IN}}  # TODO: where the C declares "
                       f"each name after commit {n:02d}")
    what = redact(doc.what) or "(see the title)"
    from .verify import aspect_lines, text_only_lines
    done = [textwrap.fill(line, 79, initial_indent="    ", subsequent_indent="        ")
            for line in aspect_lines(n)]
    if structure.text_only(n):
        done += ["", textwrap.fill(text_only_lines(n)[0], 79)]
    header = [
        f'"""Exercise {n:02d}: {doc.title}',
        "",
        f"Upstream: {doc.upstream or '- (not merged as such)'}.  Kind of step: {doc.kind}.",
        "",
        "What the commit does (its code is left out: writing it is the exercise):",
        "",
        textwrap.indent(what, "    "),
        "",
        "What done means: `dirty-ladder verify FILE` checks each of these, and the exercise",
        "is done when every one passes:",
        "",
        *done,
        "",
        textwrap.fill(f"The class below subclasses stage {n - 1:02d} and holds stage {n - 1:02d}'s code "
                      f"for every name commit {n:02d} touches ({', '.join(todo) or 'none'}), with inherited "
                      f"code inlined where it called super().  Change it so that it does what commit "
                      f"{n:02d} did; leave everything else to the parent class.", 79),
        "",
        f"    dirty-ladder exercise {n} --hint        the first hint (--hint 2, --hint 3: more)",
        f"    dirty-ladder diff {n} --stage-file FILE    your change, as a diff from stage {n - 1:02d}",
        "    dirty-ladder verify FILE               run your stage through the ladder's checks",
        "    dirty-ladder verify --watch FILE       ... again on every save",
        f"    dirty-ladder tour {n}                     the commit itself: its diff is the solution,",
        "                                           so try the exercise first",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "import numpy as np",
        "",
        f"from stages import {parent_mod} as parent",
        "from stages.bitmap import *  # noqa: F403 -- QEMU's bitmap.h: bitmap_set, find_next_bit, test_bit ...",
        "from stages.common import *  # noqa: F403 -- page constants, removed, the argument checks",
    ]
    header += helper_imports(n)
    header += [line for line in _import_lines(used - {"np", "parent"}, n) if line not in header]
    cls_lines = [
        "",
        "",
        "class Stage(parent.Stage):",
        f"    STAGE = {n}",
        f"    TITLE = {doc.title!r}",
        f"    UPSTREAM = {doc.upstream!r}",
        f"    KIND = {doc.kind!r}",
        "",
    ]
    return "\n".join(header + cls_lines + body).rstrip("\n") + "\n"


def _comment(text: str) -> str:
    return textwrap.fill(text, 99, initial_indent="    # ", subsequent_indent="    #   ")


def inspect_callable(value: Any) -> bool:
    return callable(value) or isinstance(value, (staticmethod, classmethod))


def _init_of(cls: type) -> model.Function:
    owner, raw = model.resolve(cls, "__init__")
    import inspect
    return model.Function("__init__", raw, owner, "", [p for p in inspect.signature(raw).parameters][1:],
                          "", None)


# ------------------------------------------------------------------ hints
def taught_hints(n: int) -> list[str]:
    """The hand-written hints of exercise ``n`` (dirty_ladder/hints.toml)."""
    import tomllib
    from importlib import resources
    text = resources.files(__package__).joinpath("hints.toml").read_text(encoding="utf-8")
    for entry in tomllib.loads(text)["exercise"]:
        if entry["n"] == n:
            return [" ".join(h.split()) for h in entry["hints"]]
    return []


def hints(n: int) -> list[str]:
    """The hints of exercise ``n``, from least to most telling: the
    teacher's (dirty_ladder/hints.toml), then one read off the ladder,
    "what changed": the names the commit touches, its signatures, its
    representation and its behaviour changes."""
    n = _exercise_number(n)
    return [textwrap.fill(h, 96) for h in taught_hints(n)] + [what_changed(n)]


def what_changed(n: int) -> str:
    d = model.compute_diff(n - 1, n)
    names = own_names(n)
    changed = [k for k, v in names.items() if not isinstance(v, removed) and model.resolve(stage(n - 1), k)[0]]
    lines = [f"What changed (read off the ladder): commit {n:02d} touches "
             f"{len(names) + ('DECLARED_IN' in vars(stage(n)))} name(s) of the class; kind of step: "
             f"{stage(n).KIND}."]
    for k in changed:
        lines.append(f"  change {k}")
    for a in d["added"]:
        lines.append(f"  add {a['name']}{a['signature']}")
    for r in d["removed"]:
        lines.append(f"  remove {r['name']}")
    for r in d["renamed"]:
        lines.append(f"  rename {r['from']} -> {r['to']} ({r['reason']})")
    for k in d["constants"]["added"]:
        lines.append(f"  add the constant {k}")
    for k in d["constants"]["removed"]:
        lines.append(f"  remove the constant {k}")
    for k, (a, b) in d["constants"]["changed"].items():
        lines.append(f"  the constant {k} changes from {a}")
    for s in d["signature_changes"]:
        lines.append(f"  signature of {s['name']}: {s['from']} -> {s['to']}")
    for x in d["declarations_moved"]:
        lines.append(f"  DECLARED_IN: {x['name']} moves from {x['from']} to {x['to']}")
    if "DECLARED_IN" in vars(stage(n)) and not d["declarations_moved"]:
        lines.append("  DECLARED_IN: add the new names and drop the removed ones")
    rep = d["representation"]
    if rep["changed"]:
        lines.append(f"  the representation changes: {rep['from']['store']} -> {rep['to']['store']}")
    register = model.load_register_safely() or []
    entries = [e for e in register if e.rung == n]
    if entries:
        lines.append(f"Behaviour changes at rung {n:02d}: the register lists {len(entries)} entr"
                     f"{'y' if len(entries) == 1 else 'ies'}; verify expects your stage to show "
                     f"{'it' if len(entries) == 1 else 'them'} and nothing else:")
        for e in entries:
            lines.append(f"  {e.id} ({e.status}): {e.what}")
    else:
        lines.append(f"Behaviour is kept at rung {n:02d}: the register lists nothing, so your stage must "
                     f"give the same results as stage {n - 1:02d} on every trace and call.")
    for b in model.breaks_from(n):
        lines.append(f"  invariant break that begins here: {b.id}: {b.what}")
    return "\n".join(lines)
