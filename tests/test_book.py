"""``dirty-ladder book``: the site a reader opens.

The book is built once (it must take under a minute); the tests read it with
html.parser as a browser would follow it, check it against the stage classes,
the register file and the ``replay`` command, and open it in a real headless
Chromium where one is installed (screenshots kept under
$DIRTY_LADDER_ARTIFACTS, default a temporary directory).
"""

from __future__ import annotations

import functools
import html
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
import tomllib
import zlib
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from dirty_ladder import cli
from stages import LAST, stage

ROOT = Path(__file__).resolve().parent.parent
REGISTER = tomllib.loads((ROOT / "dirty_ladder" / "divergences.toml").read_text(encoding="utf-8"))["divergence"]
UPSTREAM = "https://gitlab.com/qemu-project/qemu/-/commit/"


class Page(HTMLParser):
    """Links, ids, h1 text and the replay tables of one page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.h1 = ""
        self.tables: list[dict] = []          # {"before", "after", "kind", "rows": [[name, before, after]]}
        self.traces: list[str] = []           # <pre class="trace">: a register entry's minimal trace
        self.picture_traces: list[str] = []   # <pre class="picture-trace">: what a picture replays
        self.figures: list[dict] = []         # {"id", "rows": {label: {page: (mark, on, differs)}}, "text", "notes"}
        self.classes: dict[str, list[str]] = {}
        self._in: list[str] = []
        self._row: list[str] | None = None
        self._text = ""
        self._pre_class = ""
        self._svg_row: str | None = None
        self._figure: dict | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        for c in (a.get("class") or "").split():
            self.classes.setdefault(c, []).append(a.get("id") or a.get("href") or tag)
        if tag == "figure" and "picture" in (a.get("class") or ""):
            self._figure = {"id": a["data-picture"], "rows": {}, "text": "", "differs": []}
            self.figures.append(self._figure)
        if tag == "g" and self._figure is not None and "data-row" in a:
            self._svg_row = (a.get("data-group", "") + " / " if a.get("data-group") else "") + a["data-row"]
            self._figure["rows"].setdefault(self._svg_row, {})        # one <g> per row and word
            if "differs" in a.get("class", "") and self._svg_row not in self._figure["differs"]:
                self._figure["differs"].append(self._svg_row)
        if tag == "rect" and self._svg_row is not None and "data-page" in a:
            self._figure["rows"][self._svg_row][int(a["data-page"])] = (
                a["data-mark"], " on" in " " + a["class"], "differs" in a["class"])
        if tag == "pre":
            self._pre_class = a.get("class") or ""
        for key in ("href", "src"):
            if key in a and tag in ("a", "link", "img", "script"):
                self.links.append(a[key])
        if tag == "table" and "replay" in (a.get("class") or ""):
            self.tables.append({"before": int(a["data-before"]), "after": int(a["data-after"]),
                                "kind": a["data-kind"], "rows": []})
        if tag == "tr" and self.tables and "replay" in self._in_table():
            self._row = []
        if tag in ("td", "th", "h1", "pre"):
            self._text = ""
        self._in.append(tag if tag != "table" else "table:" + (a.get("class") or ""))

    def _in_table(self) -> str:
        tables = [t for t in self._in if t.startswith("table:")]
        return tables[-1] if tables else ""

    def handle_endtag(self, tag):
        while self._in:
            top = self._in.pop()
            if top == tag or top.startswith(tag + ":"):
                break
        if tag == "h1":
            self.h1 = self._text.strip()
        if tag == "pre":
            if self._pre_class == "picture-trace":
                self.picture_traces.append(self._text)
                if self._figure is not None:
                    self._figure["trace"] = json.loads(self._text)
            else:
                self.traces.append(self._text)
        if tag == "g":
            self._svg_row = None
        if tag == "figure":
            self._figure = None
        if tag in ("td", "th") and self._row is not None:
            self._row.append(self._text.strip())
        if tag == "tr" and self._row is not None:
            if self._row and self._row[0] != "observable":
                self.tables[-1]["rows"].append(self._row)
            self._row = None

    def handle_data(self, data):
        self._text += data
        if self._figure is not None:
            self._figure["text"] += data


@functools.lru_cache(maxsize=None)
def parse(path: Path) -> Page:
    """A page of the book, parsed once (the book is written once per module)."""
    p = Page()
    p.feed(path.read_text(encoding="utf-8"))
    return p


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    pytest.importorskip("jinja2", reason="the book extra is not installed (pip install -e '.[book]')")
    out = tmp_path_factory.mktemp("book")
    t0 = time.monotonic()
    assert cli.main(["book", str(out)]) == 0
    seconds = time.monotonic() - t0
    assert seconds < 60, seconds
    return out


def stage_pages(book: Path) -> dict[int, Path]:
    """The stage pages as the index links them, by the stage number in their h1."""
    index = parse(book / "index.html")
    out = {}
    for link in index.links:
        target = book / urlsplit(link).path
        if target.suffix == ".html" and target.exists():
            h1 = parse(target).h1
            if h1.startswith("Stage "):
                out[int(h1.split()[1].rstrip(":"))] = target
    return out


def test_every_stage_has_a_page_with_its_title(book):
    pages = stage_pages(book)
    assert sorted(pages) == list(range(LAST + 1))
    for n, path in pages.items():
        assert parse(path).h1 == f"Stage {n:02d}: {stage(n).TITLE}"


def test_every_link_resolves(book):
    checked = 0
    for page in sorted(book.glob("*.html")):
        for link in parse(page).links:
            parts = urlsplit(link)
            if parts.scheme in ("http", "https"):
                assert link.startswith(UPSTREAM), link            # the only links out: upstream commits
                continue
            assert not parts.scheme and not link.startswith("/"), (page.name, link)   # relative only
            target = (page.parent / unquote(parts.path)) if parts.path else page
            assert target.exists(), (page.name, link)
            if parts.fragment:
                assert parts.fragment in parse(target).ids, (page.name, link)
            checked += 1
    assert checked > 500


def test_each_stage_links_its_commit_changelog_entry_and_rung_test(book):
    for n, path in stage_pages(book).items():
        page = parse(path)
        upstream = stage(n).UPSTREAM
        if upstream:
            assert UPSTREAM + upstream.split()[0] in page.links, n
        assert f"changelog.html#stage-{n:02d}" in page.links, n
        if n:
            assert f"tests.html#rung{n:02d}" in page.links, n


def test_each_register_entry_is_on_its_rungs_page(book):
    pages = stage_pages(book)
    for e in REGISTER:
        assert e["id"] in parse(pages[e["rung"]]).ids, e["id"]


def _observable(result: dict, name: str):
    """The value a row names, read off a replay result."""
    key = name.split()[0]
    if key.startswith("results["):
        return result["results"][int(key[len("results["):-1])]
    state = result["state"]
    if "." in key:
        a, b = key.split(".", 1)
        return state[a][b]
    return state[key]


def _flag_bytes(n: int, trace_text: str) -> str:
    """Stage n's flag bytes after a trace, read off its ram_list directly
    (the repr row of the three representation-level entries, all before
    the bitmaps of stage 19)."""
    from dirty_ladder.machine import Machine
    from dirty_ladder.trace import loads
    trace = loads(trace_text)
    m = Machine(stage(n), trace.config)
    for op in trace.ops:
        m.run_op(op)
    return " ".join(f"{b:02x}" for b in m.stage.ram_list.phys_dirty.tolist())


def test_every_replayed_trace_matches_replay(book, tmp_path, capsys):
    tables = 0
    for n, path in stage_pages(book).items():
        page = parse(path)
        traces = [t for t in page.traces if '"dirty-trace/1"' in t]        # the entries' own, not the pictures'
        trace_tables = [t for t in page.tables if t["kind"] == "trace"]
        assert len(traces) == len(trace_tables) == sum(1 for e in REGISTER if e["rung"] == n and "trace" in e)
        entries = [e for e in REGISTER if e["rung"] == n and "trace" in e]
        for text, table, entry in zip(traces, trace_tables, entries):
            trace_file = tmp_path / f"t{n}.json"
            trace_file.write_text(text, encoding="utf-8")
            results = {}
            for k in (table["before"], table["after"]):
                assert cli.main(["replay", str(trace_file), "--stage", str(k), "--json"]) == 0
                results[k] = json.loads(capsys.readouterr().out)
            assert table["rows"]
            differs = 0
            repr_rows = [row for row in table["rows"] if row[0].startswith("repr:")]
            for name, before, after in table["rows"]:
                if name.startswith("repr:"):
                    assert name == "repr: flag bytes", (n, name)
                    assert json.loads(before) == _flag_bytes(table["before"], text), n
                    assert json.loads(after) == _flag_bytes(table["after"], text), n
                    continue
                assert json.loads(before) == _observable(results[table["before"]], name), (n, name)
                assert json.loads(after) == _observable(results[table["after"]], name), (n, name)
                differs += before != after
            if any(sig.startswith("machine:") for sig in entry["signatures"]):
                assert differs, n                 # a machine-level entry shows in the observables
            levels = {sig.split(":")[0] for sig in entry["signatures"]}
            if "repr" in levels and "machine" not in levels:
                (_, before, after), = repr_rows    # no observer sees it: it shows in the bytes
                assert before != after, n
            else:
                assert not repr_rows, n
            tables += 1
    assert tables == sum(1 for e in REGISTER if "trace" in e)


def test_the_cost_page_has_the_plot(book):
    page = parse(book / "cost.html")
    assert "cost.png" in page.links
    png = (book / "cost.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000


def test_book_help_says_what_the_book_is(capsys):
    """``book --help`` names every library of the book extra (pyproject.toml),
    every page the sidebar lists beside the chapters and stages, says that
    search is a script (not "no JavaScript"), and that the pictures are of
    each structure and each register entry, not of the three bitmaps only."""
    from dirty_ladder.book import EXTRA_PAGES
    assert cli.main(["book", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    for requirement in extra["book"]:
        name = re.match(r"[A-Za-z0-9_.-]+", requirement).group(0)
        assert name in text, name
    for href, title in EXTRA_PAGES:
        if href.startswith("stage-"):
            continue
        assert title.lower().split()[-1] in text.lower(), title
    assert "search" in text and "script" in text
    assert not re.search(r"\bno JavaScript\b", text)
    assert "three bitmaps" not in text and "each structure" in text and "register entry" in text


def test_without_the_extra_book_is_one_line_naming_it(monkeypatch, tmp_path, capsys):
    import builtins
    real = builtins.__import__

    def no_jinja(name, *args, **kwargs):
        if name == "jinja2" or name.startswith("jinja2."):
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_jinja)
    rc = cli.main(["book", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "pip install -e '.[book]'" in err and "jinja2" in err


# ------------------------------------------------------------------ pictures drawn from replays
def _replay(capsys, tmp_path, trace: dict, n: int) -> dict:
    """``dirty-ladder replay`` of a trace on stage n: the command's own JSON."""
    path = tmp_path / "picture-trace.json"
    path.write_text(json.dumps(trace), encoding="utf-8")
    assert cli.main(["replay", str(path), "--stage", str(n), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _pages(ranges) -> set[int]:
    return {p for a, b in ranges for p in range(a, b)}


def _on(row: dict) -> set[int]:
    return {p for p, (_, on, _) in row.items() if on}


def _figure(page: Page, ident: str) -> tuple[dict, dict]:
    """A picture of a page by its id, and the trace printed under it."""
    fig = next(f for f in page.figures if f["id"] == ident)
    return fig, fig["trace"]


def test_the_structure_pages_have_their_pictures_with_pages_and_words_labelled(book):
    pages = stage_pages(book)
    expected = {14: ["flag-byte-13-14"], 19: ["flag-byte-18", "bytes-and-bitmaps"], 30: ["tlb-reset"],
                37: ["kvm-log-4k", "kvm-log-64k"], 39: ["migration-sync"]}
    for n, ids in expected.items():
        page = parse(pages[n])
        assert [f["id"] for f in page.figures][:len(ids)] == ids, n
        for f in page.figures[:len(ids)]:
            if f["id"].startswith("flag-byte"):
                assert all(f"bit {b}" in f["text"] for b in range(8)), n
                continue
            assert "word 0: pages 0-" in f["text"], (n, f["id"])            # words and pages labelled
            assert re.search(r"bit i of word 0", f["text"]), (n, f["id"])
    big = next(f for f in parse(pages[19]).figures if f["id"] == "bytes-and-bitmaps")
    for label in ("word 0: pages 0-63", "word 1: pages 64-127", "word 2: pages 128-"):
        assert label in big["text"]


def test_each_medium_has_its_own_legend(book):
    """The SVG fills squares and letters cells: its legend says so, and
    never the terminal's characters ("# = bit set", "- = no entry")."""
    seen = 0
    for path in stage_pages(book).values():
        for fig in parse(path).figures:
            if fig["id"].startswith("flag-byte"):
                continue
            text = fig["text"]
            assert "# = bit set" not in text and ". = clear" not in text and "- = no entry" not in text, fig["id"]
            assert "filled square = bit set" in text, fig["id"]
            if any(label.split(" / ")[-1].startswith("TLB") for label in fig["rows"]):
                assert "white = no entry" in text, fig["id"]
            seen += 1
    assert seen >= 30


def test_stage_19_draws_the_bytes_and_the_bitmaps_replay_gives(book, capsys, tmp_path):
    page = parse(stage_pages(book)[19])
    fig, trace = _figure(page, "bytes-and-bitmaps")
    after = _replay(capsys, tmp_path, trace, 19)["state"]["dirty"]
    before = _replay(capsys, tmp_path, trace, 18)["state"]["dirty"]
    rows = fig["rows"]
    for k, client in enumerate(("vga", "code", "migration")):
        assert _on(rows[f"19: dirty_memory[{k}] {client}"]) == _pages(after[client]), client
    # stage 18's byte: VGA 0x01, CODE 0x02 and MIGRATION in bit 2 since stage 14
    flags = {"vga": 1 << stage(18).DIRTY_MEMORY_VGA, "code": 1 << stage(18).DIRTY_MEMORY_CODE,
             "migration": 1 << stage(18).DIRTY_MEMORY_MIGRATION}
    for p, (mark, _, _) in rows["18: phys_dirty byte"].items():
        byte = sum(flag for c, flag in flags.items() if p in _pages(before[c]))
        assert mark == f"{byte:x}", p
    assert {63, 64, 127, 128} <= set(rows["19: dirty_memory[1] code"])     # across the word boundaries


def test_stage_14_draws_the_flag_byte_with_its_bits_named(book):
    text = (stage_pages(book)[14]).read_text(encoding="utf-8")
    names = dict(re.findall(r'data-stage="(\d+)" data-bit="(\d)" data-name="(\w+)"', text) and
                 [((int(a), int(b)), c) for a, b, c in
                  re.findall(r'data-stage="(\d+)" data-bit="(\d)" data-name="(\w+)"', text)])
    for n in (13, 14):
        st = stage(n)
        for client in ("VGA", "CODE", "MIGRATION"):
            assert names[(n, getattr(st, "DIRTY_MEMORY_" + client))] == client
    assert names[(13, 3)] == "MIGRATION" and names[(14, 2)] == "MIGRATION" and names[(14, 3)] == "spare"
    lit = {(int(a), int(b)) for a, b in re.findall(r'class="bit on" data-stage="(\d+)" data-bit="(\d)"', text)}
    assert lit == {(13, 0), (13, 1), (13, 3), (14, 0), (14, 1), (14, 2)}      # 0x0b, then 0x07


def test_the_stage_30_tlb_bug_shows_in_its_pictures(book, capsys, tmp_path):
    page = parse(stage_pages(book)[30])
    fig, trace = _figure(page, "tlb-reset")
    prefix = {**trace, "ops": trace["ops"][:-1]}                  # up to the reset, before the write
    for n in (29, 30):
        tlb = _replay(capsys, tmp_path, prefix, n)["state"]["tlb"]
        row = fig["rows"][f"stage {n} / TLB after the reset"]
        assert {p for p, (m, _, _) in row.items() if m == "N"} == _pages(tlb["notdirty"]), n
        assert {p for p, (m, _, _) in row.items() if m == "D"} == _pages(tlb["dirty"]), n
        final = _replay(capsys, tmp_path, trace, n)["state"]["dirty"]["vga"]
        assert _on(fig["rows"][f"stage {n} / vga after the write"]) == _pages(final), n
    # the difference itself: page 1's entry, NOTDIRTY at 29, dirty at 30, outlined on both
    assert fig["rows"]["stage 29 / TLB after the reset"][1] == ("N", True, True)
    assert fig["rows"]["stage 30 / TLB after the reset"][1] == ("D", False, True)
    entry = next(f for f in page.figures if f["id"] == "entry-tlb-reset-short-range-trace")
    assert entry["differs"] == ["TLB, stage 29", "TLB, stage 30"]


def test_stage_37_draws_a_log_word_beside_the_pages_it_covers(book, capsys, tmp_path):
    page = parse(stage_pages(book)[37])
    for ident, hps in (("kvm-log-4k", 4096), ("kvm-log-64k", 65536)):
        fig, trace = _figure(page, ident)
        assert trace["config"]["host_page_size"] == hps
        written = {op["addr"] // hps for op in trace["ops"] if op["op"] == "kvm_write"}
        log = fig["rows"]["KVM log, word 0"]
        ratio = hps // 4096
        assert set(log) == {h * ratio for h in range(64 // ratio)}          # a cell per host page
        assert {p // ratio for p, (m, _, _) in log.items() if m == "1"} == written
        for n in (36, 37):
            got = _pages(_replay(capsys, tmp_path, trace, n)["state"]["dirty"]["migration"])
            assert _on(fig["rows"][f"{n}: MIGRATION bitmap after kvm_sync"]) == got, (ident, n)
    fig, _ = _figure(page, "kvm-log-64k")
    assert _on(fig["rows"]["36: MIGRATION bitmap after kvm_sync"]) == set(range(16, 48))   # 16 target pages a host page
    assert _on(fig["rows"]["37: MIGRATION bitmap after kvm_sync"]) == {1, 2}               # the bug


def test_stage_39_draws_the_migration_sync_and_its_tlb(book, capsys, tmp_path):
    page = parse(stage_pages(book)[39])
    fig, trace = _figure(page, "migration-sync")
    synced = {**trace, "ops": trace["ops"][:-2]}                   # up to the sync
    for n in (38, 39):
        state = _replay(capsys, tmp_path, synced, n)["state"]
        group = f"stage {n} after the sync"
        assert _on(fig["rows"][f"{group} / migration_bitmap"]) == _pages(state["migration"]["bitmap"]), n
        assert _on(fig["rows"][f"{group} / MIGRATION client bitmap"]) == _pages(state["dirty"]["migration"]), n
        tlb = fig["rows"][f"{group} / TLB"]
        assert {p for p, (m, _, _) in tlb.items() if m == "D"} == _pages(state["tlb"]["dirty"]), n
        final = _replay(capsys, tmp_path, trace, n)["state"]["dirty"]["migration"]
        again = fig["rows"][f"MIGRATION client after the guest writes pages 1 and 105 again / stage {n}"]
        assert _on(again) == _pages(final), n
    assert "the second RAM block starts" in fig["text"] and "word 1: pages 64-" in fig["text"]
    # the caption's claim: block 0's whole-word sync takes page 105, and the only sign is its TLB entry
    after = {n: fig["rows"][f"stage {n} after the sync / TLB"] for n in (38, 39)}
    assert after[38][105][0] == "N" and after[39][105][0] == "D"
    for name in ("migration_bitmap", "MIGRATION client bitmap"):
        assert _on(fig["rows"][f"stage 38 after the sync / {name}"]) == \
            _on(fig["rows"][f"stage 39 after the sync / {name}"]), name
    assert "migration_dirty_pages after the sync: " in fig["text"]
    count = re.search(r"migration_dirty_pages after the sync(?: \(differs\))?: (\d+) \u2192 (\d+)", fig["text"])
    assert count and count.group(1) == count.group(2)
    assert "the only sign of it is page 105's TLB entry" in fig["text"]
    assert "takes page 105 too" not in fig["text"]


def test_every_register_entry_picture_labels_what_differs(book):
    """Each entry's replay table is followed by its picture; every
    observable the table marks as differing is a labelled row of the
    picture (pages per client, the TLB, the TB pages) or a labelled note."""
    pages = stage_pages(book)
    names = {"dirty.vga": "vga dirty", "dirty.code": "code dirty", "dirty.migration": "migration dirty",
             "tlb.notdirty": "TLB", "tlb.dirty": "TLB", "tlb_notdirty": "TLB", "tb_pages": "TB pages"}
    checked = 0
    for n in sorted({e["rung"] for e in REGISTER}):
        page = parse(pages[n])
        figures = [f for f in page.figures if f["id"].startswith("entry-")]
        expected = [f"entry-{e['id']}-{kind}" for e in REGISTER if e["rung"] == n
                    for kind in ("trace", "call") if kind in e]
        assert [f["id"] for f in figures] == expected, n
        assert len(page.tables) == len(figures), n
        for table, fig in zip(page.tables, figures):
            differing = [row[0] for row in table["rows"] if row[1] != row[2]]
            assert differing, fig["id"]
            for name in differing:
                if name.split()[0] in names:
                    assert any(r.startswith(names[name.split()[0]]) for r in fig["differs"]), (fig["id"], name)
                else:
                    assert f"{name} (differs): " in fig["text"], (fig["id"], name)
            checked += 1
    assert checked == sum(("trace" in e) + ("call" in e) for e in REGISTER)


# ------------------------------------------------------------------ the glossary
GLOSSARY = tomllib.loads((ROOT / "dirty_ladder" / "glossary.toml").read_text(encoding="utf-8"))["term"]
ISSUE_TERMS = ("client", "TLB", "NOTDIRTY", "TB", "TCG", "Xen", "KVM dirty log", "host page", "target page",
               "hpratio", "lebitmap", "64-page boundary")


def test_the_glossary_defines_every_term_the_issue_lists(book):
    page = parse(book / "glossary.html")
    for word in ISSUE_TERMS:
        term = next((t for t in GLOSSARY if word in t["aliases"]), None)
        assert term is not None, word
        assert term["id"] in page.ids
        sentences = [x for x in re.split(r"(?<=[.!?])\s+", " ".join(term["text"].split())) if x]
        assert 2 <= len(sentences) <= 5, (word, len(sentences))
        assert 0 <= term["stage"] <= LAST


def test_the_glossary_names_only_real_code_and_stages():
    sources = "\n".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "stages").glob("*.py")))
    sources += (ROOT / "dirty_ladder" / "machine.py").read_text(encoding="utf-8")
    for t in GLOSSARY:
        assert 0 <= t["stage"] <= LAST, t["id"]
        for code in re.findall(r"`([^`]+)`", t["text"]):
            if re.fullmatch(r"[\w-]+(/[\w-]+)*\.\w+", code) and "/" in code:
                assert (ROOT / code).exists(), (t["id"], code)              # a file of the project
                continue
            for name in re.findall(r"(?<![\w/-])[A-Za-z_][A-Za-z0-9_]*_[A-Za-z0-9_]+(?![\w/-])", code):
                assert name in sources, (t["id"], name)


class Uses(HTMLParser):
    """The running text of a page's main part, in order, each piece with the
    glossary entry of the link around it (or None): what a reader meets."""

    SKIP = {"pre", "h1", "h2", "h3", "h4", "h5", "h6", "svg", "script", "style", "summary", "figcaption", "dt",
            "nav", "aside", "header", "footer"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.pieces: list[tuple[str, str | None, bool]] = []        # (text, glossary id, whole <code>)
        self._stack: list[tuple[str, str, str]] = []
        self._main = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "main":
            self._main = True
        if tag not in ("br", "img", "input", "meta", "link", "hr", "wbr"):
            self._stack.append((tag, a.get("class") or "", a.get("href") or ""))

    def handle_endtag(self, tag):
        names = [x[0] for x in self._stack]
        if tag in names:
            del self._stack[len(names) - 1 - names[::-1].index(tag):]
        if tag == "main":
            self._main = False

    def handle_data(self, data):
        if not self._main:
            return
        skip = any(t in self.SKIP or any(c in cls.split() for c in ("replay", "highlight", "facts", "ui"))
                   for t, cls, _ in self._stack)
        links = [(cls, href) for t, cls, href in self._stack if t == "a"]
        term = links[-1][1].split("#")[1] if links and links[-1][0] == "term" else None
        if links and term is None:
            skip = True                        # inside another link: no glossary link can go there
        in_code = bool(self._stack) and self._stack[-1][0] == "code"
        if not skip:
            self.pieces.append((data, term, in_code))


def test_every_page_links_the_first_use_of_each_term(book):
    """Read as a reader does: the words of the running text in order, a
    longer term before a shorter one inside it ("KVM log" is the KVM dirty
    log, not KVM), a code span when it is a term as a whole.  The first use
    of each term on a page must be the link to it; no other use may be."""
    owner = {a: t["id"] for t in GLOSSARY for a in t["aliases"]}
    pattern = re.compile(r"(?<![\w-])(" + "|".join(re.escape(a) for a in sorted(owner, key=len, reverse=True))
                         + r")(?![\w-])")
    checked = 0
    for path in sorted(book.glob("*.html")):
        if path.name in ("glossary.html", "search.html"):      # the glossary itself; the search page links none
            continue
        uses = Uses()
        uses.feed(path.read_text(encoding="utf-8"))
        seen: set[str] = set()
        for text, term, in_code in uses.pieces:
            found = ([owner[text]] if text in owner else []) if in_code else [owner[m.group(1)] for m in
                                                                                pattern.finditer(text)]
            if term is not None:
                assert found and found[0] == term and term not in seen, (path.name, term, text)
            for ident in found:
                if ident not in seen:
                    assert term == ident and found.index(ident) == 0, (path.name, ident, text)
                    seen.add(ident)
                    checked += 1
    assert checked > 300


# ------------------------------------------------------------------ what the book says
def test_no_model_figure_is_shown_as_qemus(book):
    pages = [p for p in sorted(book.glob("*.html"))]
    seen = 0
    for path in pages:
        text = re.sub(r"<[^>]+>", " ", path.read_text(encoding="utf-8"))
        text = " ".join(html.unescape(text).split())
        for m in re.finditer(r"-> [\d.,]+ ns per page", text):
            assert text[m.end():m.end() + 25].startswith(" in this Python model"), (path.name, m.group(0))
            seen += 1
        assert "orders of magnitude" not in text, path.name
    assert seen > 40
    cost = " ".join(re.sub(r"<[^>]+>", " ", (book / "cost.html").read_text(encoding="utf-8")).split())
    bench = json.loads((ROOT / "docs" / "bench.json").read_text(encoding="utf-8"))
    for row in bench["setup_model"]:
        assert f"{row['seed_before_ms']:,} ms &rarr; {row['seed_after_ms']:,} ms" in cost or \
            f"{row['seed_before_ms']:,} ms \u2192 {row['seed_after_ms']:,} ms" in html.unescape(cost)


def test_a_cost_within_the_bench_noise_is_not_shown(book):
    """Stage 09's migration sync moved 2% while its repeats spread over 3%:
    within the noise.  Stage 26's get_dirty fell thousands of times."""
    bench = json.loads((ROOT / "docs" / "bench.json").read_text(encoding="utf-8"))
    by = {r["stage"]: r for r in bench["stages"]}

    def spread(n, op):
        m = by[n]["measured"][op]
        xs = sorted(x / m["pages"] for x in m["samples_ns"])
        return (xs[-1] - xs[0]) / xs[len(xs) // 2]
    ratio = by[9]["sync_ns_per_page"] / by[8]["sync_ns_per_page"]
    assert abs(ratio - 1) < 2 * max(spread(8, "sync"), spread(9, "sync"))       # the premise
    pages = stage_pages(book)
    assert "migration_bitmap_sync:" not in re.sub(r"<[^>]+>", "", pages[9].read_text(encoding="utf-8"))
    assert "get_dirty: 212 -> 0.0453 ns per page in this Python model" in html.unescape(
        pages[26].read_text(encoding="utf-8"))


def test_the_prose_is_rendered_markdown(book):
    for path in sorted(book.glob("chapter-*.html")) + [book / "glossary.html", book / "changelog.html"]:
        text = path.read_text(encoding="utf-8")
        main = text.partition('<main id="content">')[2]
        visible = re.sub(r"<pre.*?</pre>|<code>.*?</code>", "", main, flags=re.S)
        assert "`" not in re.sub(r"<[^>]+>", "", visible), path.name           # no raw Markdown backticks
        assert "<code>" in main, path.name


def test_stage_pages_link_their_exercise_and_fold_the_diff(book):
    for n, path in stage_pages(book).items():
        text = path.read_text(encoding="utf-8")
        if n == 0:
            assert "exercises.html" not in text.partition('<main id="content">')[2]
            continue
        page = parse(path)
        assert f"exercises.html#exercise-{n:02d}" in page.links, n
        assert f"exercise-{n:02d}" in parse(book / "exercises.html").ids
        first_try = text.index(f"dirty-ladder exercise {n}</code> writes")
        solution = re.search(r'<details class="solution" id="solution"><summary>The commit\'s solution', text)
        assert solution and first_try < solution.start(), n                  # try it first, then the diff
        folded = text[solution.start():]
        if stage(n).UPSTREAM and "No function's source changes" not in folded:
            assert '<div class="highlight">' in folded, n


def test_the_book_has_a_sidebar_and_a_contents_list_on_every_page(book):
    for path in sorted(book.glob("*.html")):
        page = parse(path)
        assert "sidebar" in page.ids, path.name
        for c in model_chapters():
            assert chapter_file(c) in page.links, (path.name, c["id"])
    page = parse(stage_pages(book)[30])
    for ident in ("what", "pictures", "behaviour", "exercise", "tlb-reset-short-range"):
        assert f"#{ident}" in page.links or f"#entry-{ident}" in page.links, ident


def model_chapters():
    return tomllib.loads((ROOT / "dirty_ladder" / "tour.toml").read_text(encoding="utf-8"))["chapter"]


def chapter_file(c) -> str:
    return f"chapter-{model_chapters().index(c) + 1}-{c['id']}.html"


def _search_index(book: Path) -> list[dict]:
    text = (book / "search-index.js").read_text(encoding="utf-8")
    return json.loads(text[text.index("=") + 1:].strip().rstrip(";"))


def test_the_search_index_covers_every_page_and_its_sections(book):
    entries = _search_index(book)
    pages = {e["u"].split("#")[0] for e in entries}
    assert pages >= {p.name for p in book.glob("*.html")} - {"search.html"}
    for e in entries:
        name, _, anchor = e["u"].partition("#")
        if anchor:
            assert anchor in parse(book / name).ids, e["u"]
    hits = {e["u"] for e in entries if "hpratio" in e["x"].lower()}
    assert "glossary.html#hpratio" in hits and any(u.startswith("stage-37.html") for u in hits)


def test_the_index_page_lists_terms_functions_and_register_entries(book):
    page = parse(book / "genindex.html")
    text = (book / "genindex.html").read_text(encoding="utf-8")
    for e in REGISTER:
        assert f"stage-{e['rung']:02d}.html#{e['id']}" in page.links, e["id"]
    for t in GLOSSARY:
        assert f"glossary.html#{t['id']}" in page.links, t["id"]
    assert re.search(r"cpu_physical_memory_set_dirty_lebitmap</span> <span class=\"kind\">\(function\)</span>: "
                     r"<a href=\"stage-36.html\">", text)
    assert "<script" not in text.partition('<main id="content">')[2]


def test_the_cost_plot_fits_its_data(tmp_path):
    pytest.importorskip("matplotlib")
    from dirty_ladder import pictures
    bench = json.loads((ROOT / "docs" / "bench.json").read_text(encoding="utf-8"))
    drawn = pictures.cost_plot(bench, tmp_path / "cost.png")
    values = [r[f"{op}_ns_per_page"] for r in bench["stages"] for op in
              ("sync", "setup", "set_range", "clear_range", "get_dirty")]
    lo, hi = drawn["ylim"]
    assert lo < min(values) and hi > max(values)                       # every point inside
    assert lo > min(values) / 10 and hi < max(values) * 10              # and no decade of empty axis
    assert any(label.startswith("39: ") for label in drawn["labels"])
    assert (tmp_path / "cost.png").read_bytes()[:4] == b"\x89PNG"


# ------------------------------------------------------------------ a real browser
def browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and the unfiltered RGB(A) rows of an 8-bit PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8 and color in (2, 6)
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, [bytes(r[i:i + 3]) for r in rows for i in range(0, stride, bpp)] and rows


FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars")


class DevTools:
    """Chromium driven over its DevTools pipe (``--remote-debugging-pipe``:
    JSON messages ending in NUL, read on fd 3 and written on fd 4): open a
    page, run JavaScript in it, type into it, take a screenshot."""

    def __init__(self, path: str, profile: Path, width: int = 1280, height: int = 900):
        import fcntl
        to_chrome_r, self._w = os.pipe()
        self._r, from_chrome_w = os.pipe()
        for name in ("to_chrome_r", "from_chrome_w"):      # above 4, so that moving them to 3 and 4 cannot clash
            fd = locals()[name]
            high = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
            os.close(fd)
            if name == "to_chrome_r":
                to_chrome_r = high
            else:
                from_chrome_w = high
        launch = "import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); " \
                 "os.execv(sys.argv[3], sys.argv[3:])"
        cmd = [sys.executable, "-c", launch, str(to_chrome_r), str(from_chrome_w), path, *FLAGS,
               "--remote-debugging-pipe", f"--user-data-dir={profile}"]
        self.proc = subprocess.Popen(cmd, pass_fds=(to_chrome_r, from_chrome_w),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf, self._id, self.events = b"", 0, []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Page.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    def _send(self, message: dict) -> None:
        os.write(self._w, json.dumps(message).encode() + b"\0")

    def _receive(self, deadline: float) -> dict:
        import select
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._r], [], [], max(0.0, left))
            if not ready:
                raise TimeoutError("no answer from Chromium")
            chunk = os.read(self._r, 1 << 20)
            if not chunk:
                raise EOFError("Chromium closed its pipe")
            self._buf += chunk
        message, self._buf = self._buf.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, session: bool = False, timeout: float = 60, **params) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        self._send(message)
        deadline = time.monotonic() + timeout
        while True:
            answer = self._receive(deadline)
            if answer.get("id") == self._id:
                assert "error" not in answer, (method, answer["error"])
                return answer.get("result", {})
            self.events.append(answer)

    def open(self, url: str) -> None:
        self.events.clear()
        self.call("Page.navigate", session=True, url=url)
        deadline = time.monotonic() + 60
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            self.events.append(self._receive(deadline))

    def js(self, expression: str):
        result = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True,
                           awaitPromise=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def screenshot(self, path: Path, full_page: bool = False) -> None:
        import base64
        params = {"format": "png"}
        if full_page:
            w, h = self.js("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
            params.update(captureBeyondViewport=True, clip={"x": 0, "y": 0, "width": w, "height": min(h, 6000),
                                                             "scale": 1})
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", session=True, **params)["data"]))

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10)
        except (TimeoutError, EOFError, AssertionError, OSError):
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._w)
        os.close(self._r)


def artifacts_dir(tmp_path: Path) -> Path:
    """Where the browser test keeps its screenshots: $DIRTY_LADDER_ARTIFACTS,
    else this test's own pytest directory (kept by pytest for the last three
    runs; --basetemp DIR puts it where you want)."""
    out = Path(os.environ.get("DIRTY_LADDER_ARTIFACTS") or tmp_path / "screenshots")
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture
def chromium(tmp_path):
    path = browser()
    if path is None:
        pytest.skip("no Chromium installed (apt-get install chromium)")
    tools = DevTools(path, tmp_path / "profile")
    yield tools
    tools.close()


def test_the_book_in_a_headless_browser(book, chromium, tmp_path):
    """Stage 19's and stage 30's pages as a reader sees them at 1280x900:
    the stylesheet, the sidebar, the pictures drawn and within the page,
    the contents list, register ids on one line, and search, typed into the
    box of a page and opened as search.html?q=."""
    artifacts = artifacts_dir(tmp_path)
    for n in (19, 30):
        chromium.open((book / stage_page_name(n)).as_uri())
        shot = artifacts / f"book-stage-{n}.png"
        chromium.screenshot(shot)
        chromium.screenshot(artifacts / f"book-stage-{n}-full.png", full_page=True)
        chromium.js("document.getElementById('pictures').scrollIntoView()")
        chromium.screenshot(artifacts / f"book-stage-{n}-pictures.png")
        chromium.js("window.scrollTo(0, 0)")
        width, height, rows = png_pixels(shot.read_bytes())
        assert (width, height) == (1280, 900)
        bpp = len(rows[0]) // width
        r, g, b = rows[4][640 * bpp:640 * bpp + 3]                  # the top bar is dark blue (#23395d)
        assert b > r + 30 and b < 140, (r, g, b)
        seen = chromium.js("""(() => {
            const side = document.querySelector('nav.sidebar').getBoundingClientRect();
            const here = document.querySelector('nav.sidebar a[aria-current="page"]');
            const pics = [...document.querySelectorAll('svg.picture')].map(s => {
                const r = s.getBoundingClientRect();
                const box = s.viewBox.baseVal;
                const over = [...s.querySelectorAll('text')].filter(t => {   // text cut at the picture's edge
                    const b = t.getBBox();
                    return b.x + b.width > box.x + box.width + 1;
                }).map(t => t.textContent);
                return {id: s.id, width: r.width, height: r.height, left: r.left, right: r.right,
                        cells: s.querySelectorAll('rect').length, over};
            });
            const main = document.querySelector('main').getBoundingClientRect();
            const toc = [...document.querySelectorAll('aside.page-toc a')].map(a => a.getAttribute('href'));
            const ids = [...document.querySelectorAll('.id')].map(e => e.getClientRects().length);
            return {side: [side.left, side.width, side.height], here: here && here.textContent,
                    pics, main: [main.left, main.right], toc, ids,
                    term: document.querySelectorAll('main a.term').length,
                    font: getComputedStyle(document.body).fontFamily};
        })()""")
        assert seen["side"][1] > 150 and seen["side"][2] > 300, seen["side"]       # the sidebar is there
        assert seen["here"] and seen["here"].strip().startswith(f"{n:02d}"), seen["here"]
        assert seen["pics"], n
        for pic in seen["pics"]:
            assert pic["width"] > 200 and pic["height"] > 40, pic
            assert pic["cells"] >= (1 if pic["id"].startswith("pic-entry-") else 8), pic
            assert seen["main"][0] - 1 <= pic["left"] and pic["right"] <= seen["main"][1] + 1, pic   # fits
            assert not pic["over"], pic                                          # no text cut off
        assert "#pictures" in seen["toc"] and "#behaviour" in seen["toc"], seen["toc"]
        assert all(k == 1 for k in seen["ids"]), seen["ids"]                   # no id wraps
        assert seen["term"] > 3
    # the register's ids do not break either
    chromium.open((book / "register.html").as_uri())
    assert chromium.js("[...document.querySelectorAll('a.id')].every(a => a.getClientRects().length === 1)")
    # search: typed into the box of a page
    chromium.open((book / "index.html").as_uri())
    found = chromium.js("""(() => {
        const box = document.getElementById('search-box');
        box.value = 'hpratio';
        box.dispatchEvent(new Event('input'));
        const panel = document.getElementById('search-results');
        return {hidden: panel.hidden, links: [...panel.querySelectorAll('a')].map(a => a.getAttribute('href'))};
    })()""")
    assert not found["hidden"] and "glossary.html#hpratio" in found["links"], found
    chromium.screenshot(artifacts / "book-search-box.png")
    # search: the search page, as the box's form opens it on Enter
    chromium.open((book / "search.html").as_uri() + "?q=migration+bitmap+sync")
    results = chromium.js("[...document.querySelectorAll('#search-page-results a')].map(a => a.getAttribute('href'))")
    assert results and any(r.startswith("stage-39.html") for r in results), results
    assert "result" in chromium.js("document.getElementById('search-status').textContent")
    nothing = chromium.js("window.dirtyLadderSearch('no-such-word-anywhere').length")
    assert nothing == 0


def stage_page_name(n: int) -> str:
    return f"stage-{n:02d}.html"


def test_search_in_the_browser_counts_and_lists_every_result(book, chromium):
    """search.html?q=NOTDIRTY lists every section that holds the word (there
    are more than the 30 it used to stop at) and says how many; a section
    whose own heading and text lack the word is not a result just because
    its page's title has it (only the page's first entry stands for the
    title).  The box on a page counts the same results."""
    word = "notdirty"
    index = _search_index(book)

    def holds(e: dict) -> bool:
        return word in (e["h"] + " " + e["x"]).lower() or (not e["h"] and word in e["t"].lower())
    expected = sorted(e["u"] for e in index if holds(e))
    assert len(expected) > 30
    chromium.open((book / "search.html").as_uri() + "?q=NOTDIRTY")
    got = chromium.js("[...document.querySelectorAll('#search-page-results > li > a')].map(a => a.getAttribute('href'))")
    assert sorted(got) == expected
    status = chromium.js("document.getElementById('search-status').textContent")
    assert status.startswith(f"{len(expected)} results for"), status
    first = next(e for e in index if e["u"] == got[0])
    assert word in (first["h"] + " " + first["t"]).lower(), first["u"]      # a heading or a title first
    # a word only a page's title holds: the page once, not each of its sections
    chromium.open((book / "index.html").as_uri())
    box = chromium.js("""(() => {
        const box = document.getElementById('search-box');
        box.value = 'NOTDIRTY';
        box.dispatchEvent(new Event('input'));
        return document.querySelector('#search-results .search-more').textContent;
    })()""")
    assert box.startswith(f"{len(expected)} found"), box
    titled = "bitmap_zero_extend"
    only_title = [e for e in index if titled in e["t"].lower() and titled not in (e["h"] + " " + e["x"]).lower()]
    assert only_title                                              # the premise: sections that lack it
    hits = chromium.js(f"window.dirtyLadderSearch('{titled}').map(e => e.u)")
    assert not {e["u"] for e in only_title if e["h"]} & set(hits), hits
    assert hits and all(titled in (e["h"] + " " + e["x"]).lower() or not e["h"]
                        for e in index if e["u"] in hits)
    # the title counts once per page: a section that merely mentions the word
    # once ranks below the glossary's entry for it, even on stage 18's page
    # whose title holds the word
    term = hits.index("glossary.html#bitmap-zero-extend")
    mentions = [e["u"] for e in index if e["h"] and titled not in e["h"].lower()
                and e["x"].lower().count(titled) == 1 and e["u"] in hits]
    assert any(u.startswith("stage-18.html#") for u in mentions), mentions
    assert all(hits.index(u) > term for u in mentions), (hits, mentions)


def test_no_glossary_term_is_linked_in_the_search_page_or_the_books_own_instructions(book):
    search = (book / "search.html").read_text(encoding="utf-8").partition('<main id="content">')[2]
    assert 'class="term"' not in search
    for path in sorted(book.glob("*.html")):
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r'<p[^>]*class="[^"]*\bui\b[^"]*"[^>]*>(.*?)</p>', text, re.S):
            assert 'class="term"' not in m.group(1), path.name


def test_the_glossary_page_lists_its_terms_in_its_contents(book):
    text = (book / "glossary.html").read_text(encoding="utf-8")
    toc = text.partition('<aside class="page-toc"')[2].partition("</aside>")[0]
    links = re.findall(r'href="#([^"]+)"', toc)
    assert links == [t["id"] for t in GLOSSARY]
    assert len(links) >= 38


def test_short_pages_start_at_the_top_and_the_sidebar_breaks_between_words(book, chromium, tmp_path):
    """At 1280x900: the search page's heading sits just under the top bar
    (the grid gave the empty contents row the sidebar's height, ~200 px);
    a sidebar title wraps at a space or after an underscore, never inside
    an identifier ("cpu_physical_memory_reset_d / irty()")."""
    artifacts = artifacts_dir(tmp_path)
    chromium.open((book / "search.html").as_uri())
    chromium.screenshot(artifacts / "book-search-page.png")
    gap = chromium.js("""(() => {
        const bar = document.querySelector('header.top').getBoundingClientRect();
        const h1 = document.querySelector('main h1').getBoundingClientRect();
        return h1.top - bar.bottom;
    })()""")
    assert 0 <= gap < 60, gap
    chromium.open((book / "stage-30.html").as_uri())
    chromium.js("document.querySelectorAll('nav.sidebar details').forEach(d => d.open = true)")
    breaks = chromium.js("""(() => {
        const out = [];
        for (const a of document.querySelectorAll('nav.sidebar .toc-stages a')) {
            const text = a.textContent;
            const walker = document.createTreeWalker(a, NodeFilter.SHOW_TEXT);
            let prevTop = null, prevChar = '', node;
            while ((node = walker.nextNode())) {
                for (let i = 0; i < node.length; i++) {
                    const range = document.createRange();
                    range.setStart(node, i);
                    range.setEnd(node, i + 1);
                    const rects = range.getClientRects();
                    if (!rects.length) { continue; }
                    const top = Math.round(rects[0].top);
                    const ch = node.data[i];
                    if (prevTop !== null && top > prevTop + 2 && ch !== ' ') {
                        out.push({title: text, before: prevChar, at: ch});
                    }
                    if (ch !== ' ' || prevTop === null) { prevTop = top; }
                    prevChar = ch;
                }
            }
        }
        return {breaks: out, wrapped: [...document.querySelectorAll('nav.sidebar .toc-stages a')]
                .filter(a => a.getClientRects().length > 0 && a.getBoundingClientRect().height > 24).length};
    })()""")
    assert breaks["wrapped"] > 5                                    # the premise: titles do wrap
    bad = [b for b in breaks["breaks"] if b["before"] not in (" ", "_")]
    assert not bad, bad
