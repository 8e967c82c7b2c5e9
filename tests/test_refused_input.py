"""Numbers and the environment are refused as everywhere else: one line
and exit status 2, never a traceback, never a run that goes on with a
value that makes no sense.  And the README's command
reference matches what ``--help`` offers.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIRTY_LADDER_")}
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra)
    return env


def python_m(*argv: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *argv], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env=environment(**env))


def one_line(proc: subprocess.CompletedProcess, *needles: str, status: int = 2) -> str:
    assert proc.returncode == status, (proc.returncode, proc.stdout[-1500:], proc.stderr[-1500:])
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# ------------------------------------------------------------------ invariants and bench as modules
@pytest.mark.parametrize("argv, needle", [
    (("--examples", "-1"), "--examples"),
    (("--examples", "0"), "--examples"),
    (("--examples", "many"), "--examples"),
    (("--seed", "x"), "--seed"),
    (("--stages", "99"), "--stages"),
], ids=["examples-negative", "examples-0", "examples-word", "seed-word", "stages-99"])
def test_invariants_refuses_bad_numbers_in_one_line(argv, needle):
    one_line(python_m("dirty_ladder.invariants", *argv, "--stages", "0") if argv[0] != "--stages"
             else python_m("dirty_ladder.invariants", *argv), needle)


def test_bench_module_refuses_in_one_line():
    one_line(python_m("dirty_ladder.bench", "--density", "101"), "--density")


# ------------------------------------------------------------------ the environment under pytest
@pytest.mark.parametrize("environ, profile, examples", [
    ({}, "ci", None), ({"DIRTY_LADDER_PROFILE": ""}, "ci", None), ({"DIRTY_LADDER_PROFILE": "deep"}, "deep", None),
    ({"DIRTY_LADDER_EXAMPLES": "7"}, "ci", 7), ({"DIRTY_LADDER_EXAMPLES": ""}, "ci", None),
])
def test_the_environment_as_read(environ, profile, examples):
    from dirty_ladder.rungs import environment_profile
    assert environment_profile(environ) == (profile, examples)


@pytest.mark.parametrize("environ", [
    {"DIRTY_LADDER_PROFILE": "quick"}, {"DIRTY_LADDER_PROFILE": "Deep"}, {"DIRTY_LADDER_PROFILE": " ci"},
    {"DIRTY_LADDER_EXAMPLES": "many"}, {"DIRTY_LADDER_EXAMPLES": "0"}, {"DIRTY_LADDER_EXAMPLES": "-5"},
    {"DIRTY_LADDER_EXAMPLES": "1.5"}, {"DIRTY_LADDER_EXAMPLES": "1e3"},
])
def test_a_bad_environment_is_a_one_line_value_error(environ):
    from dirty_ladder.rungs import environment_profile
    with pytest.raises(ValueError) as info:
        environment_profile(environ)
    (variable, value), = environ.items()
    assert str(info.value).startswith(f"{variable}={value!r}: ") and "\n" not in str(info.value)


@pytest.mark.parametrize("variable, value", [
    ("DIRTY_LADDER_PROFILE", "quick"),
    ("DIRTY_LADDER_EXAMPLES", "many"),
    ("DIRTY_LADDER_EXAMPLES", "0"),
    ("DIRTY_LADDER_SEED", "x"),
], ids=["profile-unknown", "examples-word", "examples-0", "seed-word"])
def test_a_bad_environment_is_one_line_under_pytest(variable, value):
    proc = python_m("pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests/test_generate.py",
                    **{variable: value})
    assert proc.returncode == 4, (proc.returncode, proc.stdout[-1500:], proc.stderr[-1500:])   # usage error
    text = proc.stdout + proc.stderr
    assert "Traceback" not in text and "ImportError" not in text, text
    errors = [line for line in text.splitlines() if line.strip()]
    assert len(errors) == 1 and variable in errors[0], text


# ------------------------------------------------------------------ the environment on the command line
def check_json(*argv: str, **env: str) -> dict:
    import json
    proc = python_m("dirty_ladder", "check", "2", "--level", "machine", "--json", *argv, **env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_check_honours_the_environment_and_its_options_win():
    data = check_json(DIRTY_LADDER_EXAMPLES="3")
    assert data["examples"] == 3
    assert check_json("--examples", "4", DIRTY_LADDER_EXAMPLES="3")["examples"] == 4
    data = check_json(DIRTY_LADDER_PROFILE="deep", DIRTY_LADDER_EXAMPLES="3")
    assert data["examples"] == 3
    assert check_json("--profile", "ci", "--examples", "2", DIRTY_LADDER_PROFILE="deep")["examples"] == 2
    # set but empty is unset, as for every variable of the ladder
    assert check_json("--examples", "2", DIRTY_LADDER_PROFILE="", DIRTY_LADDER_EXAMPLES="")["examples"] == 2


@pytest.mark.parametrize("variable, value", [
    ("DIRTY_LADDER_PROFILE", "quick"), ("DIRTY_LADDER_EXAMPLES", "0"), ("DIRTY_LADDER_EXAMPLES", "lots")])
def test_check_refuses_a_bad_environment_in_one_line(variable, value):
    one_line(python_m("dirty_ladder", "check", "2", **{variable: value}), variable, repr(value))


def test_version():
    from importlib.metadata import version
    proc = python_m("dirty_ladder", "--version")
    assert proc.returncode == 0 and proc.stdout == f"dirty-ladder {version('dirty-ladder')}\n", proc


# ------------------------------------------------------------------ the README's command reference
def readme_commands() -> list[str]:
    """Every ``dirty-ladder ...`` command of README.md's sh blocks, as written
    (comments, ``&&`` chains, pipes and redirections taken apart)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", readme, re.DOTALL):
        for line in block.splitlines():
            line = line.split("#", 1)[0]
            for part in re.split(r"&&|\|", line):
                part = part.split(">", 1)[0].strip()
                if part.startswith("dirty-ladder "):
                    commands.append(part)
    return commands


def option_strings(parser) -> set[str]:
    import argparse
    found = set()
    for action in parser._actions:
        found |= {s for s in action.option_strings if s.startswith("--")}
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= option_strings(sub)
    return found


OTHER_PROGRAMS = ("pytest", "pip ", "tools/", "--randomly-seed")    # README's options for these are theirs


def readme_options(readme: str) -> set[str]:
    """The ``--options`` README names for dirty-ladder: every one outside a
    code span or line that runs another program (pytest, pip, tools/)."""
    found = set()
    spans = re.findall(r"`[^`\n]+`|^.*$", readme, re.MULTILINE)
    for span in spans:
        if any(p in span for p in OTHER_PROGRAMS) and "dirty-ladder" not in span:
            continue
        found |= set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", span))
    return found


def test_readme_command_reference_matches_the_parser():
    from dirty_ladder import cli
    from dirty_ladder.cli import COMMANDS
    parser = cli.build_parser()
    commands = readme_commands()
    assert len(commands) > 20
    for command in commands:
        words = shlex.split(command)[1:]
        try:
            parser.parse_args(words)
        except SystemExit as exc:               # --help, --version: printed, status 0
            assert exc.code == 0, f"README's `{command}` is refused by the parser"
        except cli.common.UserError as exc:
            pytest.fail(f"README's `{command}` is refused by the parser: {exc}")
    named = {shlex.split(c)[1] for c in commands}
    assert set(COMMANDS) <= named, f"commands --help lists and README's reference leaves out: " \
                                   f"{set(COMMANDS) - named}"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    options = option_strings(parser)
    for option in sorted(readme_options(readme)):
        assert option in options, f"README names {option}, which no command of --help has"
    for option in ("--force", "--out-dir", "--timeout", "--version"):
        assert option in readme, f"README does not document {option}"
