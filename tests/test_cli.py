"""The command line: ``python -m dirty_ladder`` / ``dirty-ladder``.

Most tests run the real command line in a subprocess (``sys.executable -m
stages ...``); the ones that loop over many stages call ``dirty_ladder.cli.main``
in-process, which is the console script's entry point.  Every user error must
end with exit status 2, exactly one line on stderr and no traceback; the
malformed-trace corpus below covers every case of docs/trace-format.md's
"What makes a trace invalid" and more.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from stages import LAST, stage
from tables import read_table
from dirty_ladder import cli
from dirty_ladder import rungs as ladder

ROOT = Path(__file__).resolve().parent.parent

# The example of docs/trace-format.md, and the result it shows (the spec).
EXAMPLE_TRACE = {
    "format": "dirty-trace/1",
    "config": {"host_page_size": 4096, "accel": "tcg", "xen": False},
    "ops": [
        {"op": "ram_alloc", "size": 262144},
        {"op": "tb_translate", "addr": 8192},
        {"op": "tcg_write", "addr": 8200, "size": 4},
        {"op": "get_dirty", "addr": 0, "len": 16384, "client": "vga"},
    ],
}
EXPECTED_RESULT = json.loads("""
{
  "format": "dirty-trace-result/1",
  "stage": 39,
  "results": [0, null, "trapped", true],
  "state": {
    "blocks": [[0, 262144]],
    "dirty": {"vga": [[0, 64]], "code": [[0, 64]], "migration": [[0, 64]]},
    "tlb": {"notdirty": [], "dirty": [[2, 3]]},
    "tb_pages": [],
    "kvm_log": [],
    "in_migration": false,
    "migration": null,
    "xen": []
  }
}
""")
XEN_TRACE = {"format": "dirty-trace/1", "config": {"xen": True}, "ops": [{"op": "ram_alloc", "size": 65537}]}


def run(*args: str, cwd: Path | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return subprocess.run([sys.executable, "-m", "dirty_ladder", *args], check=False, cwd=cwd or ROOT, env=env,
                          input=stdin, capture_output=True, text=True, timeout=120)


def inproc(capsys, *args: str) -> tuple[int, str, str]:
    rc = cli.main(list(args))
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def assert_user_error(proc_or_triple, *needles: str) -> str:
    """Exit 2, exactly one line on stderr naming the problem, no traceback."""
    if isinstance(proc_or_triple, subprocess.CompletedProcess):
        rc, out, err = proc_or_triple.returncode, proc_or_triple.stdout, proc_or_triple.stderr
    else:
        rc, out, err = proc_or_triple
    assert rc == 2, (rc, out, err)
    assert "Traceback" not in err and "Traceback" not in out
    lines = err.splitlines()
    assert len(lines) == 1 and err.endswith("\n"), err
    assert lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def write(tmp_path: Path, obj, name: str = "t.json") -> Path:
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


# ---------------------------------------------------------------- help and entry points
HELP = [[], ["list"], ["show"], ["diff"], ["replay"], ["check"], ["trace"], ["trace", "random"],
        ["trace", "validate"]]


@pytest.mark.parametrize("words", HELP, ids=lambda w: "-".join(w) or "top")
def test_help_on_every_subcommand_has_an_example(capsys, words):
    rc, out, err = inproc(capsys, *words, "--help")
    assert rc == 0 and err == ""
    assert "usage: dirty-ladder" in out
    assert re.search(r"^examples?:$", out, re.MULTILINE), out
    assert re.search(r"^  dirty-ladder " + re.escape(" ".join(words)), out, re.MULTILINE), out


def test_python_m_dirty_ladder_help_and_console_script_declared():
    proc = run("--help")
    assert proc.returncode == 0 and "usage: python -m dirty_ladder" in proc.stdout
    for sub in ("list", "show", "diff", "replay", "check", "trace"):
        assert sub in proc.stdout
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["dirty-ladder"] == "dirty_ladder.cli:main"
    assert callable(cli.main)


# ---------------------------------------------------------------- list
def test_list_human():
    proc = run("list")
    assert proc.returncode == 0, proc.stderr
    rows = read_table(proc.stdout.splitlines(), ["#", "upstream", "kind of step", "rung", "title (v2)"])
    assert len(rows) == LAST + 1                     # a header, then the 40 stages
    register = ladder.load_register()
    for n, row in enumerate(rows):
        cls = stage(n)
        assert row[0] == str(n)
        assert cls.TITLE == row[4]
        assert row[2] == re.split(r" \(|;", cls.KIND)[0]
        assert row[1] == (cls.UPSTREAM or "-").split()[0]
        statuses = {d.status for d in register if d.rung == n}
        if n == 0:
            assert row[3] == "baseline"
        elif statuses:
            assert all(st in row[3] for st in statuses) and "same" not in row[3]
        else:
            assert row[3] == "same"
    assert "split dirty bitmap into three" in rows[19][4] and rows[19][1] == "1ab4c8cea"


def test_list_json():
    proc = run("list", "--json")
    assert proc.returncode == 0
    rows = json.loads(proc.stdout)
    assert [r["stage"] for r in rows] == list(range(LAST + 1))
    assert rows[25]["title"] == "memory: s/mask/clear/ cpu_physical_memory_mask_dirty_range"
    assert rows[25]["kind"] == "rename" and rows[25]["upstream"] == "ace694ccc"
    assert rows[1]["upstream"] is None and rows[0]["status"] == "baseline"
    by_rung = {}
    for d in ladder.load_register():
        by_rung.setdefault(d.rung, []).append(d.id)
    for r in rows[1:]:
        assert [d["id"] for d in r["divergences"]] == by_rung.get(r["stage"], [])
        assert r["status"] == ("diverges" if r["stage"] in by_rung else "same behaviour")


# ---------------------------------------------------------------- show
def test_show_19_human():
    proc = run("show", "19")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("stage 19: memory: split dirty bitmap into three")
    assert "0.375 bytes per page" in out and "bitmaps" in out
    rows = read_table(out.splitlines(), ["function, and its signature below", "declared in", "last changed"])
    row = next(r for r in rows if r[0].split()[0] == "cpu_physical_memory_set_dirty_flag")
    assert row[1] == "include/exec/memory-internal.h"
    assert row[2] == "19"                                    # last changed by this very commit
    assert row[0] == "cpu_physical_memory_set_dirty_flag (addr: int, client: int) -> None"
    constants = read_table(out.splitlines(), ["constant", "value", "declared in", "since stage"])
    assert ["DIRTY_MEMORY_MIGRATION", "2", "include/exec/memory.h", "14"] in constants
    assert "VGA_DIRTY_FLAG" not in out                      # gone since stage 13
    assert "cpu_physical_memory_get_dirty_flags" not in out  # removed at stage 9


def test_show_json_at_three_stages(capsys):
    rc, out, _ = inproc(capsys, "show", "19", "--json")
    data = json.loads(out)
    assert rc == 0 and data["stage"] == 19
    assert data["representation"]["kind"] == "bitmaps" and data["representation"]["bytes_per_page"] == 0.375
    fns = {f["name"]: f for f in data["functions"]}
    assert fns["cpu_physical_memory_set_dirty_flag"]["declared_in"] == "include/exec/memory-internal.h"
    assert fns["cpu_physical_memory_set_dirty_flag"]["last_changed"] == 19
    assert fns["cpu_physical_memory_set_dirty_flag"]["signature"] == "(addr: int, client: int) -> None"
    assert fns["ram_save_setup"]["last_changed"] == 0
    assert "cpu_physical_memory_is_dirty" in fns and "cpu_physical_memory_is_clean" not in fns
    consts = {c["name"]: c["value"] for c in data["constants"]}
    assert consts == {"DIRTY_MEMORY_VGA": 0, "DIRTY_MEMORY_CODE": 1, "DIRTY_MEMORY_MIGRATION": 2,
                      "DIRTY_MEMORY_NUM": 3}

    rc, out, _ = inproc(capsys, "show", "0", "--json")
    data = json.loads(out)
    assert data["representation"] == {**data["representation"], "kind": "bytes", "bytes_per_page": 1}
    consts = {c["name"]: c["value"] for c in data["constants"]}
    assert consts["VGA_DIRTY_FLAG"] == 1 and consts["MIGRATION_DIRTY_FLAG"] == 8
    assert consts["DIRTY_MEMORY_MIGRATION"] == 3

    rc, out, _ = inproc(capsys, "show", "32", "--json")
    fns = {f["name"]: f for f in json.loads(out)["functions"]}
    assert fns["cpu_physical_memory_is_clean"]["declared_in"] == "include/exec/memory-physical.h"
    assert fns["cpu_physical_memory_is_clean"]["last_changed"] == 29
    assert "cpu_physical_memory_mask_dirty_range" not in fns


def test_show_function_source_in_force():
    proc = run("show", "19", "cpu_physical_memory_set_dirty_flag")
    assert proc.returncode == 0, proc.stderr
    assert "stages/s19_split_dirty_bitmap.py" in proc.stdout
    assert "def cpu_physical_memory_set_dirty_flag(self, addr: int, client: int) -> None:" in proc.stdout
    assert "set_bit(addr >> TARGET_PAGE_BITS" in proc.stdout
    # inherited: at stage 24 the definition in force is stage 13's
    proc = run("show", "24", "notdirty_mem_write")
    assert proc.returncode == 0 and "since stage 13" in proc.stdout
    assert "stages/s13_dirty_memory_clients.py" in proc.stdout


def test_show_renamed_function_json(capsys):
    rc, out, _ = inproc(capsys, "show", "27", "cpu_physical_memory_clear_dirty_range", "--json")
    fn = json.loads(out)["function"]
    assert rc == 0
    assert fn["last_changed"] == 25 and fn["defined_in"] == "stages/s25_rename_mask_to_clear.py"
    assert fn["alias_of"] is None
    assert fn["source"].startswith("def cpu_physical_memory_clear_dirty_range(")
    assert fn["declared_in"] == "include/exec/memory-internal.h"


def test_function_bound_under_another_name_is_an_alias():
    from dirty_ladder.model import function_of

    class Parent:
        DECLARED_IN = {}

        def old_name(self, start: int) -> None:
            pass

    class Child(Parent):
        new_name = Parent.old_name

    fn = function_of(Child, "new_name")
    assert fn.alias_of == "old_name" and fn.owner is Child and fn.signature == "(start: int) -> None"


def test_show_unknown_function_is_one_line():
    assert_user_error(run("show", "30", "no_such_function"), "no function", "no_such_function")
    assert_user_error(run("show", "30", "cpu_physical_memory_mask_dirty_range"), "removed at stage 25")
    assert_user_error(run("show", "10", "cpu_physical_memory_is_clean"), "stages 29-39")


# ---------------------------------------------------------------- diff
def test_diff_29_is_dirty_removed_is_clean_added():
    proc = run("diff", "29")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    removed = out.split("removed:\n", 1)[1].split("\n\n", 1)[0]
    added = out.split("added:\n", 1)[1].split("\n\n", 1)[0]
    assert "cpu_physical_memory_is_dirty(addr: int) -> bool" in removed
    assert "cpu_physical_memory_is_clean(addr: int) -> bool" in added
    assert "-    if not self.cpu_physical_memory_is_dirty(addr):" in out     # invalidate_and_set_dirty
    assert "+    if self.cpu_physical_memory_is_clean(addr):" in out


def test_diff_29_json(capsys):
    rc, out, _ = inproc(capsys, "diff", "29", "--json")
    d = json.loads(out)
    assert rc == 0 and (d["from"], d["to"]) == (28, 29)
    assert [r["name"] for r in d["removed"]] == ["cpu_physical_memory_is_dirty"]
    assert [a["name"] for a in d["added"]] == ["cpu_physical_memory_is_clean"]
    assert not any(r["likely"] for r in d["renamed"])        # the body is negated: not a plain rename
    changed = {c["name"] for c in d["changed_functions"]}
    assert {"tlb_set_page", "notdirty_mem_write", "invalidate_and_set_dirty", "stl_phys_notdirty"} <= changed
    assert d["representation"]["changed"] is False
    assert d["commits"][0]["upstream"] == "a2cd8c852" and "Stage 29" in d["message"]


def test_diff_25_rename():
    proc = run("diff", "25")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    renamed = out.split("renamed:\n", 1)[1].split("\n\n", 1)[0]
    assert "cpu_physical_memory_mask_dirty_range -> cpu_physical_memory_clear_dirty_range" in renamed
    assert "likely rename" in renamed
    assert "\nremoved:\n" not in out and "\nadded:\n" not in out
    assert "+    self.cpu_physical_memory_clear_dirty_range(start, length, client)" in out


def test_diff_25_json(capsys):
    _, out, _ = inproc(capsys, "diff", "25", "--json")
    d = json.loads(out)
    assert d["renamed"] == [{"from": "cpu_physical_memory_mask_dirty_range",
                             "to": "cpu_physical_memory_clear_dirty_range",
                             "likely": True, "reason": "same body"}]
    assert d["added"] == [] and d["removed"] == []
    assert [c["name"] for c in d["changed_functions"]] == [
        "cpu_physical_memory_reset_dirty",
        "cpu_physical_memory_mask_dirty_range -> cpu_physical_memory_clear_dirty_range"]


def test_diff_representation_constants_signatures_declarations(capsys):
    d = json.loads(inproc(capsys, "diff", "19", "--json")[1])
    assert d["representation"]["changed"] and d["representation"]["from"]["bytes_per_page"] == 1
    assert d["representation"]["to"]["bytes_per_page"] == 0.375
    d = json.loads(inproc(capsys, "diff", "13", "--json")[1])
    assert d["constants"]["removed"] == {"CODE_DIRTY_FLAG": 2, "MIGRATION_DIRTY_FLAG": 8, "VGA_DIRTY_FLAG": 1}
    sig = {s["name"]: s for s in d["signature_changes"]}
    assert sig["cpu_physical_memory_get_dirty"]["parameters"]["to"] == ["start", "length", "client"]
    d = json.loads(inproc(capsys, "diff", "14", "--json")[1])
    assert d["constants"]["changed"] == {"DIRTY_MEMORY_MIGRATION": [3, 2]}
    assert d["constants"]["added"] == {"DIRTY_MEMORY_NUM": 3}
    d = json.loads(inproc(capsys, "diff", "31", "--json")[1])
    sig = {s["name"]: s for s in d["signature_changes"]}
    assert sig["cpu_physical_memory_set_dirty_tracking"]["returns"] == {"from": "int", "to": "None"}
    d = json.loads(inproc(capsys, "diff", "32", "--json")[1])
    moved = {m["name"]: m["to"] for m in d["declarations_moved"]}
    assert moved["cpu_physical_memory_is_clean"] == "include/exec/memory-physical.h"
    _, out, _ = inproc(capsys, "diff", "24", "26", "--json")
    d = json.loads(out)
    assert [c["stage"] for c in d["commits"]] == [25, 26] and d["renamed"][0]["likely"]


def test_diff_human_sections():
    out = run("diff", "19").stdout
    assert "representation changed:\n  bytes (1 byte per page) -> bitmaps (0.375 bytes per page)" in out
    out = run("diff", "13").stdout
    assert "- VGA_DIRTY_FLAG = 1" in out and "signatures changed:" in out
    out = run("diff", "12", "19").stdout
    assert "commits:" in out and "split dirty bitmap into three" in out
    assert_user_error(run("diff", "0"), "stage 0")
    assert_user_error(run("diff", "5", "40"), "unknown stage 40")


# ---------------------------------------------------------------- replay
@pytest.mark.parametrize("n", range(LAST + 1))
def test_replay_doc_example_on_every_stage(tmp_path, capsys, n):
    path = write(tmp_path, EXAMPLE_TRACE)
    rc, out, err = inproc(capsys, "replay", str(path), "--stage", str(n), "--json")
    assert rc == 0 and err == ""
    assert json.loads(out) == {**EXPECTED_RESULT, "stage": n}


def test_replay_subprocess_json_and_human(tmp_path):
    path = write(tmp_path, EXAMPLE_TRACE)
    proc = run("replay", str(path), "--stage", "39", "--json")
    assert proc.returncode == 0 and proc.stderr == ""
    assert json.loads(proc.stdout) == EXPECTED_RESULT
    proc = run("replay", str(path), "--stage", "12")
    assert proc.returncode == 0
    out = proc.stdout
    assert out.startswith("stage 12: ")
    assert re.search(r"\[2\] tcg_write addr=8200 size=4\s+-> \"trapped\"", out)
    assert re.search(r"\[3\] get_dirty addr=0 len=16384 client=vga\s+-> true", out)
    assert re.search(r"tlb\.dirty\s+\[\[2, 3\]\]", out) and re.search(r"blocks\s+\[\[0, 262144\]\]", out)


def test_replay_from_stdin():
    proc = run("replay", "-", "--stage", "0", "--json", stdin=json.dumps(EXAMPLE_TRACE))
    assert proc.returncode == 0 and json.loads(proc.stdout)["results"] == [0, None, "trapped", True]


def test_replay_all_example_is_the_same_everywhere(tmp_path):
    path = write(tmp_path, EXAMPLE_TRACE)
    proc = run("replay", str(path), "--all")
    assert proc.returncode == 0
    assert "the observables are the same on all 40 stages" in proc.stdout
    proc = run("replay", str(path), "--all", "--json")
    data = json.loads(proc.stdout)
    assert data["changes"] == [] and data["behaviours"][0]["stages"] == [0, 39]


def test_replay_all_xen_changes_at_rung_27(tmp_path):
    path = write(tmp_path, XEN_TRACE)
    proc = run("replay", str(path), "--all")
    assert proc.returncode == 0, proc.stderr
    change_lines = [x for x in proc.stdout.splitlines() if x.strip().startswith("rung ")]
    assert len(change_lines) == 1
    assert change_lines[0].strip().startswith("rung 27 (26 -> 27")
    assert "state.xen: [[69632, 69632]] -> [[0, 69632]]" in change_lines[0]
    data = json.loads(run("replay", str(path), "--all", "--json").stdout)
    assert [(c["rung"], c["path"]) for c in data["changes"]] == [(27, "state.xen")]
    assert data["changes"][0]["before"] == [[69632, 69632]] and data["changes"][0]["after"] == [[0, 69632]]
    assert [b["stages"] for b in data["behaviours"]] == [[0, 26], [27, 39]]


def test_replay_option_errors(tmp_path):
    path = str(write(tmp_path, EXAMPLE_TRACE))
    assert_user_error(run("replay", path, "--stage", "40"), "unknown stage 40")
    assert_user_error(run("replay", path, "--stage", "-1"), "unknown stage -1")
    assert_user_error(run("replay", path, "--stage", "x"), "--stage")
    assert_user_error(run("replay", path), "--stage", "--all")
    assert_user_error(run("replay", path, "--stage", "3", "--all"), "not allowed")
    assert_user_error(run("replay"), "TRACE.json")
    assert_user_error(run("show", "40"), "unknown stage 40")
    assert_user_error(run("show", "nineteen"), "whole number")
    assert_user_error(run("frobnicate"), "invalid choice")
    assert_user_error(run("list", "--colour"), "unrecognized arguments")
    assert_user_error(run(), "COMMAND")


# ---------------------------------------------------------------- the malformed-trace corpus
def T(ops, config=None, **top):
    obj = {"format": "dirty-trace/1"}
    if config is not None:
        obj["config"] = config
    obj["ops"] = ops
    obj.update(top)
    return obj


RAM = {"op": "ram_alloc", "size": 262144}          # pages 0-63: [0, 0x40000)
SETUP = {"op": "migration_setup"}
DEEP = "[" * 100_000 + "]" * 100_000

# (id, trace object or raw text, words the error line must contain, op index or None)
MALFORMED = [
    # the file and its JSON
    ("invalid-json-truncated", '{"format": "dirty-trace/1", "ops": [', "not valid JSON", None),
    ("invalid-json-trailing-comma", '{"format": "dirty-trace/1", "ops": [],}', "not valid JSON", None),
    ("invalid-json-empty-file", "", "not valid JSON", None),
    ("invalid-json-single-quotes", "{'format': 'dirty-trace/1'}", "not valid JSON", None),
    ("invalid-json-garbage", "ram_alloc 4096", "not valid JSON", None),
    ("invalid-json-nested-too-deeply", DEEP, "not valid JSON", None),
    ("invalid-json-huge-integer", '{"format": "dirty-trace/1", "ops": [{"op": "ram_alloc", "size": '
     + "9" * 5000 + "}]}", "not valid JSON", None),
    ("duplicate-key-in-an-op", '{"format": "dirty-trace/1", "ops": [{"op": "ram_alloc", "size": 4096, '
     '"size": 8192}]}', "duplicate key 'size'", None),
    ("duplicate-key-format", '{"format": "dirty-trace/1", "format": "dirty-trace/1", "ops": []}',
     "duplicate key 'format'", None),
    ("duplicate-key-in-config", '{"format": "dirty-trace/1", "config": {"xen": true, "xen": false}, "ops": []}',
     "duplicate key 'xen'", None),
    ("non-object-list", [], "JSON object", None),
    ("non-object-number", "42", "JSON object", None),
    ("non-object-string", '"dirty-trace/1"', "JSON object", None),
    ("non-object-null", "null", "JSON object", None),
    # the top level
    ("unknown-format", {"format": "dirty-trace/2", "ops": []}, "unknown format", None),
    ("missing-format", {"ops": []}, "no 'format' field", None),
    ("format-not-a-string", {"format": 1, "ops": []}, "unknown format", None),
    ("result-format-as-trace", {"format": "dirty-trace-result/1", "ops": []}, "unknown format", None),
    ("unknown-top-level-field", T([], comment="hi"), "unknown top-level field", None),
    ("missing-ops", {"format": "dirty-trace/1"}, "'ops' must be a list", None),
    ("ops-not-a-list", T({"op": "kvm_sync"}), "'ops' must be a list", None),
    # config
    ("config-not-an-object", T([], config=[4096]), "config must be an object", None),
    ("config-unknown-key", T([], config={"smp": 2}), "unknown key", None),
    ("config-host-page-size-8192", T([], config={"host_page_size": 8192}), "host_page_size", None),
    ("config-host-page-size-string", T([], config={"host_page_size": "4096"}), "host_page_size", None),
    ("config-host-page-size-bool", T([], config={"host_page_size": True}), "host_page_size", None),
    ("config-accel-hvf", T([], config={"accel": "hvf"}), "accel", None),
    ("config-accel-null", T([], config={"accel": None}), "accel", None),
    ("config-xen-string", T([], config={"xen": "yes"}), "xen must be true or false", None),
    ("config-xen-int", T([], config={"xen": 1}), "xen must be true or false", None),
    # ops: unknown, missing, badly typed
    ("op-not-an-object", T([RAM, "kvm_sync"]), "an op must be an object", 1),
    ("op-null", T([RAM, None]), "an op must be an object", 1),
    ("op-without-name", T([RAM, {"addr": 0}]), "unknown op", 1),
    ("unknown-op", T([RAM, {"op": "ram_realloc", "size": 4096}]), "unknown op 'ram_realloc'", 1),
    ("op-name-not-a-string", T([{"op": 5}]), "unknown op", 0),
    ("unknown-field", T([{"op": "ram_alloc", "size": 4096, "addr": 0}]), "unknown field 'addr'", 0),
    ("unknown-field-on-kvm-sync", T([RAM, {"op": "kvm_sync", "block": 0}]), "unknown field 'block'", 1),
    ("missing-field-size", T([RAM, {"op": "tcg_write", "addr": 0}]), "missing field 'size'", 1),
    ("missing-field-client", T([RAM, {"op": "get_dirty", "addr": 0, "len": 1}]), "missing field 'client'", 1),
    ("missing-field-ram-alloc", T([{"op": "ram_alloc"}]), "missing field 'size'", 0),
    ("negative-addr", T([RAM, {"op": "tb_translate", "addr": -1}]), "negative", 1),
    ("negative-len", T([RAM, {"op": "dma_write", "addr": 0, "len": -4096}]), "negative", 1),
    ("negative-size", T([{"op": "ram_alloc", "size": -4096}]), "negative", 0),
    ("float-addr", T([RAM, {"op": "tlb_fill", "addr": 1.5}]), "non-negative integer", 1),
    ("float-integral-size", T([{"op": "ram_alloc", "size": 4096.0}]), "non-negative integer", 0),
    ("string-addr", T([RAM, {"op": "is_clean", "addr": "0x2000"}]), "non-negative integer", 1),
    ("bool-size", T([RAM, {"op": "tcg_write", "addr": 0, "size": True}]), "non-negative integer", 1),
    ("null-len", T([RAM, {"op": "set_dirty", "addr": 0, "len": None}]), "non-negative integer", 1),
    ("nan-addr", ('{"format": "dirty-trace/1", "ops": [{"op": "ram_alloc", "size": 4096}, '
                  '{"op": "kvm_write", "addr": NaN}]}'), "non-negative integer", 1),
    ("number-past-64-bits", T([RAM, {"op": "tb_translate", "addr": 1 << 64}]), "64 bits", 1),
    ("unknown-client", T([RAM, {"op": "reset_dirty", "addr": 0, "len": 1, "client": "gpu"}]), "client", 1),
    ("client-as-number", T([RAM, {"op": "test_and_clear_dirty", "addr": 0, "len": 1, "client": 0}]),
     "client", 1),
    # addresses and ranges
    ("address-outside-every-block", T([RAM, {"op": "tb_translate", "addr": 1 << 20}]),
     "outside every RAM block", 1),
    ("address-before-any-block", T([{"op": "tlb_fill", "addr": 0}]), "outside every RAM block", 0),
    ("address-at-block-end", T([RAM, {"op": "is_clean", "addr": 262144}]), "outside every RAM block", 1),
    ("address-in-freed-block", T([RAM, {"op": "ram_alloc", "size": 8192}, {"op": "ram_free", "offset": 262144},
                                  {"op": "tb_translate", "addr": 262144}]), "outside every RAM block", 3),
    ("dma-range-crossing-block-end", T([RAM, {"op": "dma_write", "addr": 262000, "len": 4096}]),
     "crosses the end of the block", 1),
    ("get-dirty-range-crossing-end", T([RAM, {"op": "get_dirty", "addr": 0, "len": 262145,
                                              "client": "vga"}]), "crosses the end of the block", 1),
    ("range-crossing-into-next-block", T([RAM, {"op": "ram_alloc", "size": 4096},
                                          {"op": "set_dirty", "addr": 258048, "len": 8192}]),
     "crosses the end of the block", 2),
    ("stl-phys-crossing-end", T([RAM, {"op": "stl_phys_notdirty", "addr": 262142}]),
     "crosses the end of the block", 1),
    ("tcg-write-size-3", T([RAM, {"op": "tcg_write", "addr": 0, "size": 3}]), "size must be 1, 2 or 4", 1),
    ("tcg-write-size-8", T([RAM, {"op": "tcg_write", "addr": 0, "size": 8}]), "size must be 1, 2 or 4", 1),
    ("tcg-write-size-0", T([RAM, {"op": "tcg_write", "addr": 0, "size": 0}]), "size must be 1, 2 or 4", 1),
    ("tcg-write-crossing-a-page", T([RAM, {"op": "tcg_write", "addr": 4094, "size": 4}]),
     "cross a target page", 1),
    ("tcg-write-crossing-block-end", T([RAM, {"op": "tcg_write", "addr": 262143, "size": 2}]),
     "crosses the end of the block", 1),
    # RAM blocks
    ("free-of-a-non-block", T([RAM, {"op": "ram_free", "offset": 4096}]), "not the offset of a RAM block", 1),
    ("free-twice", T([RAM, {"op": "ram_alloc", "size": 4096}, {"op": "ram_free", "offset": 262144},
                      {"op": "ram_free", "offset": 262144}]), "not the offset of a RAM block", 3),
    ("free-with-no-ram", T([{"op": "ram_free", "offset": 0}]), "not the offset of a RAM block", 0),
    ("ram-alloc-size-0", T([{"op": "ram_alloc", "size": 0}]), "size 0", 0),
    ("ram-alloc-past-1-tib", T([{"op": "ram_alloc", "size": 1 << 41}]), "1 TiB", 0),
    ("kvm-write-into-partial-host-page", T([{"op": "ram_alloc", "size": 69632},
                                            {"op": "kvm_write", "addr": 65546}],
                                           config={"host_page_size": 65536}), "not wholly inside", 1),
    ("kvm-write-block-smaller-than-host-page", T([{"op": "ram_alloc", "size": 4096},
                                                  {"op": "kvm_write", "addr": 0}],
                                                 config={"host_page_size": 65536, "accel": "kvm"}),
     "not wholly inside", 1),
    # migration
    ("ram-alloc-after-migration-setup", T([RAM, SETUP, {"op": "ram_alloc", "size": 4096}]),
     "ram_alloc after migration_setup", 2),
    ("ram-free-after-migration-setup", T([RAM, {"op": "ram_alloc", "size": 4096}, SETUP,
                                          {"op": "ram_free", "offset": 262144}]),
     "ram_free after migration_setup", 3),
    ("migration-sync-before-setup", T([RAM, {"op": "migration_sync"}]), "migration_sync before migration_setup", 1),
    ("migration-next-before-setup", T([RAM, {"op": "migration_next", "block": 0, "start": 0}]),
     "migration_next before migration_setup", 1),
    ("migration-next-not-a-block", T([RAM, SETUP, {"op": "migration_next", "block": 4096, "start": 0}]),
     "not the offset of a RAM block", 2),
    ("error-deep-in-a-long-trace", T([RAM] + [{"op": "tb_translate", "addr": 4096 * i} for i in range(40)]
                                     + [{"op": "tcg_write", "addr": 4095, "size": 2}]), "cross a target page", 41),
]


def test_corpus_is_large_and_named_uniquely():
    assert len(MALFORMED) >= 50
    assert len({case[0] for case in MALFORMED}) == len(MALFORMED)


@pytest.mark.parametrize("name, content, needle, index", MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_trace_is_one_line_exit_2(tmp_path, name, content, needle, index):
    path = write(tmp_path, content, f"{name}.json")
    # alternate the two forms of replay: both validate before running anything
    mode = ["--all"] if len(name) % 2 else ["--stage", "19"]
    proc = run("replay", str(path), *mode)
    line = assert_user_error(proc, needle, path.name)
    assert proc.stdout == ""
    if index is not None:
        assert f"op {index}: " in line
    else:
        assert not re.search(r"\bop \d+:", line)


def test_unreadable_files(tmp_path):
    missing = str(tmp_path / "missing.json")
    proc = run("replay", missing, "--stage", "0")
    assert_user_error(proc, "missing.json", "cannot read")
    assert proc.stderr.count(missing) == 1, proc.stderr                  # the file named once
    assert_user_error(run("replay", str(tmp_path), "--all"), "cannot read")          # a directory
    bad = tmp_path / "latin1.json"
    bad.write_bytes(b'{"format": "dirty-trace/1", "ops": [], "x": "\xe9"}')
    assert_user_error(run("replay", str(bad), "--stage", "0"), "cannot read")
    assert_user_error(run("trace", "validate", str(bad)), "cannot read")


def test_validate_subcommand(tmp_path, capsys):
    path = write(tmp_path, EXAMPLE_TRACE)
    rc, out, _ = inproc(capsys, "trace", "validate", str(path), "--json")
    assert rc == 0 and json.loads(out) == {"valid": True, "ops": 4, "config": EXAMPLE_TRACE["config"]}
    path = write(tmp_path, T([RAM, {"op": "tcg_write", "addr": 0, "size": 3}]), "bad.json")
    assert_user_error(inproc(capsys, "trace", "validate", str(path)), "op 1: ", "size must be 1, 2 or 4")


# ---------------------------------------------------------------- trace random
def test_trace_random_stdout_is_valid_and_deterministic():
    from dirty_ladder.trace import loads
    a = run("trace", "random", "--seed", "7", "--ops", "25")
    b = run("trace", "random", "--seed", "7", "--ops", "25")
    assert a.returncode == 0 and a.stdout == b.stdout
    trace = loads(a.stdout)
    assert len(trace.ops) >= 25 and trace.ops[0]["op"] == "ram_alloc"
    assert run("trace", "random", "--seed", "8", "--ops", "25").stdout != a.stdout


def test_trace_random_config_and_output_file(tmp_path):
    from dirty_ladder.trace import load
    out = tmp_path / "r.json"
    proc = run("trace", "random", "--seed", "3", "--ops", "12", "--host-page-size", "65536",
               "--accel", "kvm", "--xen", "-o", str(out))
    assert proc.returncode == 0 and proc.stdout == ""
    trace = load(out)
    assert trace.config.as_dict() == {"host_page_size": 65536, "accel": "kvm", "xen": True}
    proc = run("replay", str(out), "--stage", "39", "--json")
    assert proc.returncode == 0 and len(json.loads(proc.stdout)["results"]) == len(trace.ops)
    assert_user_error(run("trace", "random", "--seed", "1", "--host-page-size", "8192"), "--host-page-size")
    assert_user_error(run("trace", "random", "--seed", "1", "--accel", "xen"), "--accel")
    assert_user_error(run("trace", "random", "--seed", "1", "--ops", "0"), "--ops")
    assert_user_error(run("trace", "random", "--ops", "5"), "--seed")
    assert_user_error(run("trace", "random", "--seed", "1", "-o", str(tmp_path / "no" / "dir.json")),
                      "cannot write")


# ---------------------------------------------------------------- check
STATUSES = {"same", "diverges as registered", "registered difference not found"}


def test_check_one_rung_human_and_json(tmp_path):
    # in tmp_path: a new difference would be written to the current directory
    proc = run("check", "27", "--examples", "5", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    # rung 27's one register entry (xen-told-start) is replayed from its own trace and call first
    assert re.search(r"^\[1/1\] rung 27 \(26 -> 27\): .+ \(\d+ random traces and \d+ random API calls, "
                     r"after the register's 1 trace and 1 call; [\d.]+ s\)$", proc.stderr, re.MULTILINE)
    table = proc.stdout.splitlines()
    assert table[0].split()[:3] == ["rung", "status", "checked"]
    row = table[1]
    assert row.split()[0] == "27" and "5 random traces and 5 random API calls" in row
    assert any(status in row for status in STATUSES)
    proc = run("check", "5", "--examples", "5", "--json", cwd=tmp_path)
    assert proc.returncode == 0
    data = json.loads(proc.stdout)
    assert data["examples"] == 5 and data["new_difference"] is False and data["ok"] is True
    (r,) = data["rungs"]
    assert r["rung"] == 5 and r["status"] in STATUSES and r["new"] == []
    assert r["how"] == "5 random traces and 5 random API calls"
    assert "rung 05 (04 -> 05)" in proc.stderr


def test_check_new_difference_writes_a_replayable_trace(tmp_path, monkeypatch, capsys):
    # with an empty register every difference is new: rung 27's Xen fix must be reported
    monkeypatch.setattr(ladder, "load_register", list)
    monkeypatch.chdir(tmp_path)
    rc, out, err = inproc(capsys, "check", "27", "--examples", "20", "--level", "machine", "--json")
    assert rc == 1 and "rung 27 (26 -> 27): NEW DIFFERENCE" in err
    data = json.loads(out)
    (r,) = data["rungs"]
    assert r["status"] == "NEW DIFFERENCE" and data["new_difference"] is True
    files = r["files"]
    assert files and all(re.fullmatch(r"new-difference-rung27-machine-\d+\.json", f) for f in files)
    assert any("xen" in f["signature"] for f in r["new"])
    for f in files:
        rc, out, _ = inproc(capsys, "replay", f, "--all", "--json")
        assert rc == 0 and 27 in [c["rung"] for c in json.loads(out)["changes"]]
    # run again: the files of the first run are kept, the new ones take the next free numbers
    rc, out, _ = inproc(capsys, "check", "27", "--examples", "20", "--level", "machine")
    again = re.findall(r"reproducer: (new-difference-rung27-machine-\d+\.json)", out)
    assert rc == 1 and "NEW DIFFERENCE" in out and again and not set(again) & set(files)


def test_exercise_numbers_are_commits():
    for n in ("0", "40"):
        assert_user_error(run("exercise", n), f"unknown exercise {n}: exercises are 1 to 39")


def test_check_errors():
    assert_user_error(run("check"), "rung number")
    assert_user_error(run("check", "0"), "unknown rung 0")
    assert_user_error(run("check", "40"), "unknown rung 40")
    assert_user_error(run("check", "3", "--all"), "not both")
    assert_user_error(run("check", "3", "--profile", "quick"), "unknown profile")
    assert_user_error(run("check", "3", "--examples", "0"), "--examples")
    assert_user_error(run("check", "3", "--level", "bits"), "--level")


# ---------------------------------------------------------------- a stage that fails
def test_a_failing_stage_is_reported_in_one_line(tmp_path, monkeypatch, capsys):
    """Not a user error (exit 1), but still one line naming the stage and the op."""
    def boom(self, ram_addr, size):
        raise AssertionError("boom")

    monkeypatch.setattr(stage(4), "notdirty_mem_write", boom)      # stage 5 inherits it, 6 overrides it
    path = str(write(tmp_path, EXAMPLE_TRACE))
    rc, out, err = inproc(capsys, "replay", path, "--stage", "5")
    assert rc == 1 and out == ""
    assert err == "error: stage 5 failed at op 2 (tcg_write): AssertionError: boom\n"
    rc, out, err = inproc(capsys, "replay", path, "--all", "--json")
    assert rc == 0
    data = json.loads(out)
    assert [(c["rung"], c["path"]) for c in data["changes"]] == [(4, "error"), (6, "error")]
    assert [b["stages"] for b in data["behaviours"]] == [[0, 3], [4, 5], [6, 39]]
    assert data["behaviours"][1]["result"] == {"error": "failed at op 2 (tcg_write): AssertionError: boom"}
    rc, out, err = inproc(capsys, "replay", path, "--all")
    assert rc == 0 and "stages 04-05: error: failed at op 2 (tcg_write): AssertionError: boom" in out

    def silent(self, ram_addr, size):
        raise ZeroDivisionError                                         # no message: the type alone
    monkeypatch.setattr(stage(4), "notdirty_mem_write", silent)
    rc, out, err = inproc(capsys, "replay", path, "--stage", "5")
    assert rc == 1 and err == "error: stage 5 failed at op 2 (tcg_write): ZeroDivisionError\n"


def test_bench_subcommand_runs_a_tiny_configuration():
    import json as _json
    import subprocess
    import sys as _sys
    proc = subprocess.run([_sys.executable, "-m", "dirty_ladder", "bench", "--size", "2M", "--walk-size", "1M",
                           "--target-size", "4M", "--peak-size", "4M", "--no-targets",
                           "--stages", "0,38-39", "--quiet", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = _json.loads(proc.stdout)
    assert [r["stage"] for r in out["stages"]] == [0, 38, 39]
    assert out["reference"]["sync_ns_per_page"] > 0
    bad = subprocess.run([_sys.executable, "-m", "dirty_ladder", "bench", "--density", "101"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "Traceback" not in bad.stderr
