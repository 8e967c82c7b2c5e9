"""Teaching the series: ``tour`` (the chapters, and each stage explained),
``register`` (the divergence register, an entry replayed before and after),
``exercise`` (a starter module to redo a commit, hints, progress) and
``book`` (the tour as a static website)."""

from __future__ import annotations

import argparse
import difflib
import os
import re
import sys
import textwrap
from typing import Any

from stages import LAST, stage

from .. import files
from ..model import load_register_safely, spans
from .common import (
    INLINE_DIFFS, Failure, UserError, add_command, emit_json, exercise_number, out, pager_option, plural, positive,
    short, stage_number, teaching_options, warn,
)
from .running import describe_op
from .stepping import format_diff


# ------------------------------------------------------------------ a register entry, as tour and register print it
def describe_config_dict(config: dict[str, Any]) -> str:
    from ..trace import DEFAULT_CONFIG
    c = {**DEFAULT_CONFIG, **config}
    return f"host_page_size {c['host_page_size']}, accel {c['accel']}, xen {str(c['xen']).lower()}"


# ------------------------------------------------------------------ tour
def add_tour(sub, prog: str) -> None:
    sp = add_command(sub, "tour", "the guided tour of the series: chapters, and each stage with its diff, "
                                  "docstring, pictures, register entries replayed and cost",
                          f"{prog} tour                 # the chapters\n{prog} tour api-cleanup     # the first chapter\n"
                          f"{prog} tour 19              # one stage in full\n{prog} tour ch5 --full      "
                          f"# chapter 5 with every stage in full\n{prog} tour glossary        # the terms",
                          description="Prints the tour: a chapter's own words (dirty_ladder/tour.toml) and one line "
                                      "per stage; a stage in full: its title, upstream commit and kind of step, the "
                                      "docstring's account of why behaviour is kept, pictures of the data it "
                                      "changes, its cost in this Python model where the bench saw one, the "
                                      "register entries it caused with their minimal traces replayed before and "
                                      "after, the invariant breaks that begin there, and its diff. On a terminal "
                                      "it is coloured and paged; piped, it is plain text.")
    sp.add_argument("what", nargs="?", metavar="CHAPTER|N|glossary",
                    help="a chapter (its id, or ch1 to ch5), a stage number, or glossary")
    sp.add_argument("--full", action="store_true", help="with a chapter: every stage in full after its prose")
    sp.add_argument("--no-diff", action="store_true", help="leave out the diffs")
    sp.add_argument("--no-pager", action="store_true", help="never page, even on a terminal")
    teaching_options(sp, inline=INLINE_DIFFS)
    sp.set_defaults(func=cmd_tour)


def _statuses(entries: list[dict[str, Any]]) -> str:
    """A rung's register entries in a few words: their statuses, or "same"."""
    statuses = [e["status"] for e in entries]
    if not statuses:
        return "same"
    return ", ".join(s + (f" x{statuses.count(s)}" if statuses.count(s) > 1 else "")
                     for s in sorted(set(statuses), key=statuses.index))


def show_entry(screen, entry: dict[str, Any]) -> None:
    """A register entry in the tour: what, why, the change as code, its
    minimal trace or call replayed before and after, and its picture."""
    from .. import pictures
    screen.line(f"{entry['id']} (rung {entry['rung']:02d}, {entry['status']})", style="bold")
    screen.paragraph(entry["what"], indent=2, style="bold")
    screen.paragraph("Why: " + entry["explanation"], indent=2)
    if entry["fixed_upstream"]:
        screen.paragraph("Upstream: " + entry["fixed_upstream"], indent=2)
    if entry.get("override_source"):
        screen.line(f"  the change as code, on stage {entry['rung'] - 1:02d} (dirty_ladder/bridges.py):")
        screen.code(entry["override_source"], indent=4)
    r = entry["replay"]
    a, b = r["before_stage"], r["after_stage"]
    for kind in ("trace", "call"):
        if kind not in r:
            continue
        part = r[kind]
        if kind == "trace":
            screen.paragraph(f"minimal trace ({describe_config_dict(part['trace'].get('config', {}))}): "
                             + "; ".join(describe_op(op) for op in part["trace"]["ops"]), indent=2)
        else:
            screen.paragraph(f"minimal call: {part['describe']}", indent=2)
        rows = part["rows"]
        width = max(12, (screen.width - 36) // 2)
        screen.table(["", "observable", f"stage {a:02d}", f"stage {b:02d}"],
                     [["*" if row["differs"] else "", row["name"], short(row["before"], width),
                       short(row["after"], width)] for row in rows],
                     styles=["differs" if row["differs"] else None for row in rows], no_wrap=(0,), indent=2)
        screen.line()
        picture = pictures.entry_picture(r, kind)
        if picture is not None:
            screen.lines(["  " + x for x in picture.text(screen.width - 2)])


def show_stage(screen, ts: dict[str, Any], top: str, diff: bool = True) -> None:
    """One stage in full, as ``tour N`` prints it."""
    from .. import pictures
    from ..model import cost_text, seed_text
    doc = ts["doc"]
    n = doc.n
    screen.line(f"== stage {n:02d}: {doc.title}", style="heading")
    screen.line(f"   kind: {doc.kind}; module: {doc.module}")
    screen.line(f"   upstream: {doc.upstream_url or '- (not merged as such)'}")
    screen.rule("What the commit does, and why behaviour is kept (the module's docstring)" if n else
                "The code before the series (the module's docstring)")
    screen.markdown(doc.body)
    drawn = pictures.stage_pictures(n)
    if drawn:
        screen.rule("Pictures of the data it changes (drawn from a replay of the stages' own code)")
        for p in drawn:
            screen.lines(p.text(screen.width))
            screen.line()
    if ts["costs"]:
        screen.rule("Cost, in this Python model (docs/bench.json), not QEMU's")
        for c in ts["costs"]:
            screen.line(f"  {cost_text(c)}")
            for s in c.get("seed", []):
                screen.line(f"    {seed_text(s)}", style="seed")
    if n:
        count = len(ts["entries"])
        screen.rule(f"The register: {count or 'nothing'} {'entry' if count == 1 else 'entries' if count else ''} "
                    f"at rung {n:02d}".replace("  ", " "))
        if ts["entries"]:
            screen.markdown(
                f"The commit is two steps: the behaviour change{'s' if count > 1 else ''} below, each written as "
                f"code on stage {n - 1:02d}, and a pure refactoring: stage {n - 1:02d} with "
                f"{'these changes' if count > 1 else 'this change'} behaves exactly as stage {n:02d} (the rung "
                f"tests check it on every trace of their scope).")
            for e in ts["entries"]:
                screen.line()
                show_entry(screen, e)
        else:
            screen.line(f"   The rung tests find no difference between stage {n - 1:02d} and stage {n:02d}.")
    for b in ts["breaks"]:
        screen.rule(f"Invariant break that begins here: {b.id}")
        screen.markdown(f"{b.what} (stages {spans(b.stages)}, {b.config})")
    if diff and ts["diff"] is not None:
        screen.rule(f"Try it yourself, then the commit's solution")
        screen.paragraph(f"Try `{top} exercise {n}` first: it writes exercise_{n:02d}.py, stage {n - 1:02d}'s "
                         f"code to turn into stage {n:02d}, and `{top} verify exercise_{n:02d}.py` checks it. The "
                         f"commit's own diff from stage {n - 1:02d}:")
        lines = format_diff(ts["diff"], message=False)[1:]
        screen.diff("\n".join(lines))


def show_chapter(screen, ch, data: list[dict[str, Any]], top: str, full: bool, diff: bool) -> None:
    """A chapter: its prose first, then one line per stage (``--full``: each stage in full)."""
    screen.line(f"Chapter {ch.number}: {ch.title}  (stages {spans(ch.stages)})", style="heading")
    screen.rule("The problem")
    screen.markdown(ch.problem)
    if ch.result:
        screen.rule("In the real world")
        screen.markdown(ch.result)
    screen.rule("What to look at")
    screen.markdown(ch.look_at)
    screen.rule(f"The stages (`{top} tour N` shows stage N in full)")
    screen.table(["#", "title (v2)", "register"],
                 [[f"{ts['stage']:02d}", ts["doc"].title, _statuses(ts["entries"])] for ts in data],
                 styles=["differs" if any(e["status"] == "bug" for e in ts["entries"]) else None for ts in data],
                 no_wrap=(0,))
    if full:
        for ts in data:
            screen.line()
            show_stage(screen, ts, top, diff=diff)


BOOK_LINK = re.compile(r"\[([^\]]+)\]\(stage-(\d\d)\.html(?:#[^)]*)?\)")


def terminal_links(text: str, top: str) -> str:
    """Markdown written for the book, with its links to a stage page said
    as the command that shows that stage (``tour N``)."""
    return BOOK_LINK.sub(lambda m: f"{m.group(1)} (`{top} tour {int(m.group(2))}`)", text)


def show_glossary(screen, terms, top: str = "dirty-ladder") -> None:
    screen.line("The glossary: the terms the stages, the register and the tour use", style="heading")
    screen.line("(dirty_ladder/glossary.toml; the book links each term's first use on every page)")
    for t in terms:
        screen.line()
        screen.line(f"{t.term}  (first matters at stage {t.stage:02d})", style="term")
        screen.markdown(terminal_links(t.text, top), indent=2)


def cmd_tour(args) -> int:
    from .. import model
    from ..terminal import Screen
    register = load_register_safely()
    chapters = model.load_tour(register)
    key = args.what
    if key == "glossary":
        terms = model.load_glossary()
        if args.json:
            emit_json([{"id": t.id, "term": t.term, "aliases": t.aliases, "stage": t.stage, "text": t.text}
                       for t in terms])
            return 0
        screen = Screen(pager=not args.no_pager)
        show_glossary(screen, terms, args.top)
        screen.show()
        return 0
    if key is None:
        if args.json:
            emit_json([{"chapter": c.number, "id": c.id, "title": c.title, "stages": c.stages,
                        "problem": c.problem, "result": c.result, "look_at": c.look_at} for c in chapters])
            return 0
        screen = Screen(pager=not args.no_pager)
        screen.line("The tour of the series, in five chapters (the order it happened):")
        screen.line()
        screen.table(["#", "chapter", "stages", "read it with"],
                     [[c.number, c.title, spans(c.stages), f"{args.top} tour {c.id}"] for c in chapters],
                     no_wrap=(0, 3))
        screen.line()
        screen.line(f"Start with `{args.top} tour {chapters[0].id}`; `{args.top} tour N` shows stage N in full; "
                    f"`{args.top} tour glossary` explains the terms; `{args.top} book DIR` writes it all as a "
                    f"website.")
        screen.show()
        return 0
    bench = model.load_bench()
    breaks = model.invariant_breaks()
    chapter = model.find_chapter(chapters, key)
    if chapter is None:
        try:
            n = stage_number(key)
        except argparse.ArgumentTypeError:
            ids = ", ".join(c.id for c in chapters)
            raise UserError(f"tour: no chapter or stage {key!r}: chapters are {ids}; stages are 0 to {LAST}; "
                            f"or glossary") from None
        numbers = [n]
    else:
        numbers = chapter.stages
    data = [model.tour_stage(k, register, bench, breaks, inline=args.inline) for k in numbers]
    if args.json:
        emit_json({"chapter": None if chapter is None else {
            "chapter": chapter.number, "id": chapter.id, "title": chapter.title, "problem": chapter.problem,
            "result": chapter.result, "look_at": chapter.look_at, "stages": chapter.stages},
            "stages": [tour_json(ts) for ts in data]})
        return 0
    screen = Screen(pager=not args.no_pager)
    if chapter is None:
        show_stage(screen, data[0], args.top, diff=not args.no_diff)
    else:
        show_chapter(screen, chapter, data, args.top, args.full, not args.no_diff)
        nxt = next((c for c in chapters if c.number == chapter.number + 1), None)
        screen.line()
        screen.line(f"Next: `{args.top} tour {nxt.id}` ({nxt.title})." if nxt else "That was the last chapter.")
    screen.show()
    return 0


def tour_json(ts: dict[str, Any]) -> dict[str, Any]:
    from dataclasses import asdict
    return {"stage": ts["stage"], "doc": {**asdict(ts["doc"]), "upstream_url": ts["doc"].upstream_url},
            "diff": ts["diff"], "entries": ts["entries"], "costs": ts["costs"],
            "breaks": [{"id": b.id, "stages": b.stages, "what": b.what} for b in ts["breaks"]]}


# ------------------------------------------------------------------ register
def add_register(sub, prog: str) -> None:
    sp = add_command(sub, "register", "the divergence register: list its entries, or replay one before and after its rung",
                          f"{prog} register\n{prog} register xen-told-start\n{prog} register tlb-reset-short-range --json",
                          description="Without ID: every entry of dirty_ladder/divergences.toml (rung, id, status, what). "
                                      "With ID: the entry, the change as code, and its minimal trace (and call) run on "
                                      "the stage before and the stage of its rung, the observables side by side ('*': "
                                      "differs), with a picture of what differs. On a terminal it is coloured and "
                                      "paged; piped, it is plain text.")
    sp.add_argument("id", nargs="?", metavar="ID", help="an entry's id")
    pager_option(sp)
    teaching_options(sp)
    sp.set_defaults(func=cmd_register)


STATUS_STYLE = {"bug": "differs", "fix": "seed", "intended": None, "benign": "dim"}


def cmd_register(args) -> int:
    from ..model import entry_dict, entry_replay
    from ..terminal import Screen
    register = load_register_safely()
    if register is None:
        raise Failure("cannot read the divergence register (dirty_ladder/divergences.toml)")
    if args.id is None:
        rows = [entry_dict(e) for e in register]
        if args.json:
            emit_json(rows)
            return 0
        screen = Screen(pager=not args.no_pager)
        screen.table(["rung", "id", "status", "what"], [[e.rung, e.id, e.status, e.what] for e in register],
                     styles=[STATUS_STYLE.get(e.status) for e in register], no_wrap=(0, 1, 2))
        screen.line()
        screen.line(f"`{args.top} register ID` replays an entry's minimal trace before and after its rung.")
        screen.show()
        return 0
    entry = next((e for e in register if e.id == args.id), None)
    if entry is None:
        close = difflib.get_close_matches(args.id, [e.id for e in register], n=1)
        hint = f"; did you mean {close[0]}?" if close else f" (`{args.top} register` lists them)"
        raise UserError(f"register: no entry {args.id!r}{hint}")
    data = {**entry_dict(entry), "replay": entry_replay(entry)}
    if args.json:
        emit_json(data)
        return 0
    screen = Screen(pager=not args.no_pager)
    show_entry(screen, data)
    screen.show()
    return 0


# ------------------------------------------------------------------ exercise
def add_exercise(sub, prog: str) -> None:
    from ..exercises import progress_path
    sp = add_command(sub, "exercise", "write a starter module to redo commit N yourself; hints; your progress",
                          f"{prog} exercise 27               # writes exercise_27.py\n"
                          f"{prog} exercise 27 --hint        # the first hint (--hint 2, 3 ...: more; the last: what changed)\n"
                          f"{prog} verify exercise_27.py     # then: the ladder's checks on your stage\n"
                          f"{prog} exercise --progress",
                          description="Writes a module whose class Stage subclasses stage N-1 and holds stage N-1's "
                                      "code for every name commit N changes, with the commit's title and description "
                                      "(its code left out) and what to do next. Progress is kept in a JSON file: "
                                      f"$DIRTY_LADDER_PROGRESS if set, else {progress_path()}.")
    sp.add_argument("n", type=exercise_number, nargs="?", metavar="N", help=f"the commit, 1 to {LAST}")
    sp.add_argument("-o", "--output", metavar="FILE", help="where to write it (default exercise_NN.py; - for stdout)")
    sp.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    sp.add_argument("--hint", type=positive, nargs="?", const=1, metavar="K", help="print hints 1 to K (default 1)")
    sp.add_argument("--progress", action="store_true", help="list the exercises done and started")
    teaching_options(sp, json="print JSON (--hint, --progress)")
    sp.set_defaults(func=cmd_exercise)


def cmd_exercise(args) -> int:
    from .. import exercises
    try:
        if args.progress:
            if args.n is not None or args.hint is not None or args.output:
                raise UserError("exercise: --progress takes no exercise number, --hint or -o")
            rows = exercises.progress_rows()
            if args.json:
                emit_json({"file": str(exercises.progress_path()), "exercises": rows})
                return 0
            done = sum(r["status"] == "done" for r in rows)
            out(f"exercises done: {done} of {LAST}  (progress file: {exercises.progress_path()})")
            for r in rows:
                title = r["title"] if len(r["title"]) <= 76 else r["title"][:75] + "~"
                out(f"  {r['exercise']:>2}  {r['status']:<7}  {title}")
            return 0
        if args.n is None:
            raise UserError(f"exercise: give an exercise number (1 to {LAST}), or --progress")
        if args.hint is not None:
            hints = exercises.hints(args.n)
            if not 1 <= args.hint <= len(hints):
                raise UserError(f"exercise: hint {args.hint}: there are {len(hints)} hints, 1 to {len(hints)}")
            if args.json:
                emit_json({"exercise": args.n, "hints": hints[:args.hint]})
                return 0
            for k, h in enumerate(hints[:args.hint], 1):
                out(f"Hint {k} of {len(hints)}:")
                out(textwrap.indent(h, "  "))
                out()
            if args.hint < len(hints):
                out(f"More: `{args.top} exercise {args.n} --hint {args.hint + 1}`.")
            return 0
        text = exercises.starter(args.n)
        path = args.output or f"exercise_{args.n:02d}.py"
        if path == "-":
            sys.stdout.write(text)
            return 0
        # the starter and the progress file are both written, or neither
        hint = "give another -o FILE, or --force to overwrite it"
        try:
            files.check_writable(path, args.force, hint)
            progress = exercises.stage_started(args.n, path)
            try:
                files.staged(path, text, args.force, hint).commit()
            except files.FileRefused:
                progress.discard()
                raise
        except files.FileRefused as exc:
            raise UserError(f"exercise: {exc}") from None
        try:
            progress.commit()
        except files.FileRefused as exc:
            raise UserError(f"exercise: wrote {path}, but not the progress file: {exc}") from None
        cls = stage(args.n)
        out(f"wrote {path}: exercise {args.n:02d}, {cls.TITLE}")
        out(f"  edit the class Stage in it so that it does what commit {args.n:02d} did;")
        out(f"  hints:          {args.top} exercise {args.n} --hint")
        out(f"  your change:    {args.top} diff {args.n} --stage-file {path}")
        out(f"  next step:      {args.top} verify {path}   (--watch: again on every save)")
        out(f"  the commit:     {args.top} tour {args.n}   (its diff is the solution: try the exercise first)")
        from ..verify import exercise_lines
        for line in exercise_lines(args.n):
            out(line)
        return 0
    except exercises.StageFileError as exc:
        raise UserError(str(exc)) from None


# ------------------------------------------------------------------ book
def add_book(sub, prog: str) -> None:
    sp = add_command(sub, "book", "write the tour as a static website (needs the book extra)",
                          f"{prog} book book/            # then open book/index.html\n{prog} book /tmp/site --json",
                          description="Writes the tour as a static website: a page per chapter and per stage "
                                      "(the commit's docstring; pictures of each structure it changes and of "
                                      "every register entry's replay, drawn from replays of the stages' own "
                                      "code; the register entries with their minimal traces replayed before "
                                      "and after; the commit's diff, folded as the solution of its exercise), "
                                      "the register, the glossary, the exercises, the changelog, the rung "
                                      "tests, the cost curve of this Python model and an index. Every page has "
                                      "a sidebar of contents and a list of its own sections; search is a small "
                                      "script over an index built with the book (genindex.html lists the same "
                                      "without JavaScript). Links are relative: open OUT/index.html from the "
                                      "file system, no server needed. Needs the book extra (jinja2 for the "
                                      "pages, markdown-it-py for the prose, pygments for the diffs, matplotlib "
                                      "for the cost plot): pip install -e '.[book]'.")
    sp.add_argument("out", metavar="OUT", help="the directory to write: new, empty, or holding a book this "
                                               "command wrote before (created if needed)")
    sp.add_argument("--force", action="store_true",
                    help="write the book into OUT even though it holds other files (none of them is removed; "
                         "a file of the same name as a page is replaced)")
    teaching_options(sp, json="print what was written as JSON")
    sp.set_defaults(func=cmd_book)


BOOK_MARKER = ".dirty-ladder-book"      # in OUT: the files the book wrote, so that the next run knows them


def cmd_book(args) -> int:
    from .. import book
    if not args.out.strip():
        raise UserError(f"book: OUT is {args.out!r}: name the directory to write the book into")
    try:
        report = files.write_directory(args.out, book.build, BOOK_MARKER, "book", args.force)
    except book.BookError as exc:
        raise UserError(f"book: {exc}") from None
    except files.FileRefused as exc:
        raise UserError(f"book: {exc}") from None
    report.out = args.out
    if args.json:
        emit_json({"out": str(report.out), "pages": report.pages, "seconds": round(report.seconds, 2)})
        return 0
    warn(f"wrote {plural(len(report.pages), 'page')} to {report.out} in {report.seconds:.1f} s")
    out(f"open {os.path.join(str(report.out), 'index.html')}")
    return 0


PARSERS = {"tour": add_tour, "register": add_register, "exercise": add_exercise, "book": add_book}
