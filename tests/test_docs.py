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


# ---------------------------------------------------------------- docs/trace-format.md
DOC = ROOT / "docs" / "trace-format.md"


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def table_rows(text: str) -> dict[str, list[str]]:
    """Rows of every Markdown table whose first cell is one `name`: name -> the cells."""
    rows = {}
    for line in text.splitlines():
        m = re.match(r"\|\s*`([^`]+)`\s*\|(.*)\|\s*$", line)
        if m:
            rows[m.group(1)] = [cell.strip() for cell in m.group(2).split("|")]
    return rows


def json_blocks(text: str) -> list:
    import json
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, re.DOTALL)]


def test_every_op_has_a_row_with_its_fields():
    from dirty_ladder.trace import OPS
    rows = table_rows(doc_text())
    for name, fields in OPS.items():
        assert name in rows, f"op {name} is not in docs/trace-format.md's table of ops"
        documented = re.findall(r"`([^`]+)`", rows[name][0])
        assert documented == list(fields), (name, rows[name][0])
        assert rows[name][1] and rows[name][2], f"op {name}: no result or no description"


def test_every_config_key_has_a_row_with_its_default():
    import json
    from dirty_ladder.trace import DEFAULT_CONFIG
    rows = table_rows(doc_text())
    for key, default in DEFAULT_CONFIG.items():
        assert key in rows, f"config key {key} is not in docs/trace-format.md"
        assert rows[key][1] == f"`{json.dumps(default)}`", (key, rows[key])


def test_every_member_of_the_result_is_described():
    from dirty_ladder.trace import OPS
    from dirty_ladder.machine import replay
    from dirty_ladder.trace import validate
    from stages import stage
    # a trace that fills every part of the state, so that nested keys show
    trace = validate({"format": "dirty-trace/1", "config": {"accel": "kvm", "xen": True}, "ops": [
        {"op": "ram_alloc", "size": 65536}, {"op": "tlb_fill", "addr": 0}, {"op": "tb_translate", "addr": 0},
        {"op": "migration_setup"}, {"op": "kvm_write", "addr": 0}]})
    result = replay(stage(39), trace)
    assert result["state"]["migration"] and result["state"]["kvm_log"]
    text = doc_text()
    rows = table_rows(text)
    for key in result:
        assert key in rows, f"result member {key} has no row"
    for key, value in result["state"].items():
        assert f"state.{key}" in rows, f"state member {key} has no row"
        for inner in (value if isinstance(value, dict) else {}):
            assert f"`{inner}`" in rows[f"state.{key}"][0], (key, inner)
    assert set(OPS) <= set(rows)


def test_the_example_gives_the_result_shown():
    from dirty_ladder.machine import replay
    from dirty_ladder.trace import validate
    from stages import stage
    trace, result = json_blocks(doc_text())[:2]
    assert trace["format"] == "dirty-trace/1" and result["format"] == "dirty-trace-result/1"
    assert replay(stage(result["stage"]), validate(trace)) == result


def test_the_call_example_replays_as_described():
    # the doc says: VGA's page 0 clean after the call, page 0's TLB entry
    # NOTDIRTY again, on every stage (end = addr + length before stage 30)
    from dirty_ladder.compare import CALL_ARGS, STATE_KEYS, call_outcome, parse_call
    from stages import LAST, stage
    call = next(b for b in json_blocks(doc_text()) if b.get("format") == "dirty-call/1")
    parsed = parse_call(call)
    for n in range(LAST + 1):
        outcome = call_outcome(stage(n), parsed)
        assert outcome["dirty"] == {"vga": [], "code": [0, 1], "migration": []}, n
        assert outcome["tlb_notdirty"] == [0, 1] and outcome["result"] == ["NoneType", None], n
    rows = table_rows(doc_text())
    for name in ("format", "config", "state", "trace", "call.function", "call.args"):
        assert name in rows, name
    assert all(f"`{key}`" in rows["state"][0] for key in STATE_KEYS)
    assert all(f"`{arg}`" in rows["call.args"][0] for arg in CALL_ARGS)


def every_help_text(parser) -> list[str]:
    """The --help of a parser and of all its subcommands, at any depth (new
    subcommands included: argparse keeps them in its subparsers action)."""
    import argparse
    texts = [parser.format_help()]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                texts += every_help_text(sub)
    return texts


def test_user_facing_text_points_to_the_reference_not_to_shared():
    """README.md and --help name docs/trace-format.md, which users have, and
    never shared/machine.md, which they do not."""
    from dirty_ladder import cli
    helps = every_help_text(cli.build_parser())
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for text in helps + [readme, cli.__doc__]:
        assert "machine.md" not in text and "shared/" not in text
    assert "docs/trace-format.md" in readme
    assert sum("docs/trace-format.md" in h for h in helps) >= 3      # replay, trace random, trace validate


def test_readme_replay_all_sample_is_the_real_output(tmp_path):
    """README's commands, run as written in a fresh directory, print README's sample."""
    import os
    import subprocess
    import sys
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    command = re.search(r"^dirty-ladder (trace random [^>]+) > t\.json$", readme, re.MULTILINE)
    sample = re.search(r"`replay --all` on the random trace above prints[^`]*```\n(.*?)```", readme, re.DOTALL)
    assert command and sample
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def run(*args: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "dirty_ladder", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    (tmp_path / "t.json").write_text(run(*command.group(1).split()))
    assert run("replay", "t.json", "--all") == sample.group(1)


def test_the_page_walk_limit_is_documented_as_it_is():
    from dirty_ladder import cli
    from dirty_ladder.walks import DEFAULT_MAX_PAGES, ENVIRONMENT
    for text in ((ROOT / "README.md").read_text(encoding="utf-8"), doc_text(),
                 "\n".join(every_help_text(cli.build_parser()))):
        assert f"{DEFAULT_MAX_PAGES:,}" in text and ENVIRONMENT in text and "--max-pages" in text
