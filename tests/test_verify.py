"""``dirty-ladder verify FILE`` and ``check --stage-file``: a user's stage
against the ladder.

The exercise's own round trip: ``exercise 27`` writes a starter, the real
stage 27's change pasted into it passes ``verify``, the untouched starter
fails because it keeps stage 26's behaviour (the register entry says so),
and a planted mistake fails with the rung, the level and a shortest trace.
"""

import inspect
import json
import textwrap

import pytest

from stages import stage
from dirty_ladder import cli
from dirty_ladder.exercises import read_progress


@pytest.fixture(autouse=True)
def progress_file(tmp_path, monkeypatch):
    monkeypatch.setenv("DIRTY_LADDER_PROGRESS", str(tmp_path / "progress.json"))


def run(capsys, *argv):
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _exercise(capsys, tmp_path, n):
    path = tmp_path / f"exercise_{n:02d}.py"
    code, _, err = run(capsys, "exercise", str(n), "-o", str(path))
    assert code == 0, err
    return path


def _with_real_change(starter: str, n: int, name: str, edit=lambda s: s) -> str:
    """The starter with stage n's own ``name`` pasted over stage n-1's."""
    real = textwrap.indent(textwrap.dedent(inspect.getsource(getattr(stage(n), name))), "    ")
    start = starter.index(f"    def {name}(")
    rest = starter[start:].split("\n    def ", 1)
    tail = "\n    def " + rest[1] if len(rest) > 1 else ""
    return starter[:start] + edit(real) + tail


def test_exercise_27_with_the_real_change_passes_and_is_marked_done(capsys, tmp_path):
    path = _exercise(capsys, tmp_path, 27)
    path.write_text(_with_real_change(path.read_text(), 27, "cpu_physical_memory_set_dirty_range"))
    code, out, err = run(capsys, "verify", str(path))
    assert code == 0, out + err
    assert out.count("[ok]") == 3 and "xen-told-start (fix)" in out
    assert "done" in read_progress()[27]


def test_the_untouched_starter_keeps_stage_26s_behaviour_and_is_told_so(capsys, tmp_path):
    path = _exercise(capsys, tmp_path, 27)
    code, out, _ = run(capsys, "verify", str(path), "--json")
    assert code == 1
    checks = {c["name"]: c for c in json.loads(out)["checks"]}
    assert "still does what stage 26 did" in checks["register"]["details"][0]
    assert "xen-told-start" in checks["register"]["details"][0]
    # one cause, said once: the rung and the conformance traces are what
    # leaving that change out gives, shown by an exact check each
    assert "your stage is commit 27 without its behaviour change(s) xen-told-start" in checks["rung"]["summary"]
    assert not checks["rung"]["ok"] and checks["rung"]["details"] == []
    assert "your stage gives what commit 27 without xen-told-start gives" in checks["conformance"]["summary"]
    assert "done" not in read_progress()[27]


def test_a_second_mistake_beside_a_change_left_out_is_still_shown(capsys, tmp_path):
    # the starter (Xen still told what stage 26 told) with VGA also left
    # clean on the second page of a range: not explained by the change left out
    path = _exercise(capsys, tmp_path, 27)
    text = path.read_text()
    old = "            set_bit(addr >> TARGET_PAGE_BITS, dirty_memory[self.DIRTY_MEMORY_VGA])\n"
    assert old in text
    path.write_text(text.replace(old, "            if addr != start + TARGET_PAGE_SIZE:\n    " + old))
    code, out, _ = run(capsys, "verify", str(path), "--json")
    assert code == 1
    checks = {c["name"]: c for c in json.loads(out)["checks"]}
    assert "without its behaviour change" not in checks["rung"]["summary"]
    assert any(d.startswith("machine:state.dirty") for d in checks["rung"]["details"]), checks["rung"]["details"]
    assert "without xen-told-start gives" not in checks["conformance"]["summary"]


def test_a_planted_mistake_names_the_rung_the_level_and_a_shortest_trace(capsys, tmp_path):
    path = _exercise(capsys, tmp_path, 27)
    path.write_text(_with_real_change(
        path.read_text(), 27, "cpu_physical_memory_set_dirty_range",
        lambda src: src.replace("xen_modified_memory(start, length)", "xen_modified_memory(start, length + 1)")))
    code, out, _ = run(capsys, "verify", str(path), "--json")
    assert code == 1
    verdict = json.loads(out)
    rung = next(c for c in verdict["checks"] if c["name"] == "rung")
    assert not rung["ok"] and "rung 27" in rung["summary"]
    assert "'what commit 27 does -> what your stage does'" in rung["summary"]
    xen = next(d for d in rung["details"] if d.startswith("machine:state.xen"))
    assert "[[0, 4096]] -> [[0, 4097]]" in xen                       # commit 27 first, then the file
    trace = json.loads(xen.split("shortest trace: ", 1)[1])        # pasteable into a trace file
    assert trace["ops"] == [{"op": "ram_alloc", "size": 4096}]     # one op is enough to show it
    assert not next(c for c in verdict["checks"] if c["name"] == "conformance")["ok"]


def test_a_stage_that_reproduces_a_bug_is_told_it_does(capsys, tmp_path):
    path = _exercise(capsys, tmp_path, 39)
    path.write_text(_with_real_change(path.read_text(), 39, "migration_bitmap_sync_range"))
    code, out, err = run(capsys, "verify", str(path))
    assert code == 0, out + err
    assert "bugs included" in out


def test_check_stage_file_runs_the_rung_of_its_stage(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _exercise(capsys, tmp_path, 27)
    code, out, _ = run(capsys, "check", "--stage-file", str(path), "--exhaustive", "--level", "machine")
    assert code == 1 and "NEW DIFFERENCE machine:state.xen" in out
    written = sorted(p.name for p in tmp_path.glob("new-difference-rung27-*"))
    assert written == ["new-difference-rung27-machine-1.json"]
    # replayed with the user's stage 27, which kept stage 26's Xen report,
    # the change shows one rung later
    code, out, _ = run(capsys, "replay", written[0], "--all", "--stage-file", str(path))
    assert code == 0 and "rung 28 (27 -> 28" in out and "rung 27 " not in out


@pytest.mark.parametrize("content, message", [
    ("x = (", "does not import"),
    ("class Other: pass\n", "no class Stage"),
    # nothing in it: it would stand in for stage 26 as stage 26 itself, and
    # mark an exercise done that was never done
    ("from stages import s26_find_next_bit as p\nclass Stage(p.Stage):\n    pass\n", "does not set STAGE"),
    ("from stages import s04_accessor_for_is_dirty as p\nclass Stage(p.Stage):\n    STAGE = 0\n", "stage 0"),
])
def test_a_bad_stage_file_is_one_line_and_status_2(capsys, tmp_path, content, message):
    path = tmp_path / "mine.py"
    path.write_text(content)
    code, out, err = run(capsys, "verify", str(path))
    assert code == 2 and out == "" and message in err and err.count("\n") == 1


def test_a_stage_that_raises_fails_its_checks_in_one_line_each(capsys, tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("from stages import s26_find_next_bit as parent\n\n\nclass Stage(parent.Stage):\n"
                    "    STAGE = 27\n\n    def cpu_physical_memory_set_dirty_range(self, start, length):\n"
                    "        raise TypeError('oops')\n")
    code, out, err = run(capsys, "verify", str(path))
    assert code == 1 and "Traceback" not in out + err
    assert f"your stage raised TypeError: oops at {path}:8" in out
    code, out, err = run(capsys, "check", "--stage-file", str(path), "--exhaustive", "--level", "api")
    assert code == 1 and err.strip().endswith(f"your stage raised TypeError: oops at {path}:8")


def test_a_stage_that_forgets_one_of_two_intertwined_changes_is_told_which(capsys, tmp_path):
    # stage 30 whose tlb_reset_dirty_range_all no longer rounds its start:
    # tlb-reset-rounds-start left out (stage 29's behaviour on its call), but
    # on tlb-reset-short-range's own trace and call it does something neither
    # stage 29 nor stage 30 does, and that is not "still what stage 29 did"
    path = tmp_path / "forgot30.py"
    path.write_text(
        "from stages.s30_reset_dirty_takes_length import Stage as Real\n"
        "from stages.common import TARGET_PAGE_ALIGN\n\n\n"
        "class Stage(Real):\n    STAGE = 30\n\n"
        "    def tlb_reset_dirty_range_all(self, start, length):\n"
        "        end = TARGET_PAGE_ALIGN(start + length)\n"
        "        block = self.machine.qemu_get_ram_block(start)\n"
        "        assert block is self.machine.qemu_get_ram_block(end - 1)\n"
        "        self.machine.cpu_tlb_reset_dirty_all(block.host + (start - block.offset), length)\n")
    code, out, _ = run(capsys, "verify", str(path), "--json")
    assert code == 1
    checks = {c["name"]: c for c in json.loads(out)["checks"]}
    details = {d.split(" ", 1)[0]: d for d in checks["register"]["details"]}
    assert "still does what stage 29 did" in details["tlb-reset-rounds-start"]
    assert "your stage differs from commit 30" in details["tlb-reset-short-range"]
    assert "without its behaviour change" not in checks["rung"]["summary"]
