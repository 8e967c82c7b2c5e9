"""The documentation a user reads agrees with the code and with CI."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_setup_lines() -> list[str]:
    """The command lines of the first ``sh`` block of README.md's "Set up and run"."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Set up and run", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block, "README.md's set-up has no sh block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_ci_runs_exactly_the_readme_setup():
    lines = readme_setup_lines()
    assert any("pip install -e '.[test]'" in line for line in lines), lines      # editable: edits show
    ci = [line for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
          if line.strip() and not line.startswith("#")]
    assert ci[-len(lines):] == lines, (ci, lines)
    assert all(not line.startswith(("python", "pip", ".")) for line in ci[:-len(lines)]), ci
