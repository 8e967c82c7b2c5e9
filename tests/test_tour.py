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


def test_a_short_text_on_a_terminal_is_not_paged(tmp_path):
    screen, paged = in_terminal(tmp_path, "tour", columns=100, lines=40)
    assert paged is None
    assert "\x1b[" in screen and "api-cleanup" in visible(screen)


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


def test_the_interval_the_bugs_chapter_states_follows_from_its_dates():
    result = " ".join(next(c for c in TOUR if c["id"] == "bugs")["result"].split())
    m = re.search(r"about (\w+) weeks after .*?(\d{4}-\d\d-\d\d).*?(\d{4}-\d\d-\d\d)", result)
    assert m, result
    weeks = {"two": 2, "three": 3, "four": 4}[m.group(1)]
    days = (datetime.date.fromisoformat(m.group(3)) - datetime.date.fromisoformat(m.group(2))).days
    assert abs(days - 7 * weeks) <= 5, (days, weeks)


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


def test_every_cost_the_tour_prints_is_the_models(capsys):
    for n in range(1, LAST + 1):
        rc, out, _ = run(capsys, "tour", str(n), "--no-diff")
        for line in out.splitlines():
            if "ns per page" in line:
                assert "in this Python model" in line, (n, line)
