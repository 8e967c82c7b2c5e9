"""``dirty-ladder book``: the site a reader opens.

The book is built once (it must take under a minute); the tests read it with
html.parser as a browser would follow it, check it against the stage classes,
the register file and the ``replay`` command, and open it in a real headless
Chromium where one is installed (screenshots kept under
$DIRTY_LADDER_ARTIFACTS, default a temporary directory).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
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
        self.traces: list[str] = []
        self._in: list[str] = []
        self._row: list[str] | None = None
        self._text = ""

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
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
            self.traces.append(self._text)
        if tag in ("td", "th") and self._row is not None:
            self._row.append(self._text.strip())
        if tag == "tr" and self._row is not None:
            if self._row and self._row[0] != "observable":
                self.tables[-1]["rows"].append(self._row)
            self._row = None

    def handle_data(self, data):
        self._text += data


def parse(path: Path) -> Page:
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
        traces = [t for t in page.traces if '"dirty-trace/1"' in t]
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


@pytest.mark.skipif(browser() is None, reason="no Chromium installed (apt-get install chromium)")
def test_the_book_renders_in_a_headless_browser(book, tmp_path):
    artifacts = Path(os.environ.get("DIRTY_LADDER_ARTIFACTS") or tmp_path)
    artifacts.mkdir(parents=True, exist_ok=True)
    page = book / "stage-30.html"
    assert page.exists()
    shot = artifacts / "book-stage-30.png"
    profile = tmp_path / "profile"
    cmd = [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
           "--hide-scrollbars", f"--screenshot={shot}", "--window-size=1280,900", page.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    width, height, rows = png_pixels(shot.read_bytes())
    assert (width, height) == (1280, 900)
    bpp = len(rows[0]) // width
    pixel = lambda x, y: tuple(rows[y][x * bpp:x * bpp + 3])            # noqa: E731
    # the stylesheet loaded from the file system: the navigation bar is dark blue (#23395d)
    r, g, b = pixel(640, 4)
    assert b > r + 30 and b < 140, (r, g, b)
    # the page is not blank: many colours, and most of the body is white paper with text on it
    colours = {pixel(x, y) for y in range(0, height, 7) for x in range(0, width, 7)}
    assert len(colours) > 20, len(colours)
    dom = subprocess.run(cmd[:-3] + ["--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0
    assert f"Stage 30: {stage(30).TITLE}" in dom.stdout
    assert "tlb-reset-short-range" in dom.stdout
