"""What a new user runs into first: output that goes away (``|
head``, ``> /dev/full``), JSON that names a key twice, huge guests, long
replays.  Each test runs the real command in a subprocess where the
behaviour depends on real pipes and files."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from stages import stage
from dirty_ladder import invariants, register, rungs
from dirty_ladder.trace import TraceError, decode, loads

ROOT = Path(__file__).resolve().parent.parent


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", *args]


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def with_reader_gone(*args: str) -> subprocess.CompletedProcess:
    """Run a command whose stdout reader has already gone, as after ``| head -1``
    once head has its line: every write meets a closed pipe."""
    proc = subprocess.Popen(command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                            env=environment())
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    return subprocess.CompletedProcess(args, proc.wait(timeout=120), "", err)


def into_full_disk(*args: str) -> subprocess.CompletedProcess:
    with open("/dev/full", "w") as full:
        return subprocess.run(command(*args), stdout=full, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                              env=environment(), timeout=120)


BENCH_TINY = ("--size", "2M", "--walk-size", "1M", "--target-size", "4M", "--peak-size", "4M", "--no-targets",
              "--stages", "0,39", "--reps", "1", "--quiet")
PIPED = {
    "list": ("dirty_ladder", "list"),
    "show-19": ("dirty_ladder", "show", "19"),
    "diff-0-39": ("dirty_ladder", "diff", "0", "39"),
    "help": ("dirty_ladder", "--help"),
    "invariants": ("dirty_ladder.invariants", "--examples", "3", "--stages", "0-1"),
    "bench-module": ("dirty_ladder.bench", *BENCH_TINY),
    "bench-subcommand": ("dirty_ladder", "bench", *BENCH_TINY),
}


@pytest.mark.parametrize("args", PIPED.values(), ids=PIPED.keys())
def test_reader_going_away_ends_quietly(args):
    proc = with_reader_gone(*args)
    assert proc.stderr == "" and proc.returncode == 0, proc


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("args", PIPED.values(), ids=PIPED.keys())
def test_full_disk_is_one_line_and_status_1(args):
    proc = into_full_disk(*args)
    assert proc.returncode == 1, proc
    assert proc.stderr == "error: cannot write the output: No space left on device\n", proc.stderr


@pytest.mark.parametrize("args", [("dirty_ladder.invariants", "--stages", "x"),
                                  ("dirty_ladder.invariants", "--stages", "50"),
                                  ("dirty_ladder.bench", "--json-file", "/nonexistent/dir/b.json", *BENCH_TINY)],
                         ids=["invariants-stages-x", "invariants-stage-50", "bench-json-file"])
def test_module_commands_refuse_bad_options_without_a_traceback(args):
    proc = subprocess.run(command(*args), capture_output=True, text=True, cwd=ROOT, env=environment(), timeout=120)
    assert proc.returncode == 2 and proc.stdout == "", proc
    assert "Traceback" not in proc.stderr and proc.stderr.splitlines()[-1].count(": ") >= 1, proc.stderr


# ---------------------------------------------------------------- JSON objects naming a key twice
def test_decode_refuses_a_duplicate_key_at_any_depth():
    assert decode('{"a": 1, "b": [{"c": 2}]}') == {"a": 1, "b": [{"c": 2}]}
    for text, key in [('{"a": 1, "a": 1}', "a"), ('[{"x": {"y": 1, "y": 2}}]', "y")]:
        with pytest.raises(TraceError, match=f"duplicate key '{key}'") as info:
            decode(text)
        assert "\n" not in str(info.value)
    with pytest.raises(TraceError, match="duplicate key 'addr'"):
        loads('{"format": "dirty-trace/1", "ops": [{"op": "ram_alloc", "size": 4096}, '
              '{"op": "tb_translate", "addr": 0, "addr": 4096}]}')


@pytest.mark.parametrize("module", [register, invariants], ids=["divergences", "invariants"])
def test_register_traces_are_read_with_the_same_refusal(monkeypatch, module):
    """The divergence and invariant registers' traces go through decode too."""
    seen = []

    def spy(text):
        seen.append(text)
        return decode(text)

    monkeypatch.setattr(module, "decode", spy)
    entries = module.load_register()
    traces = [t for e in entries for t in getattr(e, "traces", [e.trace]) if t is not None]   # more_traces too
    assert traces and sum('"dirty-trace/1"' in text for text in seen) == len(traces)


# ---------------------------------------------------------------- page walks: the table, the refusal
def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command("dirty_ladder", *args), capture_output=True, text=True, cwd=ROOT,
                          env={**environment(), **(env or {})}, timeout=120)


def write_trace(tmp_path: Path, ops: list[dict], config: dict | None = None, name: str = "t.json") -> Path:
    import json
    path = tmp_path / name
    path.write_text(json.dumps({"format": "dirty-trace/1", "config": config or {}, "ops": ops}))
    return path


def lines_run(n: int, pages: int, name: str) -> int:
    """Lines of Python executed by stage ``n`` (and the machine) for one op
    ``name`` over a block of ``pages`` pages."""
    from stages import stage
    from dirty_ladder.machine import Machine
    machine = Machine(stage(n))
    size = pages * 4096
    op = {"ram_alloc": {"size": size}, "set_dirty": {"addr": 0, "len": size},
          "get_dirty": {"addr": 0, "len": size, "client": "vga"},
          "test_and_clear_dirty": {"addr": 0, "len": size, "client": "vga"},
          "reset_dirty": {"addr": 0, "len": size, "client": "vga"},
          "migration_setup": {}, "migration_sync": {}, "kvm_sync": {},
          "migration_next": {"block": 0, "start": 0}}[name]
    if name != "ram_alloc":
        machine.run_op({"op": "ram_alloc", "size": size})
    if name == "get_dirty":             # clean, so that it cannot stop at the first page
        machine.run_op({"op": "reset_dirty", "addr": 0, "len": size, "client": "vga"})
    if name in ("migration_sync", "migration_next"):
        machine.run_op({"op": "migration_setup"})
    count = [0]

    def tracer(frame, event, arg):
        if event == "line":
            count[0] += 1
        return tracer

    sys.settrace(tracer)
    try:
        machine.run_op({"op": name, **op})
    finally:
        sys.settrace(None)
    return count[0]


@pytest.mark.parametrize("name", ["ram_alloc", "set_dirty", "get_dirty", "test_and_clear_dirty", "reset_dirty",
                                  "migration_setup", "migration_sync"])
def test_the_walk_table_is_what_the_stages_do(name):
    """An op walks page by page at stage n (at least a line per page more on
    a 4-times bigger block) exactly on the stages below PAGE_WALKS's bound."""
    from stages import LAST
    from dirty_ladder.walks import PAGE_WALKS
    until = PAGE_WALKS[name][0]
    walking = [n for n in range(LAST + 1) if lines_run(n, 256, name) - lines_run(n, 64, name) >= 192]
    assert walking == list(range(until)), (name, walking)


@pytest.mark.parametrize("name", ["kvm_sync", "migration_next"])
def test_ops_outside_the_table_do_not_walk(name):
    from stages import LAST
    from dirty_ladder.walks import PAGE_WALKS
    assert name not in PAGE_WALKS
    for n in (0, 19, 36, LAST):
        assert lines_run(n, 256, name) - lines_run(n, 64, name) < 192, (name, n)


TIB = 1 << 40


def test_a_huge_guest_is_refused_before_anything_runs(tmp_path):
    path = write_trace(tmp_path, [{"op": "ram_alloc", "size": TIB}])
    proc = run_cli("replay", str(path), "--all")
    assert proc.returncode == 2 and proc.stdout == "", proc
    (line,) = proc.stderr.splitlines()
    assert line.startswith("error: ") and "Traceback" not in proc.stderr
    for needle in ("stages 0-39", "268,435,456 pages", "op 0, ram_alloc", "limit of 300,000,000",
                   "--max-pages N", "DIRTY_LADDER_MAX_PAGES=N"):
        assert needle in line, (needle, line)
    # one stage, a lower limit: the stage from which the walk is gone is named
    proc = run_cli("replay", str(path), "--stage", "3", "--max-pages", "1000")
    assert proc.returncode == 2 and "stage 3 would walk" in proc.stderr
    assert "or replay on stage 27 or later" in proc.stderr


def test_the_limit_can_be_raised_and_lowered(tmp_path):
    ops = [{"op": "ram_alloc", "size": 64 * 4096}, {"op": "migration_setup"}, {"op": "migration_sync"}]
    path = str(write_trace(tmp_path, ops))
    # stage 0 walks 64 pages for the alloc and 64 for each sync: 192
    assert run_cli("replay", path, "--stage", "0", "--max-pages", "192").returncode == 0
    proc = run_cli("replay", path, "--stage", "0", "--max-pages", "191")
    assert proc.returncode == 2 and "would walk 192 pages" in proc.stderr
    proc = run_cli("replay", path, "--stage", "0", env={"DIRTY_LADDER_MAX_PAGES": "191"})
    assert proc.returncode == 2 and "limit of 191" in proc.stderr
    assert run_cli("replay", path, "--stage", "0", env={"DIRTY_LADDER_MAX_PAGES": "192"}).returncode == 0
    # the option wins over the environment; stage 39 walks nothing
    assert run_cli("replay", path, "--stage", "0", "--max-pages", "200",
                   env={"DIRTY_LADDER_MAX_PAGES": "1"}).returncode == 0
    assert run_cli("replay", path, "--stage", "39", "--max-pages", "1").returncode == 0
    for bad in ("lots", "-5", "1e9"):
        proc = run_cli("replay", path, "--stage", "0", env={"DIRTY_LADDER_MAX_PAGES": bad})
        assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc
        assert "DIRTY_LADDER_MAX_PAGES must be a whole number" in proc.stderr
    proc = run_cli("replay", path, "--stage", "0", "--max-pages", "0")
    assert proc.returncode == 2 and "--max-pages" in proc.stderr


def test_pages_walked_counts_ranges_ram_and_freed_blocks():
    from dirty_ladder.walks import pages_walked
    trace = loads('{"format": "dirty-trace/1", "ops": ['
                  '{"op": "ram_alloc", "size": 40960}, {"op": "ram_alloc", "size": 8192},'
                  '{"op": "get_dirty", "addr": 4095, "len": 2, "client": "vga"},'   # pages 0 and 1
                  '{"op": "ram_free", "offset": 40960}, {"op": "ram_alloc", "size": 4096},'
                  '{"op": "migration_setup"}]}')
    # allocs 10 + 2 + 1; get_dirty 2 (below 26); setup: RAM ends at page 11 (below 39)
    assert pages_walked(trace, [0]) == 13 + 2 + 11
    assert pages_walked(trace, [26]) == 13 + 11
    assert pages_walked(trace, [27]) == 11
    assert pages_walked(trace, [39]) == 0
    assert pages_walked(trace, [0, 39]) == pages_walked(trace, [0])


# ---------------------------------------------------------------- progress
def test_progress_on_a_log_once_the_replay_is_long(tmp_path, monkeypatch, capsys):
    import json
    from dirty_ladder import cli, progress
    monkeypatch.setattr(progress, "LOG_AFTER", 0.0)        # "long" from the start
    monkeypatch.setattr(progress, "LOG_EVERY", 0.05)
    path = write_trace(tmp_path, [{"op": "ram_alloc", "size": 4096 * 64}] +
                       [{"op": "set_dirty", "addr": 0, "len": 4096 * 64}] * 30)
    assert cli.main(["replay", str(path), "--all", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["ops"] == 31              # stdout: the JSON alone
    lines = captured.err.splitlines()
    assert lines and "\r" not in captured.err                 # not a terminal: whole lines
    for line in lines:
        assert re.fullmatch(r"replay: (starting|stage \d\d \(\d+/40\), op \d+/31 \((ram_alloc|set_dirty)\)),"
                            r" \d+ s", line), line


def test_no_progress_on_a_log_for_a_short_replay(tmp_path):
    proc = run_cli("replay", str(write_trace(tmp_path, [{"op": "ram_alloc", "size": 4096}])), "--all", "--json")
    assert proc.returncode == 0 and proc.stderr == ""


class Terminal:
    def __init__(self):
        self.text = ""

    def isatty(self):
        return True

    def write(self, text):
        self.text += text

    def flush(self):
        pass


def test_progress_on_a_terminal_is_one_line_rewritten_then_erased(monkeypatch):
    from dirty_ladder import progress
    monkeypatch.setattr(progress, "TTY_AFTER", 0.0)
    terminal = Terminal()
    ops = [{"op": "kvm_sync"}] * 3
    with progress.ReplayProgress(ops, [5, 6], stream=terminal) as p:
        p.at_stage(5)
        p.at_op(2)
        assert p.line(61.4) == "replay: stage 05 (1/2), op 3/3 (kvm_sync), 61 s"
    assert terminal.text.startswith("\rreplay: ") and terminal.text.endswith("\r\033[K")
    assert "\n" not in terminal.text


# ---------------------------------------------------------------- which register entry explains a change
def first_change(rung: int, trace) -> str:
    from stages import stage
    from dirty_ladder.machine import first_difference, replay
    diff = first_difference(replay(stage(rung - 1), trace), replay(stage(rung), trace))
    assert diff is not None
    return diff[0]


MACHINE_ENTRIES = [e for e in rungs.load_register() if e.trace and any(s.startswith("machine:")
                                                                         for s in e.signatures)]


@pytest.mark.parametrize("entry", MACHINE_ENTRIES, ids=lambda e: e.id)
def test_each_entry_explains_the_change_of_its_own_trace(entry):
    from dirty_ladder.trace import validate
    trace = validate(entry.trace)
    register = rungs.load_register()
    assert entry.id in [e.id for e in rungs.explain_change(entry.rung, trace, register)]
    # the register of another rung, or no register at all, does not explain it
    assert entry.id not in [e.id for e in rungs.explain_change(entry.rung - 1, trace, register) or []]
    assert rungs.explain_change(entry.rung, trace, []) is None


def test_an_unregistered_change_is_not_explained(monkeypatch):
    from dirty_ladder.trace import validate
    ops = [{"op": "ram_alloc", "size": 4096}]
    plain = validate({"format": "dirty-trace/1", "config": {"xen": True}, "ops": ops})
    more = validate({"format": "dirty-trace/1", "config": {"xen": True, "accel": "kvm", "host_page_size": 65536},
                     "ops": ops})
    register = rungs.load_register()
    for trace in (plain, more):
        assert [e.id for e in rungs.explain_change(27, trace, register)] == ["xen-told-start"]
    trace = validate({"format": "dirty-trace/1", "config": {"xen": True, "accel": "kvm"},
                      "ops": ops + [{"op": "kvm_sync"}]})
    assert [e.id for e in rungs.explain_change(37, trace, register)] == ["lebitmap-xen-pages"]
    # a second mistake at the same place: stage 27 telling Xen one byte more
    real = stage(27).cpu_physical_memory_set_dirty_range

    def one_more(self, start, length):
        real(self, start, length)
        self.machine.xen_log[-1][1] += 1
    monkeypatch.setattr(stage(27), "cpu_physical_memory_set_dirty_range", one_more)
    assert rungs.explain_change(27, plain, register) is None


def test_replay_all_names_the_entry_or_says_it_is_not_there(tmp_path, monkeypatch, capsys):
    import json
    from dirty_ladder import cli
    path = str(write_trace(tmp_path, [{"op": "ram_alloc", "size": 8192},
                                      {"op": "reset_dirty", "addr": 100, "len": 0, "client": "vga"},
                                      {"op": "ram_alloc", "size": 4096}], {"xen": True}))
    assert cli.main(["replay", path, "--all"]) == 0
    out = capsys.readouterr().out
    assert "the observables change at 2 rungs:" in out
    assert re.search(r"^  rung 27 .*\n    register: xen-told-start \(fix\): ", out, re.MULTILINE), out
    assert re.search(r"^  rung 30 .*\n    register: zero-length-reset \(benign\): ", out, re.MULTILINE), out
    assert cli.main(["replay", path, "--all", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(c["rung"], c["explained_by"]) for c in data["changes"]] == [(27, ["xen-told-start"]),
                                                                           (30, ["zero-length-reset"])]
    monkeypatch.setattr(register, "load_register", list)
    assert cli.main(["replay", path, "--all"]) == 0
    out = capsys.readouterr().out
    assert out.count("    not in the register") == 2 and "register:" not in out


# ---------------------------------------------------------------- replay --summary
def test_summary_counts_results_per_op_and_shortens_the_state(tmp_path, capsys):
    import json
    from dirty_ladder import cli
    from dirty_ladder.generate import random_trace
    from dirty_ladder.machine import replay
    from stages import stage
    trace = random_trace(11, 300)
    path = tmp_path / "r.json"
    path.write_text(json.dumps(trace.as_dict()))
    full = replay(stage(39), trace)
    assert cli.main(["replay", str(path), "--stage", "39", "--summary", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["ops"] == 300 and summary["stage"] == 39
    by_op = summary["results_by_op"]
    assert sum(e["count"] for e in by_op.values()) == 300
    for name, entry in by_op.items():
        got = [json.dumps(r) for op, r in zip(trace.ops, full["results"]) if op["op"] == name]
        assert entry["count"] == len(got) and entry["results"] == {v: got.count(v) for v in set(got)}
    state = full["state"]
    assert summary["state"]["dirty"]["vga"] == {"pages": sum(b - a for a, b in state["dirty"]["vga"]),
                                                "ranges": len(state["dirty"]["vga"])}
    assert summary["state"]["blocks"] == {"blocks": len(state["blocks"]),
                                          "bytes": sum(n for _, n in state["blocks"])}
    assert summary["state"]["xen"] == {"calls": len(state["xen"])}
    assert cli.main(["replay", str(path), "--stage", "39", "--summary"]) == 0
    text = capsys.readouterr().out
    assert len(text.splitlines()) < 40 and "results by op" in text and "state in short:" in text
    for name, entry in by_op.items():
        assert re.search(rf"^  {name} +{entry['count']:,}: ", text, re.MULTILINE), name
    assert cli.main(["replay", str(path), "--all", "--summary", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert all(set(b["result"]) in ({"ops", "results_by_op", "state"}, {"error"}) for b in data["behaviours"])


# ---- an installed (not editable) copy -----------------------------------------------

def test_the_build_ships_the_changelog_and_the_bench(tmp_path):
    # `pip install .` copies the packages into site-packages, away from the
    # checkout's CHANGELOG.md and docs/bench.json; setup.py's build step puts
    # a copy of each in dirty_ladder/data/, where model.shipped_file finds them.
    pytest.importorskip("setuptools", reason="the build step needs setuptools in this environment")
    import shutil
    source = tmp_path / "src"
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "CHANGELOG.md", "docs/bench.json"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, source / name)
    for package in ("stages", "dirty_ladder"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    # the step of the wheel build that lays out the package (pip's build of
    # a wheel runs it; calling it alone needs no `wheel` package)
    build = tmp_path / "build"
    run = subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(build)],
                         capture_output=True, text=True, cwd=source)
    assert run.returncode == 0, run.stderr
    for name, shipped in (("CHANGELOG.md", "CHANGELOG.md"), ("docs/bench.json", "bench.json")):
        assert (build / "dirty_ladder" / "data" / shipped).read_bytes() == (ROOT / name).read_bytes(), name
    assert (build / "dirty_ladder" / "data" / "conformance.jsonl").is_file()
    for package in ("dirty_ladder/cli", "dirty_ladder/bench"):          # subpackages pyproject.toml must list
        assert (build / package / "__init__.py").is_file() and (build / package / "__main__.py").is_file(), package
    assert not (source / "dirty_ladder" / "data" / "CHANGELOG.md").exists()     # the source tree is left alone


def test_an_installed_copy_reads_the_shipped_files(tmp_path, monkeypatch):
    # Without a checkout around the package (no pyproject.toml above it), the
    # changelog and the bench come from dirty_ladder/data/; in a checkout,
    # from the checkout, even when a stale copy sits in data/.
    from dirty_ladder import model
    site = tmp_path / "site-packages"
    data = site / "dirty_ladder" / "data"
    data.mkdir(parents=True)
    (data / "CHANGELOG.md").write_text("# Changelog\n\n## Stage 07: shipped\n", encoding="utf-8")
    (data / "bench.json").write_text('{"stages": []}', encoding="utf-8")
    monkeypatch.setattr(model, "REPO", site)
    monkeypatch.setattr(model, "DATA", data)
    monkeypatch.delenv("DIRTY_LADDER_BENCH", raising=False)
    assert model.changelog_entries() == {7: "## Stage 07: shipped\n"}
    assert model.load_bench() == {"stages": []}
    (site / "pyproject.toml").write_text("", encoding="utf-8")
    assert model.changelog_entries() == {}
    assert model.load_bench() is None
