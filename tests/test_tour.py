"""The tour as a reader meets it: in a terminal (coloured, paged, 100
columns), piped (plain), and what its hand-written prose claims.

Expected values come from the register and the stage docstrings read
directly, from docs/bench.json, or from a real pseudo-terminal; never from
the function under test.
"""

from __future__ import annotations

import ast
import datetime
import json
import os
import re
import select
import struct
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from dirty_ladder import cli
from stages import LAST, MODULES, stage

ROOT = Path(__file__).resolve().parent.parent
REGISTER = tomllib.loads((ROOT / "dirty_ladder" / "divergences.toml").read_text(encoding="utf-8"))["divergence"]
TOUR = tomllib.loads((ROOT / "dirty_ladder" / "tour.toml").read_text(encoding="utf-8"))["chapter"]
GLOSSARY = tomllib.loads((ROOT / "dirty_ladder" / "glossary.toml").read_text(encoding="utf-8"))["term"]
ESC = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b[()][0-9A-Za-z]")


@pytest.fixture(autouse=True)
def plain_width(monkeypatch):
    """The width a pipe gets when nothing says otherwise (100 columns)."""
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)


def run(capsys, *args: str) -> tuple[int, str, str]:
    rc = cli.main(list(args))
    c = capsys.readouterr()
    return rc, c.out, c.err


def visible(text: str) -> str:
    return ESC.sub("", text)


# ------------------------------------------------------------------ a real terminal
def in_terminal(tmp_path: Path, *args: str, columns: int = 120, lines: int = 30) -> tuple[str, str | None]:
    """``dirty-ladder ARGS`` on a pseudo-terminal of the given size, with
    $PAGER saving what it is given: (what reached the terminal, what was
    paged or None)."""
    import fcntl
    import termios
    paged = tmp_path / "paged.txt"
    paged.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR", "MANPAGER", "LESS")}
    env.update(PAGER=f"cat > {paged}", TERM="xterm-256color")
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "dirty_ladder", *args], stdin=slave, stdout=slave,
                            stderr=slave, env=env, cwd=tmp_path, start_new_session=True)
    os.close(slave)
    screen = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:             # the terminal's other end is closed: the command is done
                break
            if not chunk:
                break
            screen += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    assert proc.wait(timeout=30) == 0, screen.decode(errors="replace")[-2000:]
    return screen.decode(errors="replace"), paged.read_text(encoding="utf-8") if paged.exists() else None


@pytest.mark.parametrize("what", ["2", "ch2"])
def test_tour_on_a_terminal_fits_100_columns_is_paged_and_coloured(tmp_path, what):
    screen, paged = in_terminal(tmp_path, "tour", what, columns=130, lines=30)
    assert paged is not None, "not paged"
    assert "\x1b[" in paged, "no colour"
    text = visible(paged).splitlines()
    assert len(text) > 30                                       # longer than the screen, hence the pager
    assert max(len(line) for line in text) <= 100, max(text, key=len)
    assert len(visible(screen).strip()) < 200                   # it went to the pager, not the screen
    if what == "ch2":
        assert text[0].startswith("Chapter 2: One byte per page becomes three bitmaps")
    else:
        assert text[0] == f"== stage 02: {stage(2).TITLE}"


TABLES = {"register": ("register",), "register-entry": ("register", "tlb-reset-short-range"),
          "list": ("list",), "show": ("show", "19")}


@pytest.mark.parametrize("args", TABLES.values(), ids=TABLES.keys())
def test_the_other_teaching_commands_are_coloured_paged_and_fit_on_a_terminal(tmp_path, args):
    """register, register ID, list and show go through the same screen as
    the tour: on a terminal coloured, paged when longer than it, and no
    wider than it (here 80 columns); piped, plain text in 100 columns with
    no escape codes; --json as before, JSON."""
    screen, paged = in_terminal(tmp_path, *args, columns=80, lines=30)
    assert paged is not None, "not paged"
    assert "\x1b[" in paged, "no colour"
    text = visible(paged).splitlines()
    assert len(text) > 30 and max(len(line) for line in text) <= 80, max(text, key=len)
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.run([sys.executable, "-m", "dirty_ladder", *args], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 0 and proc.stderr == "" and "\x1b" not in proc.stdout
    assert max(len(line) for line in proc.stdout.splitlines()) <= 100
    assert visible(paged).split()[:3] == proc.stdout.split()[:3]          # the same text, only narrower
    js = subprocess.run([sys.executable, "-m", "dirty_ladder", *args, "--json"], capture_output=True, text=True,
                        env=env, cwd=tmp_path, timeout=120)
    assert js.returncode == 0 and json.loads(js.stdout)


def test_a_short_text_on_a_terminal_is_not_paged(tmp_path):
    screen, paged = in_terminal(tmp_path, "tour", columns=100, lines=40)
    assert paged is None
    assert "\x1b[" in screen and "api-cleanup" in visible(screen)


@pytest.mark.parametrize("columns", [60, 80])
def test_tour_on_a_narrow_terminal_draws_its_pictures_whole(tmp_path, columns):
    """On a 60- or 80-column terminal: no traceback, no line past the edge,
    each bitmap row under its own label, the flag byte with all eight bits
    and their owners (it was cut after "bit" at 80, and raised at 60)."""
    for what, client_rows in (("19", ("19: vga", "19: code", "19: mig")), ("30", ())):
        screen, paged = in_terminal(tmp_path, "tour", what, "--no-diff", columns=columns, lines=30)
        text = visible(paged if paged is not None else screen)
        assert "Traceback" not in text
        lines = text.replace("\r", "").splitlines()
        assert max(len(line) for line in lines) <= columns, max(lines, key=len)
        for label in client_rows:
            assert sum(line.startswith(f"  {label} ") for line in lines) >= 3, label     # a row per word
        if what == "19":
            byte = text[text.index("One page's flag byte"):text.index("Flag bytes (stage 18)")]
            for bit in range(8):
                assert f"bit {bit}" in byte, bit
            for owner in ("VGA", "CODE", "MIGRATION", "spare"):
                assert owner in byte, owner
            assert "= 0x07" in byte


def _all_pictures():
    from dirty_ladder import model, pictures
    out = [(f"stage {n}", p) for n in range(LAST + 1) for p in pictures.stage_pictures(n)]
    for e in model.load_register_safely():
        replay = model.entry_replay(e)
        for kind in ("trace", "call"):
            if kind in replay:
                picture = pictures.entry_picture(replay, kind)
                if picture is not None:
                    out.append((f"{e.id} {kind}", picture))
    return out


def test_every_picture_fits_every_width_from_20_to_200_with_its_rows_labelled():
    from dirty_ladder.pictures import FlagBytes
    drawn = _all_pictures()
    assert len(drawn) >= 30
    for where, picture in drawn:
        for width in range(20, 201):
            lines = picture.text(width)
            assert max(len(line) for line in lines) <= width, (where, width, max(lines, key=len))
            text = "\n".join(lines)
            if isinstance(picture, FlagBytes):
                for bit in range(8):
                    assert f"bit {bit}" in text, (where, width, bit)
                for name in {x for v in picture.views for x in v.names}:
                    assert name in text, (where, width, name)
                continue
            body = [line[2:] for line in lines]
            for row in picture.rows:                   # each row under its whole label, full or short
                indent = "  " if row.group else ""
                names = [indent + row.label + " ", indent + (row.short or row.label) + " "]
                assert any(line.startswith(tuple(names)) for line in body), (where, width, row.label)
            groups: dict[str, list[str]] = {}
            for row in picture.rows:
                groups.setdefault(row.group, []).append(row.short or row.label)
            for group, shorts in groups.items():
                assert len(set(shorts)) == len(shorts), (where, group, shorts)   # short labels still tell rows apart
            if width >= 100 and not any(len(r.label) > 30 for r in picture.rows):
                assert all(any(line.startswith(("  " if r.group else "") + r.label + " ") for line in body)
                           for r in picture.rows), (where, width)                   # full labels when they fit


@pytest.mark.parametrize("columns", [20, 45, 69, 80, 137])
def test_tour_of_a_stage_never_passes_the_width_of_the_terminal(capsys, monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", str(columns))
    for n in ("14", "19", "30", "37", "39"):
        rc, out, err = run(capsys, "tour", n, "--no-diff")
        assert rc == 0 and err == "", err
        width = min(columns, 100)
        assert max(len(line) for line in out.splitlines()) <= width, (n, max(out.splitlines(), key=len))


def test_tour_piped_is_plain_and_json_is_json(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    for what in ("2", "ch2"):
        proc = subprocess.run([sys.executable, "-m", "dirty_ladder", "tour", what], capture_output=True,
                              text=True, env=env, cwd=tmp_path, timeout=120)
        assert proc.returncode == 0 and proc.stderr == ""
        assert "\x1b" not in proc.stdout
        assert max(len(line) for line in proc.stdout.splitlines()) <= 100
        assert all(line == line.rstrip() for line in proc.stdout.splitlines())
        js = subprocess.run([sys.executable, "-m", "dirty_ladder", "tour", what, "--json"], capture_output=True,
                            text=True, env=env, cwd=tmp_path, timeout=120)
        data = json.loads(js.stdout)
        assert [s["stage"] for s in data["stages"]] == ([2] if what == "2" else list(range(14, 26)))


# ------------------------------------------------------------------ what a chapter prints
def test_a_chapter_prints_its_prose_first_then_a_line_per_stage(capsys):
    chapter = TOUR[1]
    rc, out, _ = run(capsys, "tour", chapter["id"])
    assert rc == 0
    lines = out.splitlines()
    flat = " ".join(out.split())
    first_stage = next(i for i, line in enumerate(lines) if re.match(r"\d\d\s{2,}", line))
    prose_end = max(flat.index(re.sub(r"[`*]", "", " ".join(chapter[k].split()))[-40:])
                    for k in ("problem", "result", "look_at"))
    assert prose_end < flat.index(f"{chapter['stages'][0]:02d} {stage(chapter['stages'][0]).TITLE}")
    a, b = chapter["stages"]
    stage_lines = [line for line in lines[first_stage:] if re.match(r"\d\d\s{2,}", line)]
    assert [int(line[:2]) for line in stage_lines] == list(range(a, b + 1))      # one line each, in order
    for line in stage_lines:
        n = int(line[:2])
        statuses = {e["status"] for e in REGISTER if e["rung"] == n}
        assert stage(n).TITLE in line and all(s in line for s in statuses), line
        assert statuses or line.rstrip().endswith("same"), line
    assert len(lines) < 80                                                    # not a wall of text
    assert "tour N" in out


def test_tour_n_shows_the_pictures_costs_register_and_offers_the_exercise_before_the_diff(capsys):
    rc, out, _ = run(capsys, "tour", "30")
    assert rc == 0
    assert "Resetting an unaligned range under TCG" in out and "word 0: pages 0-3" in out
    assert out.index("dirty-ladder exercise 30` first") < out.index("--- stage 29:")
    for e in REGISTER:
        if e["rung"] == 30:
            assert f"{e['id']} (rung 30, {e['status']})" in out
    rc, out, _ = run(capsys, "tour", "39")
    for line in out.splitlines():
        if "ns per page" in line:
            assert "in this Python model" in line, line
    assert "QEMU itself, migration setup of a 256 GB guest" in out
    rc, out, _ = run(capsys, "tour", "19", "--no-diff")
    assert "word 1: pages 64-127" in out and "--- stage 18" not in out


def test_the_stage_30_picture_writes_every_range_one_way(capsys):
    """first-last, both ends included, for bytes and pages alike: the pages
    a byte range touches follow from its bytes."""
    rc, out, _ = run(capsys, "tour", "30", "--no-diff")
    picture = out[out.index("Resetting an unaligned range"):out.index("Cost, in this Python model")]
    flat = " ".join(picture.split())
    assert " to " not in re.sub(r"\(.*?\)", "", flat.split("(*: differs")[0].replace("handed to the", "")), flat
    spans = re.findall(r"bytes (\d+)-(\d+) \((pages? (\d+)(?:-(\d+))?)\)", flat)
    assert len(spans) >= 4, flat
    for first, last, _, p0, p1 in spans:
        assert int(p0) == int(first) // 4096 and int(p1 or p0) == int(last) // 4096, (first, last, p0, p1)
    assert "a range a-b holds both a and b" in flat


def test_tour_glossary_prints_every_term(capsys):
    rc, out, _ = run(capsys, "tour", "glossary")
    assert rc == 0
    flat = re.sub(r"[`*]", "", " ".join(out.split()))
    for t in GLOSSARY:
        assert f"{t['term']} (first matters at stage {t['stage']:02d})" in flat, t["id"]
        assert re.sub(r"[`*]", "", " ".join(t["text"].split()))[:50] in flat, t["id"]
    rc, out, _ = run(capsys, "tour", "glossary", "--json")
    assert [t["id"] for t in json.loads(out)] == [t["id"] for t in GLOSSARY]
    rc, out, err = run(capsys, "tour", "glosary")
    assert rc == 2 and "glossary" in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------ what the prose claims
def prose() -> list[tuple[str, str]]:
    """Every hand-written text of the tour and the glossary: (where, text)."""
    out = []
    for c in TOUR:
        for key in ("problem", "result", "look_at"):
            out.append((f"tour {c['id']}.{key}", " ".join(c.get(key, "").split())))
    for t in GLOSSARY:
        out.append((f"glossary {t['id']}", " ".join(t["text"].split())))
    return out


def sources() -> list[str]:
    """What the prose may cite: each register entry, each stage docstring."""
    units = [" ".join(" ".join(str(v) for v in e.values()).split()) for e in REGISTER]
    for name in MODULES:
        path = ROOT / "stages" / f"{name}.py"
        units.append(" ".join((ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or "").split()))
    return units


HASH = re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,12}\b")
DATE = re.compile(r"\b(?:19|20)\d\d(?:-\d\d-\d\d)?\b")
VERSION = re.compile(r"QEMU (?:v)?\d+\.\d+")


def test_every_hash_and_date_the_tour_states_is_in_the_register_or_a_docstring():
    units = sources()
    hashes = dates = 0
    for where, text in prose():
        for m in HASH.finditer(text):
            assert any(m.group(0) in u for u in units), (where, m.group(0))
            hashes += 1
        for sentence in re.split(r"(?<=[.;:])\s+", text):
            for m in DATE.finditer(sentence):
                anchors = [a.group(0) for a in HASH.finditer(sentence[:m.start()])] + \
                          [a.group(0) for a in VERSION.finditer(sentence[:m.start()])]
                assert anchors, (where, m.group(0), "a date needs what it dates")
                anchor = anchors[-1].replace("QEMU ", "")
                assert any(re.search(re.escape(anchor) + r".{0,120}" + re.escape(m.group(0)), u) for u in units), \
                    (where, anchor, m.group(0))
                dates += 1
    assert hashes >= 6 and dates >= 5


WEEKS = {"one": 1, "a": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}


def test_the_interval_the_bugs_chapter_states_follows_from_its_dates():
    """"about three weeks" is the two commit dates it stands between, in
    whole weeks rounded to the nearest (22 days: three; "two" is red)."""
    result = " ".join(next(c for c in TOUR if c["id"] == "bugs")["result"].split())
    m = re.search(r"about (\w+) weeks? after .*?(\d{4}-\d\d-\d\d).*?(\d{4}-\d\d-\d\d)", result)
    assert m, result
    days = (datetime.date.fromisoformat(m.group(3)) - datetime.date.fromisoformat(m.group(2))).days
    assert WEEKS[m.group(1)] == round(days / 7), (days, m.group(1))


def test_the_bugs_chapter_gives_commit_dates_and_says_so():
    """One kind of date: each full date is a commit date, said as
    "committed DATE", and the register (or a docstring) gives that same
    commit date for the hash it follows; the chapter says which kind."""
    chapter = next(c for c in TOUR if c["id"] == "bugs")
    text = " ".join((chapter["problem"] + " " + chapter["result"]).split())
    assert "commit dates" in text
    units = sources()
    dates = 0
    for m in re.finditer(r"\d{4}-\d\d-\d\d", text):
        assert text[:m.start()].endswith("committed "), (m.group(0), text[max(0, m.start() - 40):m.end()])
        anchor = [h.group(0) for h in HASH.finditer(text[:m.start()])][-1]
        assert any(re.search(re.escape(anchor) + r".{0,150}committed " + m.group(0), u) for u in units), \
            (anchor, m.group(0))
        dates += 1
    assert dates >= 2


def test_the_bugs_chapter_says_when_each_bug_was_fixed_as_the_register_does():
    chapter = next(c for c in TOUR if c["id"] == "bugs")
    text = " ".join((chapter["problem"] + " " + chapter["result"]).split())
    for e in REGISTER:
        if e["status"] != "bug":
            continue
        fixed = e["fixed_upstream"]
        named = re.match(r"(?:the unit only: )?([0-9a-f]{7,12})", fixed)
        if named:
            assert named.group(1) in text, e["id"]
            year = re.search(r"\b(19|20)\d\d\b", fixed).group(0)
            assert re.search(re.escape(named.group(1)) + r".{0,15}" + year, text), (e["id"], year)
        if "not fixed" in fixed:
            assert "still there" in text, e["id"]
    for wrong in ("two months later", "mid-2014"):
        assert wrong not in text


def test_no_claim_of_the_issue_survives():
    everything = " ".join(text for _, text in prose())
    assert "orders of magnitude" not in everything
    assert "only at the representation level" not in everything
    # stage 14's entry has an API difference: the prose names it
    entry = next(e for e in REGISTER if e["id"] == "migration-bit-moves")
    functions = [s.split(":")[1] for s in entry["signatures"] if s.startswith("api:")]
    look = " ".join(next(c for c in TOUR if c["id"] == "three-bitmaps")["look_at"].split())
    assert functions and all(f in look for f in functions)


def test_the_cover_letter_figures_in_the_prose_are_the_benchs_record():
    bench = json.loads((ROOT / "docs" / "bench.json").read_text(encoding="utf-8"))
    result = " ".join(next(c for c in TOUR if c["id"] == "fast-paths")["result"].split())
    for row in bench["setup_model"]:
        before, after = row["seed_before_ms"], row["seed_after_ms"]
        assert f"{before:,} ms to {after:,} ms ({before / after:.0f}x)" in result, row["guest_gib"]
    glossary = " ".join(next(t for t in GLOSSARY if t["id"] == "setup")["text"].split())
    first = bench["setup_model"][0]
    assert f"{first['seed_before_ms']:,} ms before the series and {first['seed_after_ms']} ms" in glossary


COVER_LETTER = (ROOT / "tests" / "data" / "cover-letter-v2.txt").read_text(encoding="utf-8")


def cover_letter_runs() -> dict[tuple[str, int], dict]:
    """The tester's TCP runs in the v2 cover letter, read off its text:
    ("without" | "with", guest GB) -> setup and downtime (ms), and the
    freeze (s) the tester saw, when the letter gives one."""
    without, _, with_ = COVER_LETTER.partition("II) With")
    out = {}
    for when, part in (("without", without.partition("I) Without")[2]), ("with", with_)):
        for run in re.split(r"\n(?=[a-d]\) )", part)[1:]:
            head = re.match(r"[a-d]\) \d+VCPU/(\d+)GB \((\w+) migration\)", run)
            if not head or head.group(2) != "TCP":
                continue
            freeze = re.search(r"A freeze of ~(\d+) seconds?", run)
            out[(when, int(head.group(1)))] = {
                "setup": int(re.search(r"setup: (\d+) milliseconds", run).group(1)),
                "downtime": int(re.search(r"downtime: (\d+) milliseconds", run).group(1)),
                "freeze": int(freeze.group(1)) if freeze else None}
    return out


def test_the_cover_letter_is_read_as_it_says():
    runs = cover_letter_runs()             # the premise of the tests below, checked by hand once
    assert runs[("without", 256)] == {"setup": 6912, "downtime": 3740, "freeze": 1}
    assert runs[("with", 512)] == {"setup": 1171, "downtime": 1508, "freeze": None}
    assert sorted(runs) == [("with", 256), ("with", 512), ("without", 256), ("without", 512)]


def test_the_fast_paths_chapter_gives_the_cover_letters_figures():
    """Setup, downtime and freezes, each pair in the order the letter's runs
    give them (256 GB, then 512 GB)."""
    runs = cover_letter_runs()
    text = " ".join(next(c for c in TOUR if c["id"] == "fast-paths")["result"].split())

    def ms(x: str) -> int:
        return int(x.replace(",", ""))
    setup = re.search(r"setup of a (\d+) GB guest fell from ([\d,]+) ms to ([\d,]+) ms \(\d+x\) and of a (\d+) GB "
                      r"guest from ([\d,]+) ms to ([\d,]+) ms", text)
    assert setup, text
    for gb, before, after in ((setup.group(1), setup.group(2), setup.group(3)),
                              (setup.group(4), setup.group(5), setup.group(6))):
        assert (ms(before), ms(after)) == (runs[("without", int(gb))]["setup"], runs[("with", int(gb))]["setup"])
    down = re.search(r"downtime from ([\d,]+) to ([\d,]+) ms and from ([\d,]+) to ([\d,]+) ms", text)
    assert down, text
    assert [ms(x) for x in down.groups()] == [runs[(w, gb)]["downtime"] for gb in (256, 512)
                                              for w in ("without", "with")]
    freezes = re.findall(r"~(\d+) seconds?[^\"]*\" on the (\d+) GB", text)
    assert {int(gb): int(s) for s, gb in freezes} == {gb: runs[("without", gb)]["freeze"] for gb in (256, 512)}
    assert all(runs[("with", gb)]["freeze"] is None for gb in (256, 512))
    assert "No multi-second freezes" in text and "were gone" not in text


def test_every_quote_of_the_cover_letter_is_verbatim():
    """A phrase in double quotes, in a paragraph of the tour or the
    glossary that cites the cover letter or its tester, is in the letter
    word for word (only the case of its first letter may differ)."""
    letter = " ".join(COVER_LETTER.split())
    quotes = 0
    for where, text in prose_paragraphs():
        if "cover letter" not in text and "tester" not in text:
            continue
        for quote in re.findall(r'"([^"]+)"', text):
            found = quote in letter or (quote[0].swapcase() + quote[1:]) in letter
            assert found, (where, quote)
            quotes += 1
    assert quotes >= 5


def prose_paragraphs() -> list[tuple[str, str]]:
    out = []
    for where, text in [(f"tour {c['id']}.{k}", c.get(k, "")) for c in TOUR for k in ("problem", "result", "look_at")] \
            + [(f"glossary {t['id']}", t["text"]) for t in GLOSSARY]:
        out += [(where, " ".join(p.split())) for p in text.split("\n\n") if p.strip()]
    return out


def test_the_setup_term_says_what_the_letter_says_of_freezes():
    runs = cover_letter_runs()
    text = " ".join(next(t for t in GLOSSARY if t["id"] == "setup")["text"].split())
    first = runs[("without", 256)]
    assert f"{first['setup']:,} ms before the series and {runs[('with', 256)]['setup']} ms" in text
    assert f"~{first['freeze']} second" in text                  # the freeze beside that setup, not the setup
    assert not re.search(r"setup is a freeze|freeze of [\d,]+ ms", text), text


def _segments(text: str) -> dict[int, str]:
    """The text from each "Stage NN" / "stage NN" to the next mention of another stage."""
    marks = [(m.start(), int(m.group(1))) for m in re.finditer(r"\b[Ss]tage (\d\d)\b", text)]
    out: dict[int, str] = {}
    for k, (at, n) in enumerate(marks):
        end = next((a for a, m in marks[k + 1:] if m != n), len(text))
        out[n] = out.get(n, "") + " " + text[at:end]
    return out


def test_the_representation_term_says_where_each_change_it_names_shows():
    """For each rung the term names whose register entry shows in the raw
    representation: every API function the entry's signatures name is named
    there too (stage 14: cpu_physical_memory_clear_dirty_flag); an entry
    seen only in the representation is said to show only there; an entry
    an observable of the machine shows is never said to show in none."""
    text = " ".join(next(t for t in GLOSSARY if t["id"] == "representation")["text"].split())
    segments = _segments(text)
    named = 0
    for e in REGISTER:
        if e["rung"] not in segments or not any(s.startswith("repr:") for s in e["signatures"]):
            continue
        part = segments[e["rung"]]
        levels = {s.split(":")[0] for s in e["signatures"]}
        for sig in e["signatures"]:
            if sig.startswith("api:"):
                assert sig.split(":")[1] in part, (e["id"], sig, part)
        if levels == {"repr"}:
            assert re.search(r"\bonly\b", part), (e["id"], part)
        if "machine" in levels:
            assert "no observable" not in part, (e["id"], part)
        named += 1
    assert named >= 2


def test_the_tb_term_says_what_tcg_needs_and_links_the_break_of_it():
    """The TB term says what a page holding a TB needs and that it is broken,
    linking each invariant break of CODE (invariants.toml) to its stage page;
    "every stage" only when the break covers them all."""
    breaks = tomllib.loads((ROOT / "dirty_ladder" / "invariants.toml").read_text(encoding="utf-8"))["break"]
    code = [b for b in breaks if any(s.startswith("code:") for s in b["signatures"])]
    text = " ".join(next(t for t in GLOSSARY if t["id"] == "tb")["text"].split())
    assert code and "TCG needs" in text and "broken" in text
    for b in code:
        first = b["stages"][0][0]
        assert f"]({f'stage-{first:02d}.html'}#break-{b['id']})" in text, b["id"]
        if b["stages"] == [[0, LAST]]:
            assert "every stage" in text


def _functions_called(op: str, n: int) -> set[str]:
    """The stage functions the bench's operation ``op`` calls at stage ``n``,
    seen as it runs (sys.setprofile) on a guest of two words of pages."""
    from dirty_ladder.bench.measure import Guest, make_op
    guest = Guest(stage(n), 128 * 4096, "single")
    operation = make_op(op, guest, 0.05, 0)
    operation.prepare()
    names: set[str] = set()

    def profile(frame, event, arg):
        if event == "call" and f"{os.sep}stages{os.sep}" in frame.f_code.co_filename:
            names.add(frame.f_code.co_name)
    sys.setprofile(profile)
    try:
        operation.call()
    finally:
        sys.setprofile(None)
    return names


def test_a_cost_is_shown_only_at_a_commit_that_changed_what_it_runs():
    """Of the changes that stand out of the bench's noise, a stage shows
    those whose operation, run at stage N-1 or N, calls a function commit N
    changed (its API diff): stage 39 changes no range function, so its
    1.4x on set_dirty_range is hidden; stage 37's KVM log merge runs in
    the sync, through the machine, so its sync change is shown."""
    from dirty_ladder import model
    bench = json.loads((ROOT / "docs" / "bench.json").read_text(encoding="utf-8"))
    shown_somewhere = hidden = 0
    for n in range(1, LAST + 1):
        changed = {x for c in model.compute_diff(n - 1, n)["changed_functions"] for x in c["name"].split(" -> ")}
        expected = [c for c in model.noise_changes(n, bench)
                    if (_functions_called(c["op"], n - 1) | _functions_called(c["op"], n)) & changed]
        assert model.cost_changes(n, bench) == expected, n
        shown_somewhere += len(expected)
        hidden += len(model.noise_changes(n, bench)) - len(expected)
    assert shown_somewhere > 20 and hidden >= 1
    assert [c["op"] for c in model.cost_changes(39, bench)] == ["sync", "setup"]
    assert "sync" in [c["op"] for c in model.cost_changes(37, bench)]


def test_every_cost_the_tour_prints_is_the_models(capsys):
    for n in range(1, LAST + 1):
        rc, out, _ = run(capsys, "tour", str(n), "--no-diff")
        for line in out.splitlines():
            if "ns per page" in line:
                assert "in this Python model" in line, (n, line)
