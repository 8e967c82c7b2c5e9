"""``check`` on a terminal and piped: rich draws the progress line and the
table on a terminal; piped, the output is the plain text it has always been
(the other command-line tests read it), and --json is unchanged."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARGS = ("check", "2", "--examples", "3", "--level", "machine")


def environment(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIRTY_LADDER_", "NO_COLOR", "TERM"))}
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(TERM="xterm-256color", COLUMNS="120", XDG_STATE_HOME=str(tmp_path / "state"))
    return env


def on_a_terminal(tmp_path: Path, *argv: str) -> tuple[int, str]:
    """The command with stdout and stderr on a pseudo-terminal of 120 columns:
    its exit status and all it wrote there."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "dirty_ladder", *argv], cwd=tmp_path, env=environment(tmp_path),
                            stdin=subprocess.DEVNULL, stdout=follower, stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], 120)
        if not ready:
            proc.kill()
            raise AssertionError("no output for 120 s")
        try:
            data = os.read(leader, 65536)
        except OSError:                         # the terminal closed: the command is done
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    return proc.wait(timeout=60), b"".join(chunks).decode("utf-8", "replace")


def test_check_on_a_terminal_is_drawn_by_rich(tmp_path):
    status, text = on_a_terminal(tmp_path, *ARGS)
    assert status == 0, text
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    assert "\x1b[" in text                                          # drawn, not plain
    assert re.search(r"^\s*rung\s+status\s+checked\s+register entries", plain, re.MULTILINE), plain
    assert re.search(r"─{4,}", plain), plain                        # the table's rule under its header
    assert re.search(r"^\s*2\s+diverges as registered\s+3 random traces\s+set-dirty-flags-void", plain,
                     re.MULTILINE), plain
    assert "[1/1] rung 02 (01 -> 02): diverges as registered" in plain
    assert "\033[K" not in text                                     # no hand-drawn line left


def test_check_piped_is_plain_text(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "dirty_ladder", *ARGS], cwd=tmp_path, env=environment(tmp_path),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert "\x1b[" not in proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == [
        "rung  status                  checked          register entries",
        "   2  diverges as registered  3 random traces  set-dirty-flags-void"]
