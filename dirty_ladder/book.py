"""``dirty-ladder book OUT/``: the tour as a static website.

A page per chapter and per stage, the register, the glossary, the
exercises, the CHANGELOG, the rung tests, the cost curve and an index, all
made from the model (dirty_ladder/model.py) with jinja2 templates
(dirty_ladder/templates/), markdown-it-py for the prose, pygments for the
diffs, the pictures of dirty_ladder/pictures.py (SVG, drawn from replays)
and matplotlib for the cost plot: the ``[book]`` extra.

Every page has a sidebar with the table of contents and a list of its own
sections; the first use of each glossary term on a page links to it.
Search runs in the browser over a prebuilt index (search-index.js, read
by search.js, so it works from the file system); genindex.html is the
same without JavaScript.  Links are relative.
"""

from __future__ import annotations

import html
import json
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
EXTRA_PAGES = (("register.html", "The divergence register"), ("cost.html", "The cost curve"),
               ("glossary.html", "Glossary"), ("exercises.html", "Exercises"), ("genindex.html", "Index"),
               ("search.html", "Search"), ("changelog.html", "Changelog"), ("tests.html", "The rung tests"),
               ("stage-00.html", "Stage 00: before the series"))
STATIC = ("style.css", "search.js")


class BookError(Exception):
    """The book cannot be built: one line, exit status 2 (a missing extra, an unwritable directory)."""


@dataclass
class Report:
    out: Path
    pages: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _libraries():
    missing = []
    found = {}
    for name in ("jinja2", "pygments", "matplotlib", "markdown_it"):
        try:
            found[name] = __import__(name)
        except ImportError:
            missing.append(name.replace("markdown_it", "markdown-it-py"))
    if missing:
        raise BookError(f"the book needs {', '.join(missing)}: {EXTRA}")
    return found["jinja2"], found["pygments"]


# ------------------------------------------------------------------ page names (one place)
def stage_page(n: int) -> str:
    return f"stage-{n:02d}.html"


def chapter_page(chapter) -> str:
    return f"chapter-{chapter.number}-{chapter.id}.html"


# ------------------------------------------------------------------ Markdown
_MD = None


def markdown_html(text: str) -> str:
    """Markdown (the chapters, the glossary, docstrings, the CHANGELOG) as
    HTML, with markdown-it-py; raw HTML in the text is escaped."""
    global _MD
    if _MD is None:
        from markdown_it import MarkdownIt
        _MD = MarkdownIt("commonmark", {"html": False}).enable("table")
    return _MD.render(text)


def docstring_html(text: str) -> str:
    """A docstring body as HTML.  Docstrings write code as ``code``, which
    Markdown reads as a code span too."""
    return markdown_html(text.strip())


def break_after_underscores(text: str) -> str:
    """``text`` as HTML that may break after an underscore (``<wbr>``), so that
    a long identifier wraps between its words, never inside one."""
    return html.escape(text).replace("_", "_<wbr>")


def first_paragraph(text: str) -> str:
    return text.strip().split("\n\n")[0]


def value_text(value: Any) -> str:
    return json.dumps(value)


def _highlight(pygments, text: str, lexer: str = "diff") -> str:
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import get_lexer_by_name
    return pygments.highlight(text, get_lexer_by_name(lexer), HtmlFormatter(cssclass="highlight"))


# ------------------------------------------------------------------ after rendering: ids, contents, glossary links
_TAG = re.compile(r"(<[^>]+>)")
_HEADING = re.compile(r"<(h[23]|dt)((?:\s[^>]*)?)>(.*?)</\1>", re.S)
# where a glossary link may not go (or would say nothing): links, code blocks,
# headings, pictures, navigation, the replay tables, the diffs, summaries
SKIP = ("a", "pre", "h1", "h2", "h3", "h4", "h5", "h6", "svg", "script", "style", "title", "nav", "header",
        "aside", "footer", "summary", "figcaption", "dt")
SKIP_CLASSES = ("replay", "highlight", "facts", "ui")    # "ui": the book's own instructions, not prose
NO_TERM_LINKS = ("glossary.html", "search.html")        # pages whose main part links no term


def slug(text: str) -> str:
    text = re.sub(r"<[^>]+>", "", text)
    return re.sub(r"[^a-z0-9]+", "-", html.unescape(text).lower()).strip("-") or "section"


def add_contents(page: str) -> str:
    """Give every h2 and h3 of the main part an id, and fill the page's own
    contents list (the ``<!--PAGE-TOC-->`` place) with them and with every
    ``<dt>`` that has an id (the glossary's terms), at the level of an h2."""
    head, sep, main = page.partition('<main id="content">')
    if not sep:
        return page
    used = set(re.findall(r'\sid="([^"]+)"', page))
    items: list[tuple[str, str, str]] = []

    def heading(m: re.Match) -> str:
        tag, attrs, inner = m.group(1), m.group(2) or "", m.group(3)
        found = re.search(r'\sid="([^"]+)"', attrs)
        if tag == "dt" and not found:                   # a definition list's term without an anchor
            return m.group(0)
        if found:
            ident = found.group(1)
        else:
            ident, k = slug(inner), 2
            while ident in used:
                ident, k = f"{slug(inner)}-{k}", k + 1
            used.add(ident)
            attrs += f' id="{ident}"'
        text = html.unescape(re.sub(r"<[^>]+>", "", inner)).strip()
        items.append(("h2" if tag == "dt" else tag, ident, text))
        return f"<{tag}{attrs}>{inner}</{tag}>"

    main = _HEADING.sub(heading, main)
    if len(items) < 2:
        return (head + sep + main).replace("<!--PAGE-TOC-->", "")
    lines, open_sub = ['<nav class="on-this-page"><p>On this page</p><ul>'], False
    for tag, ident, text in items:
        if tag == "h3" and not open_sub:
            lines.append("<ul>")
            open_sub = True
        elif tag == "h2" and open_sub:
            lines.append("</ul>")
            open_sub = False
        lines.append(f'<li><a href="#{ident}">{html.escape(text)}</a></li>')
    lines.append("</ul>" if open_sub else "")
    lines.append("</ul></nav>")
    return (head + sep + main).replace("<!--PAGE-TOC-->", "".join(lines), 1)


def _alias_pattern(terms: list[model.Term]) -> tuple[re.Pattern | None, dict[str, model.Term]]:
    by_alias = {a: t for t in terms for a in t.aliases}
    if not by_alias:
        return None, {}
    ordered = sorted(by_alias, key=len, reverse=True)
    return re.compile(r"(?<![\w-])(" + "|".join(re.escape(a) for a in ordered) + r")(?![\w-])"), by_alias


def link_terms(page: str, terms: list[model.Term], glossary_page: str = "glossary.html") -> str:
    """Link the first use of each glossary term in the page's main part:
    the first whole-word use of any of its aliases in running text, or an
    inline ``<code>`` whose whole text is one."""
    pattern, by_alias = _alias_pattern(terms)
    head, sep, rest = page.partition('<main id="content">')
    if pattern is None or not sep:
        return page
    main, sep2, tail = rest.partition("</main>")
    done: set[str] = set()
    stack: list[str] = []
    out: list[str] = []
    parts = _TAG.split(main)
    i = 0
    while i < len(parts):
        part = parts[i]
        if part.startswith("<"):
            _track(part, stack)
            # <code>ALIAS</code> as a whole, in running text
            if (part.startswith("<code") and not _skipping(stack[:-1]) and i + 2 < len(parts)
                    and parts[i + 2] == "</code>"):
                alias = html.unescape(parts[i + 1])
                term = by_alias.get(alias)
                if term is not None and term.id not in done:
                    done.add(term.id)
                    out.append(_term_link(term, glossary_page) + part + parts[i + 1] + "</code></a>")
                    stack.pop()
                    i += 3
                    continue
            out.append(part)
        elif part and not _skipping(stack):
            out.append(_link_text(part, pattern, by_alias, done, glossary_page))
        else:
            out.append(part)
        i += 1
    return head + sep + "".join(out) + sep2 + tail


def _term_link(term: model.Term, glossary_page: str) -> str:
    summary = html.escape(re.sub(r"`", "", term.text.split(". ")[0]) + ".", quote=True)
    return f'<a class="term" href="{glossary_page}#{term.id}" title="{summary}">'


def _link_text(text: str, pattern: re.Pattern, by_alias: dict, done: set[str], glossary_page: str) -> str:
    def one(m: re.Match) -> str:
        term = by_alias[m.group(1)]
        if term.id in done:
            return m.group(0)
        done.add(term.id)
        return _term_link(term, glossary_page) + m.group(0) + "</a>"
    return pattern.sub(one, text)


VOID = {"br", "hr", "img", "input", "meta", "link", "wbr", "col", "area", "base", "source", "track", "embed"}


def _track(tag: str, stack: list[str]) -> None:
    """Keep the stack of open elements (name and class) as tags go by."""
    m = re.match(r"<(/?)([a-zA-Z0-9]+)([^>]*)>", tag)
    if not m or tag.startswith("<!"):
        return
    closing, name, attrs = m.group(1), m.group(2).lower(), m.group(3)
    if closing:
        names = [entry.split(".")[0] for entry in stack]
        if name in names:
            del stack[len(names) - 1 - names[::-1].index(name):]
        return
    if name in VOID or attrs.rstrip().endswith("/"):
        return
    cls = re.search(r'class="([^"]*)"', attrs)
    stack.append(name + ("." + cls.group(1).replace(" ", ".") if cls else ""))


def _skipping(stack: list[str]) -> bool:
    for entry in stack:
        name, *classes = entry.split(".")
        if name in SKIP or name == "code" or any(c in SKIP_CLASSES for c in classes):
            return True
    return False


# ------------------------------------------------------------------ search
def search_entries(name: str, page: str) -> list[dict[str, str]]:
    """One entry per section of a page (its h1, then each h2, and each term
    of the glossary: a ``<dt>`` with an id): the page's
    title, the section's heading, its link and its text, without pictures,
    diffs or replay tables."""
    main = page.partition('<main id="content">')[2].partition("</main>")[0]
    main = re.sub(r"<svg.*?</svg>|<div class=\"highlight\">.*?</div>|<table class=\"replay\".*?</table>"
                  r"|<script.*?</script>", " ", main, flags=re.S)
    title = html.unescape(re.sub(r"<[^>]+>", "", (re.search(r"<h1[^>]*>(.*?)</h1>", main, re.S) or
                                                   re.match("()", "")).group(1))).strip()
    pieces = re.split(r"(<h2[^>]*>.*?</h2>|<dt[^>]*\sid=\"[^\"]+\"[^>]*>.*?</dt>)", main, flags=re.S)
    entries = [{"t": title or name, "h": "", "u": name, "x": _plain(pieces[0])}]
    for k in range(1, len(pieces), 2):
        m = re.match(r'<(?:h2|dt)[^>]*id="([^"]+)"[^>]*>(.*?)</(?:h2|dt)>', pieces[k], re.S)
        heading = html.unescape(re.sub(r"<[^>]+>", "", m.group(2) if m else pieces[k])).strip()
        anchor = f"{name}#{m.group(1)}" if m else name
        entries.append({"t": title or name, "h": heading, "u": anchor, "x": _plain(pieces[k + 1])})
    return [e for e in entries if e["x"] or e["h"]]


def _plain(fragment: str) -> str:
    text = html.unescape(re.sub(r"<[^>]+>", " ", fragment))
    return " ".join(text.split())[:4000]


# ------------------------------------------------------------------ the index page
def index_groups(stages: list[dict], register: list, terms: list[model.Term], breaks: list
                 ) -> list[tuple[str, list[dict]]]:
    """genindex.html: every term, function, register entry, invariant break
    and stage, by first letter."""
    items: dict[tuple[str, str], dict] = {}

    def add(name: str, kind: str, href: str, text: str) -> None:
        item = items.setdefault((name.lower(), kind), {"name": name, "kind": kind, "links": []})
        if (href, text) not in item["links"]:
            item["links"].append((href, text))

    for t in terms:
        add(t.term, "glossary", f"glossary.html#{t.id}", "glossary")
        add(t.term, "glossary", stage_page(t.stage), f"stage {t.stage:02d}")
    for s in stages:
        n = s["stage"]
        add(f"stage {n:02d}: {s['doc'].title}", "stage", stage_page(n), stage_page(n))
        d = s["diff"]
        if d is None:
            continue
        names = ([a["name"] for a in d["added"]] + [r["name"] for r in d["removed"]]
                 + [c["name"].split(" -> ")[-1] for c in d["changed_functions"]]
                 + [x for r in d["renamed"] for x in (r["from"], r["to"])]
                 + [c["name"].split(" -> ")[-1] for c in d["signature_changes"]])
        for fn in names:
            add(fn, "function", stage_page(n), f"stage {n:02d}")
    for e in register:
        add(e.id, "register entry", f"{stage_page(e.rung)}#{e.id}", f"rung {e.rung:02d}")
    for b in breaks:
        if b.stages:
            add(b.id, "invariant break", f"{stage_page(b.stages[0])}#break-{b.id}", f"stage {b.stages[0]:02d}")
    groups: dict[str, list[dict]] = {}
    for key in sorted(items, key=lambda k: (k[0].lstrip("_"), k[1])):
        item = items[key]
        letter = item["name"].lstrip("_")[:1].upper()
        groups.setdefault(letter if letter.isalpha() else "#", []).append(item)
    return sorted(groups.items())


# ------------------------------------------------------------------ the build
def build(out: str | Path) -> Report:
    """Write the site into ``out`` (created; existing files are overwritten)."""
    jinja2, pygments = _libraries()
    from pygments.formatters import HtmlFormatter

    from . import pictures

    t0 = time.monotonic()
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BookError(f"cannot create {out}: {exc.strerror or exc}") from None
    report = Report(out)
    Markup = jinja2.utils.markupsafe.Markup
    env = jinja2.Environment(loader=jinja2.PackageLoader("dirty_ladder", "templates"),
                             autoescape=jinja2.select_autoescape(["html"]), trim_blocks=True,
                             lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters["docstring"] = lambda t: Markup(docstring_html(t))
    env.filters["markdown"] = lambda t: Markup(markdown_html(t))
    env.filters["first_paragraph"] = first_paragraph
    env.filters["json"] = value_text
    env.filters["python"] = lambda t: Markup(_highlight(pygments, t, "python"))
    env.filters["spans"] = model.spans
    env.filters["wbr"] = lambda t: Markup(break_after_underscores(t))
    env.filters["cost"] = model.cost_text
    env.filters["seed"] = model.seed_text

    register = model.load_register_safely() or []
    chapters = model.load_tour(register)
    terms = model.load_glossary()
    bench = model.load_bench()
    breaks = model.invariant_breaks()
    changelog = model.changelog_entries()
    chapter_of: dict[int, Any] = {}
    for c in chapters:
        if not c.select:
            for n in c.stages:
                chapter_of.setdefault(n, c)
    from stages import stage as stage_class
    env.globals.update(stage_page=stage_page, chapter_page=chapter_page, LAST=LAST,
                       stage_titles=[stage_class(n).TITLE for n in range(LAST + 1)],
                       extra_pages=EXTRA_PAGES)
    search: list[dict[str, str]] = []

    def write(name: str, template: str, open_chapters: tuple[int, ...] = (), **context) -> None:
        text = env.get_template(template).render(page=name, chapters=chapters, open_chapters=open_chapters,
                                                 **context)
        text = add_contents(text)
        if name not in NO_TERM_LINKS:
            text = link_terms(text, terms)
        search.extend(search_entries(name, text))
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
            for kind in ("trace", "call"):
                if kind in r:
                    r[kind]["picture"] = pictures.entry_picture(r, kind)
        stages.append({**ts, "diff_html": diff_html, "inline_html": inline_html,
                       "chapter": chapter_of.get(n), "in_chapters": [c for c in chapters if n in c.stages],
                       "changelog": n in changelog, "pictures": pictures.stage_pictures(n),
                       "tests": [t.format(n=n) for t in TEST_IDS] if n else []})

    (out / "pygments.css").write_text(HtmlFormatter(cssclass="highlight").get_style_defs(".highlight"),
                                      encoding="utf-8")
    for name in STATIC:
        shutil.copyfile(Path(__file__).parent / "templates" / name, out / name)
    plot = None
    if bench is not None:
        pictures.cost_plot(bench, out / "cost.png")
        plot = "cost.png"

    write("index.html", "index.html", stages=stages)
    for c in chapters:
        write(chapter_page(c), "chapter.html", open_chapters=(c.number,), chapter=c,
              stages=[stages[n] for n in c.stages],
              prev=next((x for x in chapters if x.number == c.number - 1), None),
              next=next((x for x in chapters if x.number == c.number + 1), None))
    for s in stages:
        n = s["stage"]
        write(stage_page(n), "stage.html", open_chapters=tuple(c.number for c in s["in_chapters"] if not c.select),
              s=s, prev=n - 1 if n else None, next=n + 1 if n < LAST else None)
    write("register.html", "register.html", entries=register, stages=stages)
    write("glossary.html", "glossary.html", terms=terms)
    write("exercises.html", "exercises.html", stages=stages[1:])
    write("changelog.html", "changelog.html",
          entries=[{"stage": n, "html": markdown_html(_changelog_body(text)), "title": _changelog_title(text)}
                   for n, text in sorted(changelog.items())])
    write("tests.html", "tests.html", stages=stages[1:])
    write("cost.html", "cost.html", stages=stages, plot=plot, bench=bench, seed=model.seed_figures(bench),
          noise=model.bench_noise(bench))
    write("search.html", "search.html")
    write("genindex.html", "genindex.html", groups=index_groups(stages, register, terms, breaks))
    (out / "search-index.js").write_text(
        "// the book's search index: one entry per page section (dirty-ladder book)\n"
        "window.SEARCH_INDEX = " + json.dumps(search, ensure_ascii=False, separators=(",", ":")) + ";\n",
        encoding="utf-8")
    report.seconds = time.monotonic() - t0
    return report


def _changelog_title(text: str) -> str:
    return text.splitlines()[0].lstrip("# ").strip()


def _changelog_body(text: str) -> str:
    return "\n".join(text.splitlines()[1:]).strip()
