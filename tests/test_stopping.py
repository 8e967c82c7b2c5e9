"""Every run can be stopped, and a user's code is contained.

Ctrl-C is a real SIGINT sent to a real process group, as a terminal sends
it; the time to exit is measured.  A user's stage module runs in a child
process with a time limit: its prints go to a log, never into the verdict or
the JSON; SystemExit, os._exit, a crash or an endless loop is a failed run
that names what happened, in one line.  A truncated exhaustive run says so.
Each case was run on the code before the fix and seen red.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from stages import MODULES

ROOT = Path(__file__).resolve().parent.parent
STOP_WITHIN = 2.0          # seconds from Ctrl-C to exit: about a second, with room for a loaded machine


def environment(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIRTY_LADDER_")}
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    return env


def dirty_ladder(tmp_path: Path, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dirty_ladder", *argv], cwd=tmp_path, capture_output=True,
                          text=True, timeout=timeout, env=environment(tmp_path))


class Running:
    """A command in its own session (so that a signal can go to its whole
    process group, as Ctrl-C on a terminal does), its stderr read as it comes."""

    def __init__(self, tmp_path: Path, *argv: str):
        self.proc = subprocess.Popen([sys.executable, "-m", "dirty_ladder", *argv], cwd=tmp_path,
                                     env=environment(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, start_new_session=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.err: list[str] = []
        self._out: list[str] = []
        self._readers = [threading.Thread(target=self._read_err, daemon=True),
                         threading.Thread(target=self._read_out, daemon=True)]
        for reader in self._readers:
            reader.start()

    def _read_err(self) -> None:
        for line in self.proc.stderr:
            self.err.append(line)
            self.lines.put(line)

    def _read_out(self) -> None:
        self._out.append(self.proc.stdout.read())

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 300) -> list[str]:
        """The first ``count`` stderr lines matching ``pattern``."""
        found, deadline = [], time.monotonic() + timeout
        while len(found) < count:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.proc.kill()
                pytest.fail(f"no {count} lines matching {pattern!r} in {timeout} s: {''.join(self.err)[-2000:]}")
            if re.search(pattern, line):
                found.append(line)
        return found

    def interrupt(self, whole_group: bool = True, timeout: float = 60) -> float:
        """Send SIGINT (to the process group, or to the command alone); the
        seconds until it exits."""
        t0 = time.monotonic()
        if whole_group:
            os.killpg(self.proc.pid, signal.SIGINT)
        else:
            os.kill(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            pytest.fail(f"still running {timeout} s after SIGINT")
        seconds = time.monotonic() - t0
        for reader in self._readers:
            reader.join(10)
        return seconds

    @property
    def out(self) -> str:
        return "".join(self._out)

    def group_is_gone(self, within: float = 2.0) -> bool:
        """No process of the command's group is left (its workers were stopped)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.05)
        return False

    @property
    def stderr(self) -> str:
        return "".join(self.err)


def finished_rungs(stderr: str) -> list[int]:
    return sorted(int(m) for m in re.findall(r"^\[\d+/\d+\] rung (\d\d) ", stderr, re.MULTILINE))


def table_rungs(stdout: str) -> list[int]:
    return sorted(int(m) for m in re.findall(r"^\s*(\d+)  \S", stdout, re.MULTILINE))


# ------------------------------------------------------------------ Ctrl-C on check
@pytest.mark.parametrize("argv", [
    ("--exhaustive", "--jobs", "2"),
    ("--examples", "30", "--jobs", "2"),
    ("--examples", "30", "--jobs", "1"),
], ids=["exhaustive-jobs-2", "random-jobs-2", "random-jobs-1"])
def test_ctrl_c_stops_check_at_once_and_prints_the_rungs_finished(tmp_path, argv):
    run = Running(tmp_path, "check", "--all", *argv)
    run.wait_for(r"^\[\d+/39\] rung \d\d ", count=1)
    seconds = run.interrupt()
    assert run.proc.returncode == 130, run.stderr[-2000:]
    assert seconds < STOP_WITHIN, f"{seconds:.2f} s from SIGINT to exit"
    done = finished_rungs(run.stderr)
    assert 1 <= len(done) < 39 and table_rungs(run.out) == done, (run.out, run.stderr)
    assert re.search(rf"^interrupted: {len(done)} of 39 rungs checked", run.stderr, re.MULTILINE), run.stderr
    assert "Traceback" not in run.stderr
    assert run.group_is_gone(), "a worker outlived the command"


def test_ctrl_c_to_the_command_alone_stops_its_workers_too(tmp_path):
    """kill -INT PID reaches only the parent: it must stop the workers itself."""
    run = Running(tmp_path, "check", "--all", "--examples", "30", "--jobs", "2", "--json")
    run.wait_for(r"^\[\d+/39\] rung \d\d ", count=1)
    seconds = run.interrupt(whole_group=False)
    assert run.proc.returncode == 130 and seconds < STOP_WITHIN, (seconds, run.stderr[-2000:])
    data = json.loads(run.out)
    assert data["interrupted"] is True and data["ok"] is False
    assert [r["rung"] for r in data["rungs"]] == finished_rungs(run.stderr)
    assert run.group_is_gone(), "a worker outlived the command"


# ------------------------------------------------------------------ a user's stage, contained
def stage_file(tmp_path: Path, n: int, body: str = "", top: str = "", name: str | None = None) -> Path:
    """A stage module standing in for stage n: stage n-1's class, plus ``body``
    in the class and ``top`` at module level."""
    path = tmp_path / (name or f"my_stage_{n}.py")
    path.write_text(f"import os, signal, sys\n"
                    f"from stages import {MODULES[n - 1]} as parent\n"
                    f"{top}\n"
                    f"class Stage(parent.Stage):\n"
                    f"    STAGE = {n}\n"
                    f"{body}\n", encoding="utf-8")
    return path


def tiny_scope(tmp_path: Path) -> Path:
    """One block of one page, traces of one op: enough for rung 27's Xen call, in a second."""
    scope = (ROOT / "dirty_ladder" / "scopes" / "one-page.toml").read_text()
    path = tmp_path / "tiny.toml"
    path.write_text(scope.replace('name = "one-page"', 'name = "tiny"').replace("depth = 50", "depth = 1")
                    .replace('accel = ["tcg", "kvm"]', 'accel = ["tcg"]'))
    return path


LOOP_IN_A_METHOD = ("    def cpu_physical_memory_set_dirty_range(self, start, length):\n"
                    "        while True:\n"
                    "            pass\n")


def one_line_failure(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stdout[-1000:], proc.stderr[-1000:])
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.mark.parametrize("where", ["import", "method"])
def test_verify_of_an_endless_loop_stops_at_its_time_limit(tmp_path, where):
    path = stage_file(tmp_path, 27, top="while True:\n    pass\n" if where == "import" else "",
                      body="" if where == "import" else LOOP_IN_A_METHOD)
    t0 = time.monotonic()
    proc = dirty_ladder(tmp_path, "verify", str(path), "--timeout", "2", timeout=120)
    seconds = time.monotonic() - t0
    one_line_failure(proc, str(path), "2 s", "--timeout")
    assert seconds < 30, seconds


@pytest.mark.parametrize("code, needle", [
    ("raise SystemExit(0)", "SystemExit"),
    ("sys.exit(3)", "SystemExit"),
    ("os._exit(0)", "exit status 0"),
    ("os.kill(os.getpid(), signal.SIGSEGV)", "SIGSEGV"),
], ids=["SystemExit-0", "sys.exit-3", "os._exit-0", "crash"])
def test_verify_of_a_module_that_ends_the_process_fails_and_says_how(tmp_path, code, needle):
    path = stage_file(tmp_path, 27, top=code)
    proc = dirty_ladder(tmp_path, "verify", str(path), timeout=120)
    one_line_failure(proc, str(path), needle)
    state = tmp_path / "state" / "dirty-ladder" / "progress.json"
    assert not state.exists() or "27" not in json.loads(state.read_text())["exercises"]


def test_verify_of_a_stage_that_ends_the_process_in_a_method_fails(tmp_path):
    path = stage_file(tmp_path, 27, body="    def cpu_physical_memory_set_dirty_range(self, start, length):\n"
                                          "        os._exit(0)\n")
    proc = dirty_ladder(tmp_path, "verify", str(path), "--json", timeout=120)
    assert proc.returncode == 1
    data = json.loads(proc.stdout)
    assert data["ok"] is False and "exit status 0" in data["error"]


PRINTS = ("print('hello from import')\n", "    def cpu_physical_memory_set_dirty_range(self, start, length):\n"
                                          "        print('hello from the stage', file=sys.stderr)\n"
                                          "        print('and on stdout')\n"
                                          "        return super().cpu_physical_memory_set_dirty_range(start, length)\n")


def log_named(stderr: str) -> Path:
    m = re.search(r"its output is in (\S+)", stderr)
    assert m, stderr
    return Path(m.group(1))


def test_verify_json_of_a_printing_stage_is_valid_json_and_the_prints_go_to_a_log(tmp_path):
    path = stage_file(tmp_path, 27, top=PRINTS[0], body=PRINTS[1])
    proc = dirty_ladder(tmp_path, "verify", str(path), "--json", "--scope", str(tiny_scope(tmp_path)), timeout=600)
    assert proc.returncode == 1, proc.stderr          # stage 26's behaviour: not commit 27
    data = json.loads(proc.stdout)
    assert data["ok"] is False and "hello" not in proc.stdout
    log = log_named(proc.stderr)
    text = log.read_text()
    assert "hello from import" in text and "hello from the stage" in text and "and on stdout" in text
    assert data["log"] == str(log)


@pytest.mark.parametrize("argv", [
    ("check", "27", "--examples", "5", "--level", "machine", "--json"),
    ("replay", "TRACE", "--stage", "27", "--json"),
    ("replay", "TRACE", "--all", "--json"),
    ("diff", "27", "--json"),
], ids=["check", "replay", "replay-all", "diff"])
def test_stage_file_output_goes_to_a_log_not_into_the_json(tmp_path, argv):
    path = stage_file(tmp_path, 27, top=PRINTS[0], body=PRINTS[1])
    trace = tmp_path / "t.json"
    trace.write_text(json.dumps({"format": "dirty-trace/1", "config": {"xen": True},
                                 "ops": [{"op": "ram_alloc", "size": 65536},
                                         {"op": "dma_write", "addr": 0, "len": 8192}]}))
    argv = [str(trace) if a == "TRACE" else a for a in argv]
    proc = dirty_ladder(tmp_path, *argv, "--stage-file", str(path), timeout=300)
    assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, proc.stderr
    json.loads(proc.stdout)
    assert not {"hello from import", "and on stdout"} & set(proc.stdout.splitlines())   # (diff shows the source)
    assert "hello from import" in log_named(proc.stderr).read_text()


@pytest.mark.parametrize("argv", [
    ("check", "27", "--examples", "5", "--level", "machine"),
    ("replay", "TRACE", "--stage", "27"),
    ("diff", "27"),
], ids=["check", "replay", "diff"])
def test_stage_file_that_loops_stops_at_its_time_limit(tmp_path, argv):
    path = stage_file(tmp_path, 27, body=LOOP_IN_A_METHOD, top="" if argv[0] != "diff" else "while 1: pass\n")
    trace = tmp_path / "t.json"
    trace.write_text(json.dumps({"format": "dirty-trace/1", "ops": [{"op": "ram_alloc", "size": 65536},
                                                                    {"op": "dma_write", "addr": 0, "len": 8192}]}))
    argv = [str(trace) if a == "TRACE" else a for a in argv]
    t0 = time.monotonic()
    proc = dirty_ladder(tmp_path, *argv, "--stage-file", str(path), "--timeout", "2", timeout=120)
    one_line_failure(proc, "2 s", "--timeout")
    assert time.monotonic() - t0 < 30


@pytest.mark.parametrize("top, needle", [
    ("import dirty_ladder.compare as c\nc.follow = lambda *a, **k: {}\n", "dirty_ladder.compare.follow"),
    (f"from stages import {MODULES[27]} as real\n"
     f"real.Stage.cpu_physical_memory_set_dirty_range = parent.Stage.cpu_physical_memory_set_dirty_range\n",
     f"stages.{MODULES[27]}.Stage.cpu_physical_memory_set_dirty_range"),
], ids=["checker", "real-stage"])
def test_a_module_that_changes_the_ladder_cannot_pass(tmp_path, top, needle):
    path = stage_file(tmp_path, 27, top=top)
    proc = dirty_ladder(tmp_path, "verify", str(path), timeout=300)
    one_line_failure(proc, needle)
    assert "[ok]" not in proc.stdout


def test_ctrl_c_stops_verify_and_its_child(tmp_path):
    path = stage_file(tmp_path, 27, body=LOOP_IN_A_METHOD)
    run = Running(tmp_path, "verify", str(path))
    time.sleep(3)
    seconds = run.interrupt()
    assert run.proc.returncode == 130 and seconds < STOP_WITHIN, (seconds, run.stderr)
    assert run.group_is_gone(), "the child running the user's stage outlived the command"


# ------------------------------------------------------------------ a truncated exhaustive run
def test_a_truncated_exhaustive_run_says_so_and_is_never_closed(tmp_path):
    scope = (ROOT / "dirty_ladder" / "scopes" / "one-page.toml").read_text()
    scope = scope.replace('name = "one-page"', 'name = "cut"') + "\nmax_states = 40\n"
    (tmp_path / "cut.toml").write_text(scope)
    proc = dirty_ladder(tmp_path, "check", "27", "--exhaustive", "--scope", "cut.toml", "--level", "machine")
    assert proc.returncode == 0, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if re.match(r"\s*27\s", line))
    assert "stopped at 40 states (max_states)" in row, row
    assert "bounded" not in row and "closed" not in row
    proc = dirty_ladder(tmp_path, "check", "27", "--exhaustive", "--scope", "cut.toml", "--level", "machine",
                        "--json")
    (run,) = json.loads(proc.stdout)["rungs"][0]["runs"]
    assert run["truncated"] is True and run["closed"] is False
    assert run["verdict"].startswith("stopped at 40 states (max_states)")


def test_a_module_that_changes_the_ladder_while_it_runs_cannot_pass(tmp_path):
    # the change comes from a method the check calls, after the module loaded unchanged
    path = stage_file(tmp_path, 27, body=(
        "    def cpu_physical_memory_set_dirty_range(self, start, length):\n"
        f"        from stages import {MODULES[26]} as older\n"
        "        older.Stage.cpu_physical_memory_get_dirty_flag = lambda *a: 0\n"
        "        return super().cpu_physical_memory_set_dirty_range(start, length)\n"))
    proc = dirty_ladder(tmp_path, "check", "27", "--examples", "5", "--level", "machine", "--stage-file", str(path))
    one_line_failure(proc, f"stages.{MODULES[26]}.Stage.cpu_physical_memory_get_dirty_flag")
