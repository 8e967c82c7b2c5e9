"""What every command of ``dirty-ladder`` shares: the two kinds of error
(``UserError``: exit status 2; ``Failure``: 1), the parser whose errors are
one line, the number parsers of the arguments, a subcommand with its help
and examples, and the output helpers (``out``, ``warn``, ``to_json``,
``emit_json``, ``plural``, ``short``)."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from typing import Any

from stages import LAST

MAX_OPS = 100_000


class UserError(Exception):
    """A mistake of the user's: one line on stderr, exit status 2."""


class Failure(Exception):
    """Something failed that is not the user's doing: one line, exit status 1."""


# ------------------------------------------------------------------ argparse
class Parser(argparse.ArgumentParser):
    """argparse, but an error is one line on stderr and exit status 2."""

    def error(self, message: str):
        raise UserError(f"{self.prog}: {' '.join(message.split())}")


class Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def _int(text: str, what: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must be a whole number, not {text!r}") from None


def stage_number(text: str) -> int:
    n = _int(text, "a stage number")
    if not 0 <= n <= LAST:
        raise argparse.ArgumentTypeError(f"unknown stage {n}: stages are 0 to {LAST}")
    return n


def exercise_number(text: str) -> int:
    n = _int(text, "an exercise number")
    if not 1 <= n <= LAST:
        raise argparse.ArgumentTypeError(f"unknown exercise {n}: exercises are 1 to {LAST}, one per commit "
                                         f"(stage 0 is the starting point)")
    return n


def rung_number(text: str) -> int:
    n = _int(text, "a rung number")
    if not 1 <= n <= LAST:
        raise argparse.ArgumentTypeError(
            f"unknown rung {n}: rungs are 1 to {LAST} (rung N compares stage N-1 with stage N)")
    return n


def positive(text: str) -> int:
    n = _int(text, "the value")
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {n}")
    return n


def op_count(text: str) -> int:
    n = positive(text)
    if n > MAX_OPS:
        raise argparse.ArgumentTypeError(f"at most {MAX_OPS} ops, not {n}")
    return n


def seed_value(text: str) -> int:
    return _int(text, "a seed")


# ------------------------------------------------------------------ output helpers
def out(line: str = "") -> None:
    print(line)


def warn(line: str) -> None:
    print(line, file=sys.stderr)


def _flat(value: Any) -> bool:
    """A scalar, or a list of scalars and lists of scalars: printed on one line."""
    if isinstance(value, (dict, list)):
        return isinstance(value, list) and all(
            not isinstance(x, (dict, list)) or (isinstance(x, list) and _flat(x)) for x in value)
    return True


def to_json(obj: Any, indent: int = 0) -> str:
    """Indented JSON with page ranges and other flat lists on one line."""
    pad, inner = "  " * indent, "  " * (indent + 1)
    if _flat(obj) or (isinstance(obj, dict) and not obj):
        return json.dumps(obj)
    if isinstance(obj, dict):
        items = [f"{inner}{json.dumps(str(k))}: {to_json(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    items = [f"{inner}{to_json(v, indent + 1)}" for v in obj]
    return "[\n" + ",\n".join(items) + "\n" + pad + "]"


def emit_json(obj: Any) -> None:
    print(to_json(obj))


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def short(value: Any, width: int = 100) -> str:
    text = json.dumps(value)
    return text if len(text) <= width else text[:width - 3] + "..."


# ------------------------------------------------------------------ what several commands read
def load_user_stage(path: str, n: int | None) -> type:
    """A user's module standing in for stage ``n`` (--stage-file)."""
    from ..exercises import StageFileError, load_stage_file
    try:
        return load_stage_file(path, n)
    except StageFileError as exc:
        raise UserError(str(exc)) from None


# ------------------------------------------------------------------ a subcommand
def add_command(subparsers, name: str, help_: str, epilog: str, description: str | None = None) -> Parser:
    """The subcommand NAME: its one-line help (also its description unless
    ``description`` is given) and its examples (``epilog``)."""
    return subparsers.add_parser(name, help=help_, description=description or help_, formatter_class=Formatter,
                                 epilog="example:\n" + textwrap.indent(textwrap.dedent(epilog).strip("\n"), "  "))


INLINE_DIFFS = "diffs with inherited code in place of super() calls"


def pager_option(sp: argparse.ArgumentParser) -> None:
    """--no-pager, for a command that prints through terminal.Screen (paged on a terminal)."""
    sp.add_argument("--no-pager", action="store_true", help="never page, even on a terminal")


def teaching_options(sp: argparse.ArgumentParser, inline: str | None = None, json: str = "print JSON") -> None:
    """--inline (when ``inline`` gives its help) and --json."""
    if inline:
        sp.add_argument("--inline", action="store_true", help=inline)
    sp.add_argument("--json", action="store_true", help=json)
