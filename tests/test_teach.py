"""The teaching faces: tour, log, register, exercise, --inline, --stage-file, list.

Expected values come from the data files read directly (tomllib on the
register and the tour), from the stage classes and their source files, or
from another command (``replay``), never from the function under test.
"""

from __future__ import annotations

import builtins
import inspect
import json
import keyword
import re
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from dirty_ladder import cli, exercises
from tables import read_table
from dirty_ladder.generate import random_trace
from dirty_ladder.machine import replay
from dirty_ladder.trace import validate
from stages import LAST, MODULES, stage

ROOT = Path(__file__).resolve().parent.parent
REGISTER = tomllib.loads((ROOT / "dirty_ladder" / "divergences.toml").read_text(encoding="utf-8"))["divergence"]
TOUR = tomllib.loads((ROOT / "dirty_ladder" / "tour.toml").read_text(encoding="utf-8"))["chapter"]


def run(capsys, *args: str) -> tuple[int, str, str]:
    rc = cli.main(list(args))
    c = capsys.readouterr()
    return rc, c.out, c.err


def user_error(capsys, *args: str) -> str:
    rc, out, err = run(capsys, *args)
    assert rc == 2, (rc, out, err)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.fixture(autouse=True)
def plain_width(monkeypatch):
    """The tour's width when piped and nothing says otherwise (100 columns)."""
    monkeypatch.delenv("COLUMNS", raising=False)


@pytest.fixture(autouse=True)
def progress_file(tmp_path, monkeypatch):
    path = tmp_path / "state" / "progress.json"
    monkeypatch.setenv("DIRTY_LADDER_PROGRESS", str(path))
    return path


# ------------------------------------------------------------------ list
def test_list_fits_100_columns_and_gives_each_rungs_statuses(capsys):
    rc, out, _ = run(capsys, "list")
    assert rc == 0
    assert max(len(line) for line in out.splitlines()) <= 100
    rows = {int(r[0]): r for r in read_table(out.splitlines(), ["#", "upstream", "kind of step", "rung", "title"])}
    assert sorted(rows) == list(range(LAST + 1))
    for n in range(1, LAST + 1):
        statuses = [e["status"] for e in REGISTER if e["rung"] == n]
        cell = rows[n][3]
        for s in set(statuses):
            assert s in cell, (n, s, cell)
        if not statuses:
            assert cell == "same", cell
        if len(statuses) == 2 and len(set(statuses)) == 1:
            assert f"{statuses[0]} x2" in cell, cell


# ------------------------------------------------------------------ tour
def test_tour_chapters_cover_every_stage_once_in_order():
    spans = [c["stages"] for c in TOUR if "stages" in c]
    covered = [n for a, b in spans for n in range(a, b + 1)]
    assert covered == list(range(1, LAST + 1))
    selected = [c for c in TOUR if "select" in c]
    assert [c["select"] for c in selected] == ["bug"]


def test_tour_prints_a_chapter_in_order_with_its_register_entries(capsys):
    # --full: the chapter's prose, its line per stage, then every stage in full
    first = TOUR[0]
    rc, out, _ = run(capsys, "tour", first["id"], "--full")
    assert rc == 0
    a, b = first["stages"]
    positions = [out.index(f"== stage {n:02d}: {stage(n).TITLE}") for n in range(a, b + 1)]
    assert positions == sorted(positions)
    for e in REGISTER:
        if a <= e["rung"] <= b:
            assert e["id"] in out
    prose = re.sub(r"[`*]", "", " ".join(first["problem"].split()))      # as Markdown renders it
    assert prose[:60] in " ".join(out.split())
    assert f"tour {TOUR[1]['id']}" in out          # the way on


def test_tour_bugs_chapter_follows_the_register(capsys):
    rc, out, _ = run(capsys, "tour", "bugs", "--json")
    assert rc == 0
    data = json.loads(out)
    assert [s["stage"] for s in data["stages"]] == sorted({e["rung"] for e in REGISTER if e["status"] == "bug"})


def test_tour_contents_and_bad_chapter(capsys):
    rc, out, _ = run(capsys, "tour")
    assert rc == 0
    for c in TOUR:
        assert c["title"] in out and f"tour {c['id']}" in out
    err = user_error(capsys, "tour", "no-such-chapter")
    assert "no-such-chapter" in err and TOUR[0]["id"] in err


def _trace_file(tmp_path, trace: dict, name: str) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(trace), encoding="utf-8")
    return str(path)


def test_tour_and_register_replays_are_what_replay_gives(capsys, tmp_path):
    rc, out, _ = run(capsys, "tour", "30", "--json")
    assert rc == 0
    entries = json.loads(out)["stages"][0]["entries"]
    assert {e["id"] for e in entries} == {e["id"] for e in REGISTER if e["rung"] == 30}
    kinds = 0
    for e in entries:
        raw = next(x for x in REGISTER if x["id"] == e["id"])
        rc, rout, _ = run(capsys, "register", e["id"], "--json")
        registered = json.loads(rout)
        if "trace" in raw:
            path = _trace_file(tmp_path, json.loads(raw["trace"]), e["id"] + ".json")
            for side, n in (("before", 29), ("after", 30)):
                rc, rout, _ = run(capsys, "replay", path, "--stage", str(n), "--json")
                assert rc == 0
                assert e["replay"]["trace"][side] == json.loads(rout)
            assert registered["replay"]["trace"] == e["replay"]["trace"]
            assert any(r["differs"] for r in e["replay"]["trace"]["rows"])
            kinds |= 1
        if "call" in raw:
            path = _trace_file(tmp_path, registered["call_file"], e["id"] + ".call.json")
            for side, n in (("before", 29), ("after", 30)):
                rc, rout, _ = run(capsys, "replay", path, "--stage", str(n), "--json")
                assert rc == 0
                assert e["replay"]["call"][side] == json.loads(rout)["outcome"]
            assert any(r["differs"] for r in e["replay"]["call"]["rows"])
            kinds |= 2
    assert kinds == 3                    # rung 30 has entries with a trace and with a call


def test_list_shows_each_kind_of_step_whole(capsys):
    # the kind column wraps like the title: read back, row by row, it is
    # each stage's KIND up to its first parenthesis or semicolon, uncut
    rc, out, _ = run(capsys, "list")
    rows = read_table(out.splitlines(), ["#", "upstream", "kind of step", "rung", "title (v2)"])
    assert [int(r[0]) for r in rows] == list(range(LAST + 1))
    for r in rows:
        n = int(r[0])
        assert r[2] == re.split(r" \(|;", stage(n).KIND)[0], n
        assert r[4] == stage(n).TITLE, n


# ------------------------------------------------------------------ register
def test_register_lists_every_entry_and_refuses_an_unknown_id(capsys):
    rc, out, _ = run(capsys, "register")
    assert rc == 0
    assert max(len(line) for line in out.splitlines()) <= 100
    rows = read_table(out.splitlines(), ["rung", "id", "status", "what"])
    assert rows == [[str(e["rung"]), e["id"], e["status"], " ".join(e["what"].split())] for e in REGISTER]
    err = user_error(capsys, "register", "xen-told")
    assert "xen-told-start" in err


def test_register_entry_marks_the_rows_that_differ(capsys):
    rc, out, _ = run(capsys, "register", "sync-fast-path-skips-tlb")
    assert rc == 0
    rows = read_table(out.splitlines(), ["observable", "stage 38", "stage 39"])
    marked = [r[1] for r in rows if r[0] == "*"]
    assert marked and all(m.startswith("tlb.") for m in marked), marked
    assert all(r[0] == "" for r in rows if r[2] == r[3])


@pytest.mark.parametrize("entry_id, before, after", [
    # the register's own words: a new block's bytes were 0xff and become 0x0b
    # (VGA|CODE|MIGRATION); the fully dirty page reads 0x07 instead of 0x0b;
    # the map keeps the length it had before the end of RAM was freed
    ("spare-bits-no-longer-set", "ff", "0b"),
    ("migration-bit-moves", "0b", "07"),
    ("dirty-map-not-shrunk", "07 07 07", "07 07 07 07"),
])
def test_a_representation_entry_shows_its_bytes(capsys, entry_id, before, after):
    rc, out, _ = run(capsys, "register", entry_id, "--json")
    assert rc == 0
    rows = json.loads(out)["replay"]["trace"]["rows"]
    assert not any(r["differs"] for r in rows if not r["name"].startswith("repr:"))
    assert [r for r in rows if r["name"].startswith("repr:")] == [
        {"name": "repr: flag bytes", "before": before, "after": after, "differs": True}]
    rc, out, _ = run(capsys, "register", entry_id)
    rung = next(e["rung"] for e in REGISTER if e["id"] == entry_id)
    rows = read_table(out.splitlines(), ["observable", f"stage {rung - 1:02d}", f"stage {rung:02d}"])
    assert ["*", "repr: flag bytes", f'"{before}"', f'"{after}"'] in rows, rows


def test_the_representation_of_the_bitmaps_is_shown_word_by_word():
    # a new block of one page is dirty for all three clients: word 0 of each
    # bitmap is 1 (client order VGA, CODE, MIGRATION)
    from dirty_ladder.model import raw_text
    from dirty_ladder.trace import loads
    trace = loads('{"format": "dirty-trace/1", "ops": [{"op": "ram_alloc", "size": 4096}]}')
    assert raw_text(19, trace) == ("bitmap words", " | ".join(["0000000000000001"] * 3))
    assert raw_text(18, trace) == ("flag bytes", "07")


# ------------------------------------------------------------------ --inline
def test_diff_inline_shows_the_byte_code_that_the_bitmaps_replace(capsys):
    rc, plain, _ = run(capsys, "diff", "19")
    rc2, inline, _ = run(capsys, "diff", "19", "--inline")
    assert rc == rc2 == 0

    def removed(text: str) -> list[str]:                 # the old side of get_dirty_flag's diff
        block = text.split("--- stage 18: cpu_physical_memory_get_dirty_flag", 1)[1].split("\n--- ", 1)[0]
        return [line for line in block.splitlines() if line.startswith("-")]

    removed_plain, removed_inline = removed(plain), removed(inline)
    assert not any("phys_dirty" in line for line in removed_plain)
    assert any("phys_dirty" in line for line in removed_inline)


def test_show_inline_has_no_super_call_left(capsys):
    rc, out, _ = run(capsys, "show", "15", "cpu_physical_memory_get_dirty_flag", "--inline")
    assert rc == 0
    assert not re.search(r"^[^#]*super\(\)\.", out, re.MULTILINE)
    s13 = (ROOT / "stages" / "s13_dirty_memory_clients.py").read_text(encoding="utf-8")
    body = inspect.getsource(stage(13).cpu_physical_memory_get_dirty_flag).splitlines()[1:]
    assert "\n".join(textwrap.dedent("\n".join(body)).splitlines()) in textwrap.dedent(
        "\n".join(line[4:] if line.startswith("    ") else line for line in out.splitlines()))
    assert "phys_dirty" in s13


def _functions_with_super() -> list[tuple[int, str]]:
    out = []
    for n in range(LAST + 1):
        for name, value in vars(stage(n)).items():
            if inspect.isfunction(value) and not name.startswith("_") and "super()." in inspect.getsource(value):
                out.append((n, name))
    return out


@pytest.mark.parametrize("n,name", _functions_with_super())
def test_inlined_source_runs_like_the_original(n, name):
    """Compile the inlined source into a subclass of the stage: every random
    trace gives the same result as the stage itself."""
    from dirty_ladder.model import function_of
    fn = function_of(stage(n), name)
    source = fn.inlined_source
    assert not re.search(r"^[^#]*super\(\)\.", source, re.MULTILINE)
    scope: dict = {}
    for klass in reversed(stage(n).__mro__[:-1]):
        scope.update(vars(__import__(klass.__module__, fromlist=["_"])))
    exec(compile(source, f"<inlined {name}>", "exec"), scope)
    Inlined = type("Inlined", (stage(n),), {name: scope[name]})
    seen = 0
    for seed in range(60):
        trace = random_trace(seed, 25)
        a, b = replay(stage(n), trace), replay(Inlined, trace)
        assert a == b, (seed, name)
        seen += 1
    assert seen


# ------------------------------------------------------------------ log
def test_log_walks_a_range_like_git(capsys):
    rc, out, _ = run(capsys, "log", "24..27")
    assert rc == 0
    heads = [int(m) for m in re.findall(r"^stage (\d\d)  ", out, re.MULTILINE)]
    assert heads == [25, 26, 27]
    rc, patch, _ = run(capsys, "log", "24..27", "-p")
    assert "--- stage 26: cpu_physical_memory_set_dirty_range" in patch      # stage 27's diff
    assert "+++ stage 26: cpu_physical_memory_get_dirty" in patch             # stage 26's diff
    rc, one, _ = run(capsys, "log", "--oneline")
    assert len(one.strip().splitlines()) == LAST
    user_error(capsys, "log", "27..24")
    user_error(capsys, "log", "3..x")


def _source_or_none(n: int, name: str) -> str | None:
    try:
        return inspect.getsource(getattr(stage(n), name))
    except AttributeError:
        return None


def test_log_L_lists_every_stage_that_changed_the_function(capsys):
    name = "cpu_physical_memory_get_dirty"
    expected = {n for n in range(1, LAST + 1) if _source_or_none(n - 1, name) != _source_or_none(n, name)}
    rc, out, _ = run(capsys, "log", "-L", name, "--json")
    assert rc == 0
    got = {h["stage"] for h in json.loads(out)["history"] if h["change"] in ("changed", "added", "removed")}
    assert got == expected
    err = user_error(capsys, "log", "-L", "cpu_physical_memory_get_dirty_flg")
    assert "cpu_physical_memory_get_dirty_flag" in err


def test_log_L_follows_a_rename(capsys):
    rc, out, _ = run(capsys, "log", "-L", "cpu_physical_memory_clear_dirty_range")
    assert rc == 0
    assert "cpu_physical_memory_mask_dirty_range -> cpu_physical_memory_clear_dirty_range" in out
    assert re.search(r"^stage 12 ", out, re.MULTILINE)         # a change under the old name


# ------------------------------------------------------------------ exercises
@pytest.fixture(scope="module")
def starters(tmp_path_factory):
    d = tmp_path_factory.mktemp("starters")
    files = {}
    for n in range(1, LAST + 1):
        files[n] = d / f"exercise_{n:02d}.py"
        files[n].write_text(exercises.starter(n), encoding="utf-8")
    return files


def test_every_untouched_starter_behaves_as_the_stage_before(starters):
    for n, path in starters.items():
        cls = exercises.load_stage_file(path, n)
        assert cls.STAGE == n and issubclass(cls, stage(n - 1))
        for seed in range(8):
            trace = random_trace(seed, 30)
            a, b = replay(cls, trace), replay(stage(n - 1), trace)
            a.pop("stage"), b.pop("stage")
            assert a == b, (n, seed)


def _new_lines(n: int) -> set[str]:
    """Lines of code that stage n's own functions have and stage n-1's code has not."""
    old = "\n".join(Path(inspect.getsourcefile(stage(k))).read_text(encoding="utf-8") for k in range(n))
    old_lines = {line.strip() for line in old.splitlines()}
    new = set()
    for name, value in vars(stage(n)).items():
        func = getattr(value, "__func__", value)
        if inspect.isfunction(func):
            for line in inspect.getsource(func).splitlines()[1:]:
                s = line.strip()
                if len(s) > 12 and not s.startswith(("#", "def ", '"""')) and s not in old_lines:
                    new.add(s)
    return new


def test_no_starter_leaks_the_new_code(starters):
    leaks = {}
    checked = 0
    for n, path in starters.items():
        text = path.read_text(encoding="utf-8")
        lines = {line.strip() for line in text.splitlines()}
        found = [line for line in _new_lines(n) if line in lines]
        checked += len(_new_lines(n))
        if found:
            leaks[n] = found
    assert checked > 100
    assert not leaks, leaks


def test_starter_names_what_the_commit_touches_and_the_next_step(starters):
    text = starters[27].read_text(encoding="utf-8")
    assert stage(27).TITLE in text and "dirty-ladder verify" in text
    assert "def cpu_physical_memory_set_dirty_range" in text
    text = starters[29].read_text(encoding="utf-8")
    assert "removes cpu_physical_memory_is_dirty" in text and "adds cpu_physical_memory_is_clean" in text


def test_exercise_command_writes_records_and_refuses_to_overwrite(capsys, tmp_path, progress_file):
    target = tmp_path / "ex.py"
    rc, out, _ = run(capsys, "exercise", "27", "-o", str(target))
    assert rc == 0 and target.exists()
    assert f"verify {target}" in out
    data = json.loads(progress_file.read_text(encoding="utf-8"))
    assert "started" in data["exercises"]["27"] and "done" not in data["exercises"]["27"]
    user_error(capsys, "exercise", "27", "-o", str(target))
    exercises.record_done(27)
    rc, out, _ = run(capsys, "exercise", "--progress", "--json")
    rows = {r["exercise"]: r["status"] for r in json.loads(out)["exercises"]}
    assert rows[27] == "done" and rows[26] == "-" and len(rows) == LAST
    user_error(capsys, "exercise", "0")
    user_error(capsys, "exercise")


HINTS = {e["n"]: e["hints"] for e in
         tomllib.loads((ROOT / "dirty_ladder" / "hints.toml").read_text(encoding="utf-8"))["exercise"]}


def test_every_exercise_has_one_to_three_hints_a_teacher_wrote():
    assert sorted(HINTS) == list(range(1, LAST + 1))
    for n, hints in HINTS.items():
        assert 1 <= len(hints) <= 3, n
        assert all(len(h.split()) >= 8 for h in hints), n          # sentences, not a list of names


def test_hints_grade_from_the_teachers_to_what_changed(capsys):
    rc, out, _ = run(capsys, "exercise", "39", "--hint")
    assert rc == 0 and " ".join(HINTS[39][0].split()) in " ".join(out.split()) and "Hint 2" not in out
    last = len(HINTS[39]) + 1
    rc, out, _ = run(capsys, "exercise", "39", "--hint", str(last), "--json")
    hints = json.loads(out)["hints"]
    assert len(hints) == last and hints[-1].startswith("What changed (read off the ladder)")
    for e in REGISTER:
        assert (e["id"] in hints[-1]) == (e["rung"] == 39), e["id"]
    assert all(e["id"] not in h for h in hints[:-1] for e in REGISTER)        # the teacher's hints name no entry
    rc, out, _ = run(capsys, "exercise", "25", "--hint", str(len(HINTS[25]) + 1))
    assert "same results as stage 24" in out and "rename cpu_physical_memory_mask_dirty_range" in out
    user_error(capsys, "exercise", "27", "--hint", str(len(HINTS[27]) + 2))


# C's words the texts use as C does, which no Python name stands for: its keywords and types, and
# memory.h's MmioRegion type (stage 01's docstring)
C_ONLY = {"assert", "void", "bool", "true", "false", "int", "MemoryRegionMmio"}


def _code_names(text: str) -> set[str]:
    """The names a text writes as code: ``name``, ``name(...)``, ``a.b`` (its first part)."""
    names = set()
    for lit in re.findall(r"``(.+?)``", text, re.DOTALL):
        m = re.match(r"([A-Za-z_]\w*)", lit.strip())
        if m and not lit.strip().endswith("*"):
            names.add(m.group(1))
    return names


def test_every_name_a_starter_its_task_and_its_hints_write_as_code_resolves(starters):
    from dirty_ladder.machine import Machine
    checked, unresolved = 0, []
    for n, path in starters.items():
        cls = exercises.load_stage_file(path, n)
        module = sys.modules[cls.__module__]
        st = Machine(cls).stage
        text = path.read_text(encoding="utf-8") + "\n".join(exercises.hints(n))
        # what the learner is asked to write resolves in the real stage n; parameters in its functions
        solution = stage(n)
        params = {p for k in (n - 1, n) for c in (stage(k),) for name in dir(c) if not name.startswith("__")
                  for f in (getattr(c, name, None),) if inspect.isfunction(f) or inspect.ismethod(f)
                  for p in inspect.signature(f).parameters}
        attributes = set(dir(cls)) | set(dir(solution))
        for name in sorted(_code_names(text) - C_ONLY):
            checked += 1
            if not (name in vars(module) or hasattr(cls, name) or hasattr(st, name) or name in cls.DECLARED_IN
                    or hasattr(st.ram_list, name) or hasattr(st.machine, name) or hasattr(solution, name)
                    or name in params or name in dir(builtins) or keyword.iskeyword(name)
                    # the docstrings' shorthand: ``_CODE`` for DIRTY_MEMORY_CODE, ``set_dirty_flags`` for
                    # cpu_physical_memory_set_dirty_flags
                    or any(a.endswith(name if name.startswith("_") else "_" + name) for a in attributes)):
                unresolved.append((n, name))
    assert checked > 100 and unresolved == []


def test_the_19_starter_can_call_bitmap_zero_extend_as_the_c_does(starters, tmp_path):
    # the starter completed with stage 19's own code, calling the helper by name as the C and the hints do
    text = starters[19].read_text(encoding="utf-8")
    for name in ("__init__", "cpu_physical_memory_get_dirty_flag", "cpu_physical_memory_set_dirty_flag",
                 "cpu_physical_memory_clear_dirty_flag", "qemu_ram_alloc_from_ptr"):
        real = textwrap.indent(textwrap.dedent(inspect.getsource(vars(stage(19))[name])), "    ")
        real = real.replace("self.bitmap_zero_extend(", "bitmap_zero_extend(")
        start = text.index(f"    def {name}(")
        rest = text[start:].split("\n    # stage 18's", 1)
        text = text[:start] + real + ("\n    # stage 18's" + rest[1] if len(rest) > 1 else "")
    assert "        self.ram_list.dirty_memory[i] = bitmap_zero_extend(" in text
    path = tmp_path / "e19.py"
    path.write_text(text, encoding="utf-8")
    cls = exercises.load_stage_file(path, 19)
    for seed in range(4):
        trace = random_trace(seed, 30)
        a, b = replay(cls, trace), replay(stage(19), trace)
        assert a["results"] == b["results"] and a["state"] == b["state"], seed


def test_no_starter_shows_a_gap_as_dots(starters):
    for n, path in starters.items():
        assert "``...``" not in path.read_text(encoding="utf-8"), n


def test_the_exercise_command_says_what_done_means_and_where_the_solution_is(capsys, tmp_path):
    rc, out, _ = run(capsys, "exercise", "19", "-o", str(tmp_path / "e19.py"))
    assert rc == 0 and "dirty-ladder tour 19" in out and "solution" in out
    assert "representation:" in out and "calls:" in out and "What done means for commit 19" in out
    rc, out, _ = run(capsys, "exercise", "32", "-o", str(tmp_path / "e32.py"))
    assert "Commit 32 has no code to write" in out and "DECLARED_IN" in out


BAD_FILES = {
    "syntax.py": ("class Stage(:\n", "SyntaxError"),
    "raises.py": ("import no_such_module_here\n", "ModuleNotFoundError"),
    "nostage.py": ("X = 1\n", "no class Stage"),
    "unset.py": ("from stages import s26_find_next_bit as parent\nclass Stage(parent.Stage):\n    pass\n",
                 "class Stage does not set STAGE (it would inherit 26 from its parent)"),
    "wrong.py": ("from stages import s26_find_next_bit as parent\nclass Stage(parent.Stage):\n    STAGE = 26\n",
                 "Stage.STAGE is 26, not 27"),
    "orphan.py": ("class Stage:\n    STAGE = 27\n", "does not subclass stage 26"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_a_bad_stage_file_is_one_line_and_exit_2(capsys, tmp_path, name):
    text, needle = BAD_FILES[name]
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(exercises.StageFileError) as info:
        exercises.load_stage_file(path, 27)
    assert needle in str(info.value) and "\n" not in str(info.value)
    err = user_error(capsys, "diff", "27", "--stage-file", str(path))
    assert needle in err
    user_error(capsys, "diff", "27", "--stage-file", str(tmp_path / "missing.py"))


def test_a_stage_file_stands_in_for_its_stage(capsys, tmp_path, starters):
    xen = next(e for e in REGISTER if e["id"] == "xen-told-start")
    trace = _trace_file(tmp_path, json.loads(xen["trace"]), "xen.json")
    results = {}
    for label, extra in (("real", []), ("starter", ["--stage-file", str(starters[27])])):
        rc, out, _ = run(capsys, "replay", trace, "--stage", "27", "--json", *extra)
        assert rc == 0
        results[label] = json.loads(out)["state"]["xen"]
    expected_26 = replay(stage(26), validate(json.loads(xen["trace"])))["state"]["xen"]
    assert results["starter"] == expected_26 != results["real"]
    rc, out, _ = run(capsys, "replay", trace, "--all", "--stage-file", str(starters[27]), "--json")
    assert [c["rung"] for c in json.loads(out)["changes"]] == [28]      # the fix now shows one rung later
    # the untouched starter restates stage 26's function: the diff names it,
    # and labels the register's lines as the real commit's
    rc, out, _ = run(capsys, "diff", "27", "--stage-file", str(starters[27]))
    assert rc == 0
    assert "cpu_physical_memory_set_dirty_range: redefined with the same source" in out
    assert "behaviour of the real commits (register; `verify FILE` checks yours):" in out
    assert "\nbehaviour (register):" not in out
    changed = tmp_path / "changed27.py"
    changed.write_text(starters[27].read_text().replace("xen_modified_memory(addr, length)",
                                                        "xen_modified_memory(start, length)"), encoding="utf-8")
    rc, out, _ = run(capsys, "diff", "27", "--stage-file", str(changed))
    assert re.search(rf"^\+\+\+ stage 27: cpu_physical_memory_set_dirty_range \({re.escape(str(changed))}:\d+\)$",
                     out, re.MULTILINE), out
    # the real stage's code as a user's file: no source change against stage 27
    real = tmp_path / "real27.py"
    real.write_text(f"from stages.{MODULES[27]} import Stage as _Real\n\n\nclass Stage(_Real):\n    STAGE = 27\n",
                    encoding="utf-8")
    rc, out, _ = run(capsys, "replay", trace, "--stage", "27", "--json", "--stage-file", str(real))
    assert json.loads(out)["state"]["xen"] == results["real"]


def test_starter_descriptions_leave_the_code_out(starters):
    """A code literal of the docstring that is more than a name (an operator,
    a call with arguments) is not in the starter."""
    checked = 0
    for n, path in starters.items():
        doc = inspect.getdoc(__import__(stage(n).__module__, fromlist=["_"])) or ""
        text = path.read_text(encoding="utf-8")
        for lit in re.findall(r"``(.+?)``", doc, re.DOTALL):
            if re.search(r"[=<>+&|*/%,]|\([^)]", lit) and not re.fullmatch(r"[\w.]+\*", lit):
                checked += 1
                assert f"``{lit}``" not in text, (n, lit)
    assert checked > 20
    assert "find_next_bit" in starters[26].read_text(encoding="utf-8")      # names stay


def test_a_number_is_a_stage_and_chN_a_chapter(capsys):
    rc, out, _ = run(capsys, "tour", "3", "--json")
    assert rc == 0 and [s["stage"] for s in json.loads(out)["stages"]] == [3]
    rc, out, _ = run(capsys, "tour", "ch3", "--json")
    a, b = TOUR[2]["stages"]
    assert rc == 0 and [s["stage"] for s in json.loads(out)["stages"]] == list(range(a, b + 1))


@pytest.mark.parametrize("before, after, text", [
    (820, 559, "820 -> 559 ns per page in this Python model (1.5x cheaper)"),        # 1.467: not "1x"
    (1455, 1506, "1,455 -> 1,506 ns per page in this Python model (4% dearer)"),     # within 10%: a percentage
    (1523, 0.094, "1,523 -> 0.094 ns per page in this Python model (16,202x cheaper)"),
    (0.0176, 0.0128, "0.0176 -> 0.0128 ns per page in this Python model (1.4x cheaper)"),   # never 1.76e-02
    (0.0000246, 0.0000123, "0.0000246 -> 0.0000123 ns per page in this Python model (2.0x cheaper)"),
    (525, 1623, "525 -> 1,623 ns per page in this Python model (3.1x dearer)"),      # never 1.23e-05 above
])
def test_a_cost_change_reads_as_a_person_would_say_it(before, after, text):
    from dirty_ladder.model import cost_text
    assert cost_text({"label": "op", "before_ns": before, "after_ns": after, "ratio": after / before}) == "op: " + text


def test_a_call_is_shown_with_the_functions_own_parameters(capsys):
    # the register's call says addr 0, client vga; the C function of stage 01
    # is cpu_physical_memory_set_dirty_flags(ram_addr_t addr, int dirty_flags)
    rc, out, _ = run(capsys, "register", "set-dirty-flags-void")
    assert rc == 0
    assert "minimal call: cpu_physical_memory_set_dirty_flags(addr=0, dirty_flags=VGA_DIRTY_FLAG) on" in out
    rc, out, _ = run(capsys, "register", "get-dirty-returns-bool")
    assert "cpu_physical_memory_get_dirty(start=0, length=4096, client=DIRTY_MEMORY_VGA) on" in out


EXPECTED_ARGUMENT = {"addr": "4096", "ram_addr": "4096", "addr1": "4096", "start": "4096", "length": "8192",
                     "size": "8192", "end": "12288", "client": "DIRTY_MEMORY_CODE",
                     "dirty_flag": "CODE_DIRTY_FLAG", "dirty_flags": "CODE_DIRTY_FLAG", "enable": "1"}


@pytest.mark.parametrize("n", range(LAST + 1), ids=lambda n: f"stage{n:02d}")
def test_every_api_call_is_written_with_exactly_its_parameters(n):
    from dirty_ladder.compare import api_functions, call_text
    cls = stage(n)
    args = {"addr": 4096, "length": 8192, "client": "code", "enable": 1}
    names = api_functions(cls, cls)
    assert names
    for name in names:
        params = list(inspect.signature(getattr(cls, name)).parameters)[1:]
        expected = ", ".join(f"{p}={EXPECTED_ARGUMENT[p]}" for p in params)
        assert call_text(cls, name, args) == f"{name}({expected})"


def test_a_register_call_can_be_saved_and_replayed(capsys, tmp_path):
    # the register's words: stage 02 returns None where stage 01 returned
    # the new flag byte (an int)
    rc, out, _ = run(capsys, "register", "set-dirty-flags-void", "--json")
    assert rc == 0
    path = tmp_path / "call.json"
    path.write_text(json.dumps(json.loads(out)["call_file"]), encoding="utf-8")
    kinds = {}
    for n in (1, 2):
        rc, out, _ = run(capsys, "replay", str(path), "--stage", str(n), "--json")
        assert rc == 0
        kinds[n] = json.loads(out)["outcome"]["result"][0]
    assert kinds == {1: "int", 2: "NoneType"}


def test_a_flag_mask_without_its_name_is_written_as_the_value_passed():
    # from stage 13 the *_DIRTY_FLAG names are gone; a user's function that
    # still takes a mask gets 1 << DIRTY_MEMORY_MIGRATION: 0x8 at stage 13,
    # 0x4 from stage 14 (5adca7ace moves migration to bit 2)
    from dirty_ladder.compare import call_text
    args = {"addr": 0, "length": 0, "client": "migration", "enable": 0}
    for n, text in ((12, "MIGRATION_DIRTY_FLAG"), (13, "0x8"), (14, "0x4")):
        cls = type("Mine", (stage(n),), {"f": lambda self, addr, dirty_flags: None})
        assert call_text(cls, "f", args) == f"f(addr=0, dirty_flags={text})"
