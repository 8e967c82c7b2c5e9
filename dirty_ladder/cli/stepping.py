"""Stepping through the ladder: ``list`` (the 40 stages), ``show`` (the API
at a stage, or one function's source), ``diff`` (what a stage changed) and
``log`` (stages one after another, or one function's history)."""

from __future__ import annotations

import argparse
import difflib
import itertools
import re
import textwrap
from typing import Any

from stages import LAST, MODULES, stage
from stages.common import removed

from ..model import (
    Api, bytes_text, function_of, per_page_text, spans, api_of, compute_diff, entries_by_rung,
    load_register_safely, module_path, resolve,
)
from .common import (
    INLINE_DIFFS, UserError, add_command, add_timeout, contained_command, emit_json, load_user_stage, out,
    pager_option, stage_number, teaching_options,
)


# ------------------------------------------------------------------ list
def add_list(sub, prog: str) -> None:
    sp = add_command(sub, "list", "the 40 stages: number, v2 title, kind of step, upstream hash, rung status",
                          f"{prog} list\n{prog} list --json",
                          description="The 40 stages: number, upstream hash, kind of step, what the divergence "
                                      "register says of the rung from the stage before, and the v2 title. On a "
                                      "terminal it is coloured (a rung with a bug in red) and paged; piped, plain.")
    sp.add_argument("--json", action="store_true", help="print a JSON list")
    pager_option(sp)
    sp.set_defaults(func=cmd_list)


def cmd_list(args) -> int:
    register = load_register_safely()
    by_rung = entries_by_rung(register or [])
    rows = []
    for n in range(LAST + 1):
        cls = stage(n)
        entries = by_rung.get(n, [])
        if n == 0:
            status = "baseline"
        elif register is None:
            status = "unknown (register unreadable)"
        else:
            status = "diverges" if entries else "same behaviour"
        rows.append({
            "stage": n, "title": cls.TITLE, "kind": cls.KIND, "upstream": cls.UPSTREAM,
            "module": MODULES[n], "status": status,
            "divergences": [{"id": e.id, "status": e.status, "what": e.what} for e in entries],
        })
    if args.json:
        emit_json(rows)
        return 0
    from ..terminal import Screen
    screen = Screen(pager=not args.no_pager)
    show_list(screen, rows)
    screen.show()
    return 0


def _abbrev(text: str) -> str:
    """The text up to its first parenthesis or semicolon."""
    return re.split(r" \(|;", text, maxsplit=1)[0]


def _hash(row: dict[str, Any]) -> str:
    return (row["upstream"] or "-").split()[0]


def rung_word(row: dict[str, Any]) -> str:
    """What the register says of a rung: baseline, same, or the entries' statuses."""
    if not row["divergences"]:
        return {"baseline": "baseline", "same behaviour": "same"}.get(row["status"], "?")
    counts: dict[str, int] = {}
    for d in row["divergences"]:
        counts[d["status"]] = counts.get(d["status"], 0) + 1
    return ", ".join(k + (f" x{v}" if v > 1 else "") for k, v in counts.items())


def show_list(screen, rows: list[dict[str, Any]]) -> None:
    """The stage table, fitted to the screen: kinds abbreviated, titles folded."""
    screen.table(["#", "upstream", "kind of step", "rung", "title (v2)"],
                 [[str(r['stage']), _hash(r), _abbrev(r["kind"]), rung_word(r), r["title"]] for r in rows],
                 styles=["differs" if any(d["status"] == "bug" for d in r["divergences"]) else None for r in rows],
                 no_wrap=(0, 1), max_widths={2: 20, 3: 12})
    screen.line()
    screen.paragraph("rung: what the divergence register says of the rung from the stage before (same: no "
                     "difference; intended, fix, bug, benign: the status of each entry; `register` lists them).")


# ------------------------------------------------------------------ show
def add_show(sub, prog: str) -> None:
    sp = add_command(sub, "show", "the dirty API at stage N, or the source of one function there",
                          f"{prog} show 19\n{prog} show 25 cpu_physical_memory_clear_dirty_range\n{prog} show 19 --json",
                          description="Without FUNCTION: the constants, the state representation with its bytes per "
                                      "page, and each dirty-API function with its signature, the C file or header "
                                      "that declares it at that stage and the stage that last changed it. With "
                                      "FUNCTION: its Python source as in force at stage N, wherever it was written.")
    sp.add_argument("stage", type=stage_number, metavar="N", help=f"stage number, 0 to {LAST}")
    sp.add_argument("function", nargs="?", metavar="FUNCTION", help="a function (or constant) of that stage")
    pager_option(sp)
    teaching_options(sp, inline="show inherited code in place of super() calls (e.g. show 15 "
                                "cpu_physical_memory_get_dirty_flag --inline)")
    sp.set_defaults(func=cmd_show)


def _stage_header(cls: type) -> list[str]:
    return [f"stage {cls.STAGE:02d}: {cls.TITLE}",
            (f"  kind: {cls.KIND}; upstream: {cls.UPSTREAM or '- (not merged as such)'}; "
             f"module: {module_path(cls.__module__)}")]


def _unknown_function(n: int, name: str, api: Api) -> UserError:
    cls = api.cls
    owner, raw = resolve(cls, name)
    if isinstance(raw, removed):
        why = f" ({raw.why})" if raw.why else ""
        return UserError(f"stage {n} has no function {name}: removed at stage {owner.STAGE}{why}")
    present = [] if name.startswith("_") else [
        k for k in range(LAST + 1) if function_of(stage(k), name) is not None]
    if present:
        return UserError(f"stage {n} has no function {name}: it exists at stages {spans(present)}")
    close = difflib.get_close_matches(name, list(api.functions) + list(api.constants), n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    return UserError(f"stage {n} has no function {name!r}{hint}")


def source_of(fn, inline: bool) -> str:
    return fn.inlined_source if inline else fn.source


def cmd_show(args) -> int:
    api = api_of(args.stage)
    cls = api.cls
    if args.function:
        name = args.function
        if name in api.constants:
            c = api.constants[name]
            if args.json:
                emit_json({"stage": api.n, "constant": c.as_dict()})
            else:
                out(f"{name} = {c.value} at stage {api.n:02d}; declared in {c.declared_in or '-'}; "
                    f"last changed at stage {c.owner.STAGE:02d} ({module_path(c.owner.__module__)})")
            return 0
        fn = api.functions.get(name)
        if fn is None:
            raise _unknown_function(api.n, name, api)
        if args.json:
            emit_json({"stage": api.n, "function": {**fn.as_dict(), "source": source_of(fn, args.inline)}})
            return 0
        from ..terminal import Screen
        screen = Screen(pager=not args.no_pager)
        screen.line(f"{name}{fn.signature}", style="heading")
        screen.line(f"  at stage {api.n:02d}: declared in {fn.declared_in or '-'}")
        since = f"  in force since stage {fn.last_changed:02d} ({module_path(fn.owner.__module__)})"
        if fn.alias_of:
            since += f", bound there to {fn.alias_of}"
        screen.line(since)
        screen.line(f"  source written in {fn.written_in}" + (f" as {fn.alias_of}" if fn.alias_of else ""))
        screen.line()
        screen.code(source_of(fn, args.inline))
        screen.show()
        return 0

    if args.json:
        emit_json({
            "stage": api.n, "title": cls.TITLE, "kind": cls.KIND, "upstream": cls.UPSTREAM,
            "module": module_path(cls.__module__),
            "representation": api.repr_dict(),
            "constants": [c.as_dict() for c in api.constants.values()],
            "functions": [f.as_dict() for f in api.functions.values()],
            "other_declarations": api.other,
        })
        return 0
    from ..terminal import Screen
    screen = Screen(pager=not args.no_pager)
    show_api(screen, api)
    screen.show()
    return 0


def show_api(screen, api: Api) -> None:
    """``show N``: the stage, its representation, its constants and its functions, in tables that fit."""
    cls = api.cls
    head, rest = _stage_header(cls)
    screen.line(head, style="heading")
    screen.line(rest)
    screen.line()
    screen.line(f"representation: {api.representation} ({api.repr_dict()['store']})")
    screen.line(f"  {per_page_text(api)}")
    screen.line()
    screen.table(["constant", "value", "declared in", "since stage"],
                 [[c.name, c.value, c.declared_in or "-", f"{c.owner.STAGE:02d}"] for c in api.constants.values()],
                 no_wrap=(0, 1, 3), title=f"constants ({len(api.constants)})")
    screen.line()
    screen.table(["function, and its signature below", "declared in", "last changed"],
                 [[(f.name, f.signature), f.declared_in or "-", f"{f.last_changed:02d}"]
                  for f in api.functions.values()],
                 no_wrap=(2,), title=f"functions ({len(api.functions)})")
    if api.other:
        screen.line()
        screen.table(["type", "declared in"], [[name, where] for name, where in api.other.items()],
                     no_wrap=(0,), title="other declarations (types)")


# ------------------------------------------------------------------ diff
def add_diff(sub, prog: str) -> None:
    sp = add_command(sub, "diff", "what changed from stage N-1 to N (or from N to M)",
                          f"{prog} diff 25        # stage 24 -> 25: a rename\n{prog} diff 12 19     # several commits\n"
                          f"{prog} diff 29 --json\n{prog} diff 19 --inline   # inherited code in place of super() calls\n"
                          f"{prog} diff 27 --stage-file exercise_27.py   # your stage 27 against stage 26",
                          description="Functions added, removed and renamed (likely when the body is the same), "
                                      "signatures changed, representation and constants changed, declarations "
                                      "moved, the register's divergences, and a unified diff of the source of each "
                                      "changed function: `git show` for the ladder.")
    sp.add_argument("n", type=stage_number, metavar="N", help="stage (alone: compared with N-1)")
    sp.add_argument("m", type=stage_number, metavar="M", nargs="?", help="second stage: diff N -> M")
    sp.add_argument("--stage-file", metavar="FILE",
                    help="a module whose class Stage stands in for the second stage (your exercise)")
    add_timeout(sp, "reading --stage-file's module")
    teaching_options(sp, inline="show inherited code in place of super() calls (diff 19 --inline: the "
                                "byte code that the bitmaps replace)")
    sp.set_defaults(func=cmd_diff)


def cmd_diff(args) -> int:
    from ..contain import inside
    if args.stage_file and not inside():
        return contained_command(args, "diff")
    n, m = args.n, args.m
    if m is None:
        if n == 0:
            raise UserError("stage 0 has no stage before it: give two stages, e.g. `diff 0 5`")
        n, m = n - 1, n
    classes = {}
    if args.stage_file:
        classes[m] = load_user_stage(args.stage_file, m)
    d = compute_diff(n, m, classes, inline=args.inline)
    if args.json:
        emit_json(d)
        return 0
    for line in format_diff(d):
        out(line)
    return 0


def format_diff(d: dict[str, Any], message: bool = True) -> list[str]:
    """The text of a compute_diff() result, as ``diff`` prints it."""
    n, m = d["from"], d["to"]
    lines: list[str] = []
    out = lines.append
    out(f"diff stage {n:02d} -> stage {m:02d}" + ("  (backwards)" if m < n else ""))
    if d["message"] and message:
        out("")
        out(textwrap.indent(d["message"], "    "))
    elif d["commits"] and message:
        out("commits:")
        for c in d["commits"]:
            out(f"  {c['stage']:02d}  {c['upstream'] or '-':<24}  {c['title']}")
    out("")
    nothing = True

    def section(title: str, items: list[str]) -> None:
        nonlocal nothing
        if items:
            nothing = False
            out(f"{title}:")
            for line in items:
                out(f"  {line}")
            out("")

    section("removed", [f"{r['name']}{r['signature']}" for r in d["removed"]])
    section("added", [f"{r['name']}{r['signature']}  [{r['declared_in'] or '-'}]" for r in d["added"]])
    section("renamed", [f"{r['from']} -> {r['to']}  ("
                        + ("likely rename: " if r["likely"] else "possible rename, ") + r["reason"] + ")"
                        for r in d["renamed"]])
    sig_lines = []
    for s in d["signature_changes"]:
        sig_lines.append(f"{s['name']}: {s['from']}  ->  {s['to']}")
        if "parameters" in s:
            sig_lines.append(f"    parameters: {', '.join(s['parameters']['from'])} -> "
                             f"{', '.join(s['parameters']['to'])}")
        if "returns" in s:
            sig_lines.append(f"    returns: {s['returns']['from'] or 'unannotated'} -> "
                             f"{s['returns']['to'] or 'unannotated'}")
    section("signatures changed", sig_lines)
    rep = d["representation"]
    if rep["changed"]:
        section("representation changed", [
            (f"{rep['from']['kind']} ({bytes_text(rep['from']['bytes_per_page'])} per page) -> "
             f"{rep['to']['kind']} ({bytes_text(rep['to']['bytes_per_page'])} per page)"),
            f"from {rep['from']['store']}", f"to {rep['to']['store']}"])
    c = d["constants"]
    section("constants changed",
            [f"- {k} = {v}" for k, v in c["removed"].items()]
            + [f"+ {k} = {v}" for k, v in c["added"].items()]
            + [f"~ {k}: {v[0]} -> {v[1]}" for k, v in c["changed"].items()])
    section("declarations moved", [f"{x['name']}: {x['from']} -> {x['to']}" for x in d["declarations_moved"]])
    title = ("behaviour of the real commits (register; `verify FILE` checks yours)" if d.get("stand_in")
             else "behaviour (register)")
    section(title, [f"rung {e['rung']:02d} diverges: {e['id']} ({e['status']}): {e['what']}"
                    for e in d["divergences"]])
    if d["changed_functions"]:
        nothing = False
        out(f"source changed ({len(d['changed_functions'])}):")
        for ch in d["changed_functions"]:
            out("")
            out(ch["diff"].rstrip("\n"))
        out("")
    if nothing:
        out("no change in the dirty API")
    return lines


# ------------------------------------------------------------------ log
def add_log(sub, prog: str) -> None:
    sp = add_command(sub, "log", "walk a range of stages like git log (-p: with diffs), or one function's history (-L)",
                          f"{prog} log 24..27 -p      # stages 25, 26 and 27 with their diffs\n"
                          f"{prog} log --oneline\n{prog} log -L cpu_physical_memory_get_dirty_flag",
                          description="Each stage of the range in ladder order (oldest first: git log --reverse): its "
                                      "upstream hash, title, kind, register entries and the explanation from its "
                                      "docstring; -p adds its diff from the stage before. N..M means the stages after "
                                      "N up to M, as in git; N alone means stage N. -L FUNCTION: every stage that "
                                      "added, changed, renamed, re-declared or removed it (following renames).")
    sp.add_argument("range", nargs="?", metavar="N..M", help="stages after N up to M (default: all)")
    sp.add_argument("-p", "--patch", action="store_true", help="show each stage's diff")
    sp.add_argument("-L", metavar="FUNCTION", help="the history of one function across the ladder")
    sp.add_argument("--oneline", action="store_true", help="one line per stage")
    teaching_options(sp, inline=INLINE_DIFFS)
    sp.set_defaults(func=cmd_log)


def parse_range(text: str | None) -> list[int]:
    """``N..M`` (the stages after N up to M, as git reads a range), ``N`` (stage N
    alone), ``N..`` or ``..M``; no range: every stage 1 to LAST."""
    if text is None:
        return list(range(1, LAST + 1))
    try:
        if ".." in text:
            a, b = text.split("..", 1)
            lo = stage_number(a) if a else 0
            hi = stage_number(b) if b else LAST
            if hi <= lo:
                raise UserError(f"log: empty range {text}: in N..M, M must be after N (stages N+1 to M)")
            return list(range(lo + 1, hi + 1))
        n = stage_number(text)
    except argparse.ArgumentTypeError as exc:
        raise UserError(f"log: bad range {text!r}: {exc}") from None
    if n == 0:
        raise UserError("log: stage 0 is the starting point, not a commit: give 1 to 39, or 0..N")
    return [n]


def cmd_log(args) -> int:
    from ..model import function_history, stage_doc
    if args.L:
        if args.range is not None:
            raise UserError("log: -L FUNCTION walks the whole ladder; give no range with it")
        history = function_history(args.L)
        if not history:
            known = sorted({f for k in range(LAST + 1) for f in api_of(k).functions})
            close = difflib.get_close_matches(args.L, known, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise UserError(f"log: no stage has a function {args.L!r}{hint}")
        if args.json:
            emit_json({"function": args.L, "history": history})
            return 0
        for h in history:
            head = f"stage {h['stage']:02d}"
            if h["stage"]:
                head += f"  {h['change']}: {h['name']}  ({h['title']}; {h['kind']})"
            else:
                head += f"  {h['change']}: {h['name']}{h['signature']}"
            out(head)
            out()
            out(textwrap.indent(h["diff"].rstrip("\n"), "    ") if h["diff"] else "    (no source change)")
            out()
        return 0
    register = entries_by_rung(load_register_safely() or [])
    numbers = parse_range(args.range)
    rows = []
    for k in numbers:
        doc = stage_doc(k)
        row = {"stage": k, "title": doc.title, "upstream": doc.upstream, "kind": doc.kind,
               "explanation": doc.body, "register": [{"id": e.id, "status": e.status} for e in register.get(k, [])]}
        if args.patch:
            row["diff"] = compute_diff(k - 1, k, inline=args.inline)
        rows.append(row)
    if args.json:
        emit_json(rows)
        return 0
    for row in rows:
        reg = ", ".join(f"{e['id']} ({e['status']})" for e in row["register"]) or "no divergence"
        out(f"stage {row['stage']:02d}  {row['upstream'] or '-'}  {row['title']}")
        if args.oneline:
            continue
        out(f"Kind: {row['kind']}; register: {reg}")
        out()
        out(textwrap.indent(row["explanation"], "    "))
        out()
        if args.patch:
            for line in format_diff(row["diff"], message=False)[2:]:
                out(line)
    return 0


PARSERS = {"list": add_list, "show": add_show, "diff": add_diff, "log": add_log}
