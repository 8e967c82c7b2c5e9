"""``dirty-ladder verify FILE``: a user's stage against what its commit did.

The exercises' round trip over all 39 commits: the untouched starter fails,
naming the checks it fails; a copy of the real stage module, relative
imports and all, passes.  Then held-out variants that keep behaviour but
not the commit's structure (27 and 28 with a page loop, 19 keeping the
byte, 38 without its new function, 33 still calling through memory.c),
which must fail naming the gap, and the messages: a register entry blamed
only for its own change, each trace once, raw words decoded, the place
where a user's stage raised.

Expected values are written here from the commits (what each changes) or
read off the stage modules, never from verify's own output.
"""

import inspect
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from dirty_ladder import cli, exercises
from dirty_ladder.exercises import load_stage_file, read_progress
from dirty_ladder.verify import verify, watch
from stages import LAST, MODULES, stage

ROOT = Path(__file__).resolve().parent.parent
BEHAVIOUR = {"register", "rung", "conformance"}


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


def _copy_of_stage(tmp_path, n) -> Path:
    path = tmp_path / f"my_{MODULES[n]}.py"
    shutil.copy(ROOT / "stages" / f"{MODULES[n]}.py", path)
    return path


def _quick(path, n):
    return verify(load_stage_file(path, n), str(path), quick_only=True)


# ------------------------------------------------------------------ every exercise, both ways
@pytest.mark.parametrize("n", range(1, LAST + 1))
def test_the_untouched_starter_fails_and_a_copy_of_the_real_module_passes(tmp_path, n):
    starter = tmp_path / f"exercise_{n:02d}.py"
    starter.write_text(exercises.starter(n), encoding="utf-8")
    verdict = _quick(starter, n)
    applicable = {a.name for a in verdict.aspects}
    assert not verdict.ok and verdict.failed(), n
    for check in verdict.checks:
        assert check.name in applicable | BEHAVIOUR, (n, check.name)
    # a commit that changes behaviour is failed there; one that does not, by a structural check
    structural = [c for c in verdict.failed() if c not in BEHAVIOUR]
    assert structural or "register" in verdict.failed(), (n, verdict.failed())
    copy = _copy_of_stage(tmp_path, n)
    verdict = _quick(copy, n)
    assert [c.name for c in verdict.checks if not c.ok] == [], (n, [c.summary for c in verdict.checks])
    assert {c.name for c in verdict.checks} >= (applicable - {"behaviour"}) | {"rung", "conformance"}


def test_what_done_means_is_read_off_the_ladder():
    from dirty_ladder.structure import aspects, text_only
    names = {n: [a.name for a in aspects(n)] for n in range(1, LAST + 1)}
    # each commit's docstring says what kind of step it is; the model finds it without reading that
    assert [n for n in names if "representation" in names[n]] == [14, 19]
    assert [n for n in names if "cost" in names[n]] == [26, 27, 28, 37, 39]
    assert [n for n in names if text_only(n)] == [1, 32]
    assert "api" in names[38] and "calls" in names[38] and "api" in names[25]     # a new function; a rename
    assert "calls" in names[33] and "api" not in names[33]                          # an unfold into arch_init.c
    assert "refusals" in names[15]                                                   # the assertions
    assert names[35] == ["behaviour", "source"]                                      # a local rewrite only


# both tiers of two commits (a representation, a bug reproduced); under the deep profile, of all 39
# (DIRTY_LADDER_PROFILE=deep, about 10 minutes)
FULL = range(1, LAST + 1) if os.environ.get("DIRTY_LADDER_PROFILE") == "deep" else [19, 39]


@pytest.mark.parametrize("n", FULL)
def test_a_copy_of_the_real_module_passes_both_tiers_and_is_marked_done(capsys, tmp_path, n):
    copy = _copy_of_stage(tmp_path, n)
    code, out, err = run(capsys, "verify", str(copy))
    assert code == 0, out + err
    assert "full tier" in out and "[FAIL]" not in out
    assert "done" in read_progress()[n]


# ------------------------------------------------------------------ held-out variants
def test_27_with_the_xen_fix_but_a_page_loop_fails_on_cost_in_numbers(capsys, tmp_path):
    path = tmp_path / "loop27.py"
    path.write_text(textwrap.dedent('''\
        from stages import s26_find_next_bit as parent
        from stages.bitmap import set_bit
        from stages.common import TARGET_PAGE_ALIGN, TARGET_PAGE_BITS, check_range, dirty_pages


        class Stage(parent.Stage):
            STAGE = 27

            def cpu_physical_memory_set_dirty_range(self, start, length):
                check_range(dirty_pages(self.ram_list), start, length, "cpu_physical_memory_set_dirty_range")
                for page in range(start >> TARGET_PAGE_BITS, TARGET_PAGE_ALIGN(start + length) >> TARGET_PAGE_BITS):
                    for client in (self.DIRTY_MEMORY_MIGRATION, self.DIRTY_MEMORY_VGA, self.DIRTY_MEMORY_CODE):
                        set_bit(page, self.ram_list.dirty_memory[client])
                self.machine.xen_modified_memory(start, length)          # the fix, made
        '''))
    code, out, _ = run(capsys, "verify", str(path), "--json")
    verdict = json.loads(out)
    assert code == 1 and verdict["failed"] == ["cost"]
    cost = next(c for c in verdict["checks"] if c["name"] == "cost")
    detail = "\n".join(cost["details"])
    assert "65,536 pages" in detail and "one page at a time" in detail and "commit 27" in detail
    assert re.search(r"calling set_bit 3 times per page \(196,608 calls\)", detail), detail


def test_28_with_a_page_loop_of_its_own_fails_on_cost(tmp_path):
    path = tmp_path / "loop28.py"
    path.write_text(textwrap.dedent('''\
        from stages import s27_set_dirty_range_bitmap_ops as parent
        from stages.bitmap import clear_bit
        from stages.common import TARGET_PAGE_ALIGN, TARGET_PAGE_BITS, check_client, check_range, dirty_pages


        class Stage(parent.Stage):
            STAGE = 28

            def cpu_physical_memory_clear_dirty_range(self, start, length, client):
                check_client(client, self.DIRTY_MEMORY_NUM, "cpu_physical_memory_clear_dirty_range")
                check_range(dirty_pages(self.ram_list), start, length, "cpu_physical_memory_clear_dirty_range")
                bitmap = self.ram_list.dirty_memory[client]
                for page in range(start >> TARGET_PAGE_BITS, TARGET_PAGE_ALIGN(start + length) >> TARGET_PAGE_BITS):
                    bitmap[page >> 6] &= ~(1 << (page & 63)) & ((1 << 64) - 1)   # numpy by hand, no helper
        '''))
    verdict = verify(load_stage_file(path, 28), str(path))
    assert verdict.failed() == ["cost"]
    detail = "\n".join(next(c for c in verdict.checks if c.name == "cost").details)
    assert "reset_dirty of the block" in detail and "one page at a time" in detail


def test_28_with_a_loop_over_words_passes_the_cost_check(tmp_path):
    # QEMU's bitmap_clear itself loops over words: that is the commit's order
    path = tmp_path / "words28.py"
    path.write_text(textwrap.dedent('''\
        from stages import s27_set_dirty_range_bitmap_ops as parent
        from stages.bitmap import clear_bit
        from stages.common import TARGET_PAGE_ALIGN, TARGET_PAGE_BITS, check_client, check_range, dirty_pages


        class Stage(parent.Stage):
            STAGE = 28

            def cpu_physical_memory_clear_dirty_range(self, start, length, client):
                check_client(client, self.DIRTY_MEMORY_NUM, "cpu_physical_memory_clear_dirty_range")
                check_range(dirty_pages(self.ram_list), start, length, "cpu_physical_memory_clear_dirty_range")
                bitmap = self.ram_list.dirty_memory[client]
                page, end = start >> TARGET_PAGE_BITS, TARGET_PAGE_ALIGN(start + length) >> TARGET_PAGE_BITS
                while page < end and page % 64:
                    clear_bit(page, bitmap)
                    page += 1
                while page + 64 <= end:
                    bitmap[page >> 6] = 0
                    page += 64
                while page < end:
                    clear_bit(page, bitmap)
                    page += 1
        '''))
    verdict = verify(load_stage_file(path, 28), str(path), quick_only=True)
    assert all(c.ok for c in verdict.checks), [c.summary for c in verdict.checks if not c.ok]


def test_19_keeping_the_byte_fails_on_its_representation(capsys, tmp_path):
    path = _exercise(capsys, tmp_path, 19)
    code, out, _ = run(capsys, "verify", str(path))
    assert code == 1
    assert "[FAIL] representation: your stage holds the dirty state as stage 18 did" in out
    assert "yours holds one flag byte per page (ram_list.phys_dirty)" in out
    assert "[FAIL] calls:" in out and "qemu_ram_alloc_from_ptr calls bitmap_zero_extend; yours does not" in out
    assert "full tier" not in out.split("Not done yet")[0].split("quick tier")[1]


def test_19_with_two_clients_bitmaps_swapped_is_told_which_holds_which(tmp_path):
    path = tmp_path / "swapped19.py"
    path.write_text("from stages.s19_split_dirty_bitmap import Stage as Real\n\n\nclass Stage(Real):\n"
                    "    STAGE = 19\n    DIRTY_MEMORY_VGA = 1\n    DIRTY_MEMORY_CODE = 0\n")
    verdict = _quick(path, 19)
    rep = next(c for c in verdict.checks if c.name == "representation")
    assert not rep.ok
    assert "yours holds 3 bitmaps of 64-bit words (ram_list.dirty_memory), one bit per page: vga in " \
           "dirty_memory[1], code in dirty_memory[0]" in rep.details[0]


def test_19_with_bits_set_past_the_end_of_ram_is_told_in_pages_and_clients(tmp_path):
    # no observer reads past the end of RAM: only the raw words show it
    path = tmp_path / "spill19.py"
    path.write_text("from stages.s19_split_dirty_bitmap import Stage as Real\n"
                    "from stages.bitmap import bitmap_set\n\n\nclass Stage(Real):\n    STAGE = 19\n\n"
                    "    def qemu_ram_alloc_from_ptr(self, size):\n"
                    "        offset = super().qemu_ram_alloc_from_ptr(size)\n"
                    "        words = self.ram_list.dirty_memory[self.DIRTY_MEMORY_MIGRATION]\n"
                    "        bitmap_set(words, 0, 64 * len(words))\n"
                    "        return offset\n")
    verdict = _quick(path, 19)
    rep = next(c for c in verdict.checks if c.name == "representation")
    assert not rep.ok and re.search(r"after op \d+ \(ram_alloc\) of T\d+", rep.summary)
    # the last word of the bitmap: the real one stops at the end of RAM, yours runs to the word's end
    m = re.fullmatch(r"the migration bitmap, word (\d+): pages (\d+)-(\d+) -> pages (\d+)-(\d+)", rep.details[0])
    assert m, rep.details
    word, first, last, first2, last2 = map(int, m.groups())
    assert first == first2 == 64 * word and last < last2 == 64 * word + 63
    assert next(c for c in verdict.checks if c.name == "rung").ok       # behaviour is kept


def test_38_without_the_new_function_fails_on_its_api_and_calls(capsys, tmp_path):
    path = _exercise(capsys, tmp_path, 38)
    verdict = _quick(path, 38)
    assert {"api", "calls"} <= set(verdict.failed())
    api = next(c for c in verdict.checks if c.name == "api")
    assert any(d.startswith("commit 38 adds migration_bitmap_sync_range(start: int, length: int)")
               for d in api.details)
    assert any("migration_bitmap_set_dirty: commit 38 takes (addr); yours takes (mr, offset)" == d
               for d in api.details)


def test_33_still_calling_through_memory_c_fails_on_its_calls(capsys, tmp_path):
    path = _exercise(capsys, tmp_path, 33)
    verdict = _quick(path, 33)
    assert verdict.failed() == ["calls"]
    assert ("your migration_bitmap_sync calls memory_region_test_and_clear_dirty; commit 33's does not"
            in next(c for c in verdict.checks if c.name == "calls").details)


def test_a_text_only_commit_says_there_is_nothing_to_write_and_is_done_by_its_declarations(capsys, tmp_path):
    path = _exercise(capsys, tmp_path, 32)
    code, out, _ = run(capsys, "verify", str(path))
    assert code == 1 and "Commit 32 has no code to write" in out and "dirty-ladder diff 32" in out
    assert "[FAIL] declarations:" in out
    text = path.read_text().replace("DECLARED_IN = {**parent.Stage.DECLARED_IN}",
                                    "DECLARED_IN = {**parent.Stage.DECLARED_IN, **{k: v.replace("
                                    "'include/exec/memory-internal.h', 'include/exec/memory-physical.h') "
                                    "for k, v in parent.Stage.DECLARED_IN.items() if k.startswith("
                                    "('cpu_physical_memory_', 'qemu_ram_'))}}")
    assert text != path.read_text()
    path.write_text(text)
    verdict = _quick(path, 32)
    assert [c.name for c in verdict.checks if not c.ok] == [], [c.details for c in verdict.checks]


# ------------------------------------------------------------------ messages
def test_the_untouched_27_starter_is_told_its_change_left_out_once(capsys, tmp_path):
    path = _exercise(capsys, tmp_path, 27)
    code, out, _ = run(capsys, "verify", str(path), "--json")
    verdict = json.loads(out)
    checks = {c["name"]: c for c in verdict["checks"]}
    assert verdict["tiers"] == ["quick"]
    register = checks["register"]
    assert not register["ok"] and "xen-told-start" in register["details"][0]
    assert "does not: cpu_physical_memory_set_dirty_range tells Xen" in register["details"][0]
    # one cause, said once: the rung and the conformance traces are what leaving that change out gives
    rung = checks["rung"]
    assert "your stage is commit 27 without its behaviour change(s) xen-told-start" in rung["summary"]
    assert rung["details"] == []
    assert "without xen-told-start gives" in checks["conformance"]["summary"]
    assert "done" not in read_progress()[27]


def test_a_second_mistake_beside_a_change_left_out_is_still_shown(capsys, tmp_path):
    path = _exercise(capsys, tmp_path, 27)
    text = path.read_text()
    old = "            set_bit(addr >> TARGET_PAGE_BITS, dirty_memory[self.DIRTY_MEMORY_VGA])\n"
    assert old in text
    path.write_text(text.replace(old, "            if addr != start + TARGET_PAGE_SIZE:\n    " + old))
    verdict = _quick(path, 27)
    rung = [c for c in verdict.checks if c.name == "rung"]
    assert all("without its behaviour change" not in c.summary for c in rung)
    assert any(d.startswith("machine:state.dirty") for c in rung for d in c.details)


def test_a_register_entry_is_not_blamed_for_a_mistake_that_is_not_its_change(tmp_path):
    # the Xen fix made, but CODE never set by the range: on xen-told-start's
    # own trace the dirty state differs, which is not that entry's change
    path = tmp_path / "nocode27.py"
    path.write_text(
        "from stages import s27_set_dirty_range_bitmap_ops as real\n"
        "from stages.bitmap import bitmap_set\n\n\n"
        "class Stage(real.Stage.__mro__[1]):\n    STAGE = 27\n\n"
        "    def cpu_physical_memory_set_dirty_range(self, start, length):\n"
        "        end = (start + length + 4095) >> 12\n"
        "        page = start >> 12\n"
        "        bitmap_set(self.ram_list.dirty_memory[self.DIRTY_MEMORY_MIGRATION], page, end - page)\n"
        "        bitmap_set(self.ram_list.dirty_memory[self.DIRTY_MEMORY_VGA], page, end - page)\n"
        "        self.machine.xen_modified_memory(start, length)\n")
    verdict = _quick(path, 27)
    register = next(c for c in verdict.checks if c.name == "register")
    assert not register.ok and "left out" not in register.summary
    assert "not only by leaving out xen-told-start's change" in register.details[0]
    assert "does not: cpu_physical_memory_set_dirty_range tells Xen" not in register.details[0]


def test_a_stage_that_forgets_one_of_two_intertwined_changes_is_told_which(tmp_path):
    # stage 30 whose tlb_reset_dirty_range_all no longer rounds its start
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
    verdict = _quick(path, 30)
    details = {d.split(" ", 1)[0]: d for d in next(c for c in verdict.checks if c.name == "register").details}
    assert "does not: tlb_reset_dirty_range_all" in details["tlb-reset-rounds-start"]
    assert "tlb-reset-short-range" not in details


def test_each_trace_is_printed_once_as_json_and_named_where_used(capsys, tmp_path):
    path = _exercise(capsys, tmp_path, 27)
    text = path.read_text()
    old = "            set_bit(addr >> TARGET_PAGE_BITS, dirty_memory[self.DIRTY_MEMORY_VGA])\n"
    path.write_text(text.replace(old, "            if addr != start + TARGET_PAGE_SIZE:\n    " + old))
    code, out, _ = run(capsys, "verify", str(path))
    assert code == 1
    printed = re.findall(r"^    ([TC]\d+): (\{.*\})$", out, re.MULTILINE)
    assert printed and len({i for i, _ in printed}) == len(printed)
    assert len({j for _, j in printed}) == len(printed)            # no JSON twice
    for rid, text_json in printed:
        obj = json.loads(text_json)
        assert obj["format"] in ("dirty-trace/1", "dirty-call/1")
        body = out.split("traces (T) and calls (C)")[0]
        assert f"{rid})" in body or f"{rid}:" in body or f"{rid};" in body or f" {rid}" in body, rid
    assert "\"ops\"" not in out.split("traces (T) and calls (C)")[0]   # no trace inline in a message


def test_a_stage_that_raises_is_told_its_file_line_and_op(capsys, tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("from stages import s26_find_next_bit as parent\n\n\nclass Stage(parent.Stage):\n"
                    "    STAGE = 27\n\n    def cpu_physical_memory_set_dirty_range(self, start, length):\n"
                    "        raise TypeError('oops')\n")
    code, out, err = run(capsys, "verify", str(path))
    assert code == 1 and "Traceback" not in out + err
    assert f"your stage raised TypeError: oops at {path}:8" in out
    assert re.search(r"TypeError: oops at .*broken\.py:8 on op 0 \(ram_alloc\)", out), out
    assert "[ok] rung" not in out and "[ok] conformance" not in out


def test_a_stage_whose_init_raises_fails_every_check_with_the_place(tmp_path):
    path = tmp_path / "badinit.py"
    path.write_text("from stages import s26_find_next_bit as parent\n\n\nclass Stage(parent.Stage):\n"
                    "    STAGE = 27\n\n    def __init__(self, machine):\n        raise RuntimeError('no')\n")
    verdict = _quick(path, 27)
    assert not any(c.ok for c in verdict.checks)
    assert all(f"{path}:8" in c.summary + "".join(c.details) for c in verdict.checks), \
        [c.summary for c in verdict.checks]


# ------------------------------------------------------------------ the user's files
def test_a_file_that_imports_stages_absolutely_loads(tmp_path):
    path = tmp_path / "abs27.py"
    path.write_text((ROOT / "stages" / f"{MODULES[27]}.py").read_text()
                    .replace("from . import s26", "from stages import s26")
                    .replace("from .bitmap", "from stages.bitmap").replace("from .common", "from stages.common"))
    assert "from ." not in path.read_text()
    assert load_stage_file(path, 27).STAGE == 27


@pytest.mark.parametrize("line", ["from s26_find_next_bit import Stage as P\n", "import bitmap\n",
                                  "from .. import stages\n"])
def test_imports_written_another_way_get_one_line_saying_how(capsys, tmp_path, line):
    path = tmp_path / "other.py"
    path.write_text(line + "class Stage:\n    STAGE = 27\n")
    code, out, err = run(capsys, "verify", str(path))
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "write its imports as a stage module does (from . import s26_find_next_bit as parent" in err
    assert f"{path}:1" in err


@pytest.mark.parametrize("content, message", [
    ("x = (", "does not import"),
    ("class Other: pass\n", "no class Stage"),
    ("from stages import s26_find_next_bit as p\nclass Stage(p.Stage):\n    pass\n", "does not set STAGE"),
    ("from stages import s04_accessor_for_is_dirty as p\nclass Stage(p.Stage):\n    STAGE = 0\n", "stage 0"),
])
def test_a_bad_stage_file_is_one_line_and_status_2(capsys, tmp_path, content, message):
    path = tmp_path / "mine.py"
    path.write_text(content)
    code, out, err = run(capsys, "verify", str(path))
    assert code == 2 and out == "" and message in err and err.count("\n") == 1


def test_check_stage_file_runs_the_rung_of_its_stage(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _exercise(capsys, tmp_path, 27)
    code, out, _ = run(capsys, "check", "--stage-file", str(path), "--exhaustive", "--level", "machine")
    assert code == 1 and "NEW DIFFERENCE machine:state.xen" in out
    written = sorted(p.name for p in tmp_path.glob("new-difference-rung27-*"))
    assert written == ["new-difference-rung27-machine-1.json"]
    code, out, _ = run(capsys, "replay", written[0], "--all", "--stage-file", str(path))
    assert code == 0 and "rung 28 (27 -> 28" in out and "rung 27 " not in out


# ------------------------------------------------------------------ --watch
def test_watch_runs_again_when_the_file_is_saved(tmp_path):
    path = tmp_path / "w.py"
    path.write_text("x = 1\n")
    runs, stop = [], threading.Event()
    thread = threading.Thread(target=watch, args=(str(path), lambda: runs.append(path.read_text()), stop),
                              daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not runs and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)                               # the watcher is up
    (tmp_path / "other.py").write_text("y = 2\n")  # another file: no run
    path.write_text("x = 2\n")
    while len(runs) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(timeout=3)
    assert runs == ["x = 1\n", "x = 2\n"] and not thread.is_alive()


def test_verify_watch_from_the_command_line_reruns_on_save_and_stops_on_ctrl_c(tmp_path):
    path = tmp_path / "exercise_33.py"
    path.write_text(exercises.starter(33), encoding="utf-8")
    env = {**os.environ, "DIRTY_LADDER_PROGRESS": str(tmp_path / "p.json")}
    proc = subprocess.Popen([sys.executable, "-m", "dirty_ladder", "verify", "--watch", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    lines: list[str] = []

    def read_until(count: int) -> None:
        while sum("-- watching" in line for line in lines) < count:
            line = proc.stdout.readline()
            assert line, "".join(lines) + proc.stderr.read()
            lines.append(line)
    try:
        read_until(1)
        assert any("[FAIL] calls" in line for line in lines)
        time.sleep(0.5)
        path.write_text(path.read_text().replace("class Stage(", "x = (\nclass Stage("))   # a syntax error
        read_until(2)
        assert any("does not import: SyntaxError" in line for line in lines)
        time.sleep(0.5)
        path.write_text(exercises.starter(33), encoding="utf-8")
        read_until(3)
        proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        proc.wait(timeout=5)
        assert time.monotonic() - t0 < 1.5
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert sum("[FAIL] calls" in line for line in lines) == 2


# ------------------------------------------------------------------ the README
def test_the_readme_transcript_is_what_the_commands_print(capsys, tmp_path, monkeypatch):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("$ dirty-ladder exercise 19\n", 1)[1].split("\n```", 1)[0]
    transcript = ("$ dirty-ladder exercise 19\n" + block).split("\n$ ")
    monkeypatch.chdir(tmp_path)
    assert len(transcript) == 2
    for part in transcript:
        command, _, shown = part.lstrip("$ ").partition("\n")
        argv = command.split()[1:]
        code, out, err = run(capsys, *argv)
        assert out.rstrip("\n") == shown, command


def test_a_representation_change_left_out_is_shown_as_the_bytes_themselves(tmp_path):
    # commit 14 moves migration from bit 3 to bit 2: a page dirty for all three reads 0x07, not 0x0b
    path = tmp_path / "exercise_14.py"
    path.write_text(exercises.starter(14), encoding="utf-8")
    register = next(c for c in _quick(path, 14).checks if c.name == "register")
    assert "'commit 14 -> yours': flag byte of page 0: 0x07 (vga, code, migration) -> 0x0b (vga, code, migration)" \
        in register.details[0]


def test_a_helper_of_your_own_is_seen_through_by_the_calls_check(tmp_path):
    # stage 38 with the range sync written through a private helper and a public one of the
    # learner's: what they call counts as called by migration_bitmap_sync_range
    path = tmp_path / "helpers38.py"
    source = (ROOT / "stages" / f"{MODULES[38]}.py").read_text()
    old = '''            if self.cpu_physical_memory_get_dirty(start + addr, TARGET_PAGE_SIZE,
                                                  self.DIRTY_MEMORY_MIGRATION):
                self.cpu_physical_memory_reset_dirty(start + addr, TARGET_PAGE_SIZE,
                                                     self.DIRTY_MEMORY_MIGRATION)
                self.migration_bitmap_set_dirty(start + addr)
'''
    assert old in source
    source = source.replace(old, "            self._sync_page(start + addr)\n") + textwrap.dedent('''
        def _sync_page(self, addr):
            if self.cpu_physical_memory_get_dirty(addr, TARGET_PAGE_SIZE, self.DIRTY_MEMORY_MIGRATION):
                self.reset_and_mark(addr)

        def reset_and_mark(self, addr):
            self.cpu_physical_memory_reset_dirty(addr, TARGET_PAGE_SIZE, self.DIRTY_MEMORY_MIGRATION)
            self.migration_bitmap_set_dirty(addr)
    ''').replace("\n", "\n    ").rstrip() + "\n"
    path.write_text(source)
    verdict = _quick(path, 38)
    assert next(c for c in verdict.checks if c.name == "calls").ok, \
        next(c for c in verdict.checks if c.name == "calls").details
    # and a helper that calls the wrong thing is still seen
    wrong = source.replace("        self.migration_bitmap_set_dirty(addr)\n", "        pass\n")
    assert wrong != source
    path.write_text(wrong)
    calls = next(c for c in _quick(path, 38).checks if c.name == "calls")
    assert calls.details == ["commit 38's migration_bitmap_sync_range calls migration_bitmap_set_dirty; "
                             "yours does not"]


@pytest.mark.parametrize("parent", [27, 30])
def test_a_stage_built_on_the_ladders_own_solution_is_not_done(capsys, tmp_path, parent):
    """The commit's own stage (or a later one) subclassed whole passes every
    behavioural check, so verify says it is not the learner's change and
    does not mark the exercise done."""
    path = tmp_path / "borrowed.py"
    path.write_text(f"from stages import {MODULES[parent]} as real\n\n\nclass Stage(real.Stage):\n"
                    f"    STAGE = 27\n", encoding="utf-8")
    verdict = _quick(path, 27)
    own = next(c for c in verdict.checks if c.name == "own code")
    assert not own.ok and f"the ladder's own stage {parent}" in own.summary
    code, out, _ = run(capsys, "verify", str(path))
    assert code == 1 and "Marked done" not in out
    assert 27 not in read_progress() or "done" not in read_progress()[27]
