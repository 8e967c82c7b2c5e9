"""The command line is split by what it does: each group of commands lives
in one module of dirty_ladder/cli/, its commands' arguments defined beside
them, and no module under dirty_ladder/ adds the subcommands of more than
one group.  Read from the source (which module calls ``add_parser`` or
``add_command`` with which name), checked against the parser itself."""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

from dirty_ladder import cli

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "dirty_ladder"

# The groups as the README's command reference has them; trace's own
# actions (trace random, trace validate) belong to trace's group.
GROUPS = {
    "stepping": {"list", "show", "diff", "log"},
    "running": {"replay", "trace", "random", "validate"},
    "checking": {"check", "verify"},
    "teaching": {"tour", "exercise", "register", "book"},
    "bench": {"bench"},
}
GROUP_OF = {name: group for group, names in GROUPS.items() for name in names}
NAME_AT = {"add_parser": 0, "add_command": 1}      # add_command(subparsers, name, ...)


def registrations(path: Path) -> list[tuple[str | None, int]]:
    """(name, line) of each subcommand the module adds with ``add_parser`` or
    ``add_command``; the name is None where it is not written as a string
    there.  add_command's own ``add_parser(name, ...)`` is the one call that
    passes a name on, and is left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    passing_on = {id(node) for fn in ast.walk(tree) if isinstance(fn, ast.FunctionDef) and fn.name == "add_command"
                  for node in ast.walk(fn)}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or id(node) in passing_on:
            continue
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if called not in NAME_AT:
            continue
        arg = node.args[NAME_AT[called]] if len(node.args) > NAME_AT[called] else None
        name = arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else None
        found.append((name, node.lineno))
    return found


def every_module() -> dict[str, list[tuple[str, int]]]:
    return {str(p.relative_to(ROOT)): registrations(p) for p in sorted(PACKAGE.rglob("*.py"))}


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_no_module_adds_the_commands_of_two_groups():
    problems = []
    for module, found in every_module().items():
        hidden = [str(line) for name, line in found if name is None]
        if hidden:
            problems.append(f"{module} adds a command whose name is not written at the call, line "
                            f"{', '.join(hidden)}: write it there, so that this test can see its group")
        unknown = [f"{name} (line {line})" for name, line in found if name is not None and name not in GROUP_OF]
        if unknown:
            problems.append(f"{module} adds commands of no known group: {', '.join(unknown)}")
        groups = {GROUP_OF[name] for name, _ in found if name in GROUP_OF}
        if len(groups) > 1:
            problems.append(f"{module} adds commands of {len(groups)} groups: "
                            + "; ".join(f"{g}: {', '.join(n for n, _ in found if GROUP_OF.get(n) == g)}"
                                        for g in sorted(groups)))
    assert not problems, "\n".join(problems)


def test_each_group_is_the_module_of_its_name():
    found = every_module()
    for group, names in GROUPS.items():
        module = f"dirty_ladder/cli/{group}.py"
        assert {name for name, _ in found.get(module, [])} == names, module


def test_the_source_shows_every_command_the_parser_has():
    """What the scan reads is what the command offers: a command added in a
    way the scan cannot see (a name in a variable, a loop) fails here."""
    top = subcommands(cli.build_parser())
    trace = subcommands(top["trace"])
    offered = sorted(list(top) + list(trace))
    assert offered == sorted(GROUP_OF)
    seen = sorted(name for found in every_module().values() for name, _ in found if name is not None)
    assert seen == offered, "each command should be added once, by name, in its group's module"


def test_help_lists_the_commands_in_the_order_it_always_has():
    assert list(subcommands(cli.build_parser())) == [
        "list", "show", "diff", "replay", "check", "trace", "tour", "log", "register", "exercise", "verify", "book",
        "bench"]
