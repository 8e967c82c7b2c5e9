"""What a new user runs into first (issue 11): output that goes away (``|
head``, ``> /dev/full``), JSON that names a key twice, huge guests, long
replays.  Each test runs the real command in a subprocess where the
behaviour depends on real pipes and files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dirty_ladder import invariants, rungs
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


@pytest.mark.parametrize("module", [rungs, invariants], ids=["divergences", "invariants"])
def test_register_traces_are_read_with_the_same_refusal(monkeypatch, module):
    """The divergence and invariant registers' traces go through decode too."""
    seen = []

    def spy(text):
        seen.append(text)
        return decode(text)

    monkeypatch.setattr(module, "decode", spy)
    entries = module.load_register()
    traces = [e.trace for e in entries if e.trace is not None]
    assert traces and sum('"dirty-trace/1"' in text for text in seen) == len(traces)
