"""``dirty-ladder book OUT/``: the tour as a static website.

A page per chapter and per stage, the register, the CHANGELOG, the rung tests
and the cost curve, all made from the model (dirty_ladder/model.py) with
jinja2 templates (dirty_ladder/templates/), pygments for the diffs and
matplotlib for the cost plot: the ``[book]`` extra.  Links are relative, so
the site works from the file system; no JavaScript.
"""

from __future__ import annotations

import html
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stages import LAST

from . import model

EXTRA = "pip install -e '.[book]'"
TEST_IDS = ("tests/test_ladder.py::test_machine_and_representation[rung{n:02d}]",
            "tests/test_ladder.py::test_api[rung{n:02d}]")
MAX_PICTURE_PAGES = 128
CLIENTS = ("vga", "code", "migration")


class BookError(Exception):
    """The book cannot be built: one line, exit status 2 (a missing extra, an unwritable directory)."""


@dataclass
class Report:
    out: Path
    pages: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _libraries():
    missing = []
    try:
        import jinja2
    except ImportError:
        missing.append("jinja2")
        jinja2 = None
    try:
        import pygments
    except ImportError:
        missing.append("pygments")
        pygments = None
    try:
        import matplotlib
    except ImportError:
        missing.append("matplotlib")
        matplotlib = None
    if missing:
        raise BookError(f"the book needs {', '.join(missing)}: {EXTRA}")
    return jinja2, pygments, matplotlib


# ------------------------------------------------------------------ page names (one place)
def stage_page(n: int) -> str:
    return f"stage-{n:02d}.html"


def chapter_page(chapter) -> str:
    return f"chapter-{chapter.number}-{chapter.id}.html"


# ------------------------------------------------------------------ filters
def docstring_html(text: str) -> str:
    """A docstring body as HTML: paragraphs, "- " lists, ``code`` and *emphasis*."""
    def inline(t: str) -> str:
        t = html.escape(" ".join(t.split()), quote=False)
        t = re.sub(r"``(.+?)``", r"<code>\1</code>", t)
        return re.sub(r"(?<![\w*])\*([^*\s][^*]*?)\*(?![\w*])", r"<em>\1</em>", t)

    parts = []
    for para in text.strip().split("\n\n"):
        lines = para.splitlines()
        if lines and all(line.startswith(("- ", "  ")) for line in lines) and lines[0].startswith("- "):
            items, cur = [], []
            for line in lines:
                if line.startswith("- ") and cur:
                    items.append(" ".join(cur))
                    cur = []
                cur.append(line[2:] if line.startswith("- ") else line)
            items.append(" ".join(cur))
            parts.append("<ul>" + "".join(f"<li>{inline(i)}</li>" for i in items) + "</ul>")
        else:
            parts.append(f"<p>{inline(para)}</p>")
    return "\n".join(parts)


def value_text(value: Any) -> str:
    import json
    return json.dumps(value)


# ------------------------------------------------------------------ pictures of the three bitmaps
def pages_of(ranges: list[list[int]]) -> set[int]:
    return {p for a, b in ranges for p in range(a, b)}


def bitmap_picture(before: dict[str, Any], after: dict[str, Any], a: int, b: int) -> dict[str, Any] | None:
    """The pages dirty per client before and after, as rows of cells for a
    table: ``None`` when the result has no dirty state to draw."""
    sa, sb = before.get("state", before), after.get("state", after)
    if not isinstance(sa.get("dirty"), dict):
        return None

    def dirty(state, client) -> set[int]:
        v = state["dirty"][client]
        return pages_of(v) if v and isinstance(v[0], list) else set(v)

    npages = 0
    for state in (sa, sb):
        if "blocks" in state and state["blocks"]:
            npages = max(npages, max(o + ln for o, ln in state["blocks"]) // 4096)
        for c in CLIENTS:
            npages = max(npages, max(dirty(state, c), default=-1) + 1)
    if npages == 0:
        return None
    shown = min(npages, MAX_PICTURE_PAGES)
    rows = []
    for c in CLIENTS:
        da, db = dirty(sa, c), dirty(sb, c)
        for label, mine, other in ((f"{c}, stage {a:02d}", da, db), (f"{c}, stage {b:02d}", db, da)):
            rows.append({"label": label, "cells": [
                {"page": p, "dirty": p in mine, "differs": (p in mine) != (p in other)} for p in range(shown)]})
    return {"pages": npages, "shown": shown, "rows": rows}


# ------------------------------------------------------------------ the build
def _highlight(pygments, text: str, lexer: str = "diff") -> str:
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import get_lexer_by_name
    return pygments.highlight(text, get_lexer_by_name(lexer), HtmlFormatter(cssclass="highlight"))


def build(out: str | Path) -> Report:
    """Write the site into ``out`` (created; existing files are overwritten)."""
    jinja2, pygments, _ = _libraries()
    from pygments.formatters import HtmlFormatter

    t0 = time.monotonic()
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BookError(f"cannot create {out}: {exc.strerror or exc}") from None
    report = Report(out)
    env = jinja2.Environment(loader=jinja2.PackageLoader("dirty_ladder", "templates"),
                             autoescape=jinja2.select_autoescape(["html"]), trim_blocks=True,
                             lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters["docstring"] = lambda t: jinja2.utils.markupsafe.Markup(docstring_html(t))
    env.filters["json"] = value_text
    env.filters["python"] = lambda t: jinja2.utils.markupsafe.Markup(_highlight(pygments, t, "python"))
    env.filters["spans"] = model.spans
    env.filters["cost"] = model.cost_text
    env.globals.update(stage_page=stage_page, chapter_page=chapter_page, LAST=LAST)

    register = model.load_register_safely() or []
    chapters = model.load_tour(register)
    bench = model.load_bench()
    breaks = model.invariant_breaks()
    changelog = model.changelog_entries()
    chapter_of: dict[int, Any] = {}
    for c in chapters:
        if not c.select:
            for n in c.stages:
                chapter_of.setdefault(n, c)

    def write(name: str, template: str, **context) -> None:
        text = env.get_template(template).render(page=name, chapters=chapters, **context)
        (out / name).write_text(text, encoding="utf-8")
        report.pages.append(name)

    stages = []
    for n in range(LAST + 1):
        ts = model.tour_stage(n, register, bench, breaks)
        diff = ts["diff"]
        diff_html = ""
        inline_html = ""
        if diff is not None and diff["changed_functions"]:
            diff_html = _highlight(pygments, "\n".join(c["diff"] for c in diff["changed_functions"]))
            inlined = model.compute_diff(n - 1, n, inline=True)
            text = "\n".join(c["diff"] for c in inlined["changed_functions"])
            if text != "\n".join(c["diff"] for c in diff["changed_functions"]):
                inline_html = _highlight(pygments, text)
        for e in ts["entries"]:
            r = e["replay"]
            if "trace" in r:
                r["trace"]["picture"] = bitmap_picture(r["trace"]["before"], r["trace"]["after"],
                                                       r["before_stage"], r["after_stage"])
            if "call" in r:
                r["call"]["picture"] = bitmap_picture(r["call"]["before"], r["call"]["after"],
                                                      r["before_stage"], r["after_stage"])
        stages.append({**ts, "diff_html": diff_html, "inline_html": inline_html,
                       "chapter": chapter_of.get(n), "in_chapters": [c for c in chapters if n in c.stages],
                       "changelog": n in changelog,
                       "tests": [t.format(n=n) for t in TEST_IDS] if n else []})

    (out / "pygments.css").write_text(HtmlFormatter(cssclass="highlight").get_style_defs(".highlight"),
                                      encoding="utf-8")
    shutil.copyfile(Path(__file__).parent / "templates" / "style.css", out / "style.css")
    plot = None
    if bench is not None:
        from . import bench as bench_module
        bench_module.plot(bench, str(out / "cost.png"))
        plot = "cost.png"

    write("index.html", "index.html", stages=stages, bench=bench is not None)
    for c in chapters:
        write(chapter_page(c), "chapter.html", chapter=c, stages=[stages[n] for n in c.stages],
              prev=next((x for x in chapters if x.number == c.number - 1), None),
              next=next((x for x in chapters if x.number == c.number + 1), None))
    for s in stages:
        n = s["stage"]
        write(stage_page(n), "stage.html", s=s, prev=n - 1 if n else None, next=n + 1 if n < LAST else None)
    write("register.html", "register.html", entries=register, stages=stages)
    write("changelog.html", "changelog.html",
          entries=[{"stage": n, "html": docstring_html(_changelog_body(text)), "title": _changelog_title(text)}
                   for n, text in sorted(changelog.items())])
    write("tests.html", "tests.html", stages=stages[1:])
    write("cost.html", "cost.html", stages=stages, plot=plot, bench=bench)
    report.seconds = time.monotonic() - t0
    return report


def _changelog_title(text: str) -> str:
    return text.splitlines()[0].lstrip("# ").strip()


def _changelog_body(text: str) -> str:
    lines = text.splitlines()[1:]
    body = "\n".join(lines).strip()
    body = re.sub(r"`([^`]+)`", r"``\1``", body.replace("``", "`"))
    return body
