"""The ``dirty-ladder`` command (also ``python -m dirty_ladder``): step through the
ladder and put your own traces through it.

Subcommands::

    list                     the 40 stages and what the register says of each rung
    show N [FUNCTION]        the dirty API at stage N, or one function's source there
    diff N [M]               what changed from stage N-1 to N (or from N to M)
    replay TRACE --stage N   run a trace on one stage (--all: on all 40)
    check [N | --all]        the differential check of one rung or of all
    trace random --seed S    write a valid random trace
    trace validate TRACE     check a trace file without running it
    tour [CHAPTER | N]       the guided tour: chapters, and each stage explained
    log [N..M] [-p]          walk stages like git log (-L FUNCTION: one function's history)
    register [ID]            the divergence register; one entry replayed before and after
    exercise N               a starter module to redo commit N (--hint, --progress)
    book OUT                 the tour as a static website (needs the book extra)

Every user error (a bad stage number, an unknown function, a trace that is
unreadable, malformed or breaks the rules of docs/trace-format.md, a bad option)
ends with exit status 2 and one line on stderr; ``check`` exits 1 when it
finds a difference the register does not list.

Each group of commands is a module holding its commands and, beside each,
the function that adds its arguments to the parser: ``stepping`` (list,
show, diff, log), ``running`` (replay, trace), ``checking`` (check, verify),
``teaching`` (tour, exercise, register, book) and ``bench``; what they share
(errors, the parser class, number parsers, output helpers) is in
``common``.  This module puts them together and runs the command.
"""

from __future__ import annotations

import sys
import textwrap

from stages import UnknownStage

from ..streams import finish
from . import bench, checking, running, stepping, teaching
from .common import Failure, Formatter, Parser, UserError

GROUPS = (stepping, running, checking, teaching, bench)     # each has PARSERS: command -> add_COMMAND(sub, prog)
# the order --help lists the commands in, as it always has (the groups interleave)
COMMANDS = ("list", "show", "diff", "replay", "check", "trace", "tour", "log", "register", "exercise", "verify",
            "book", "bench")


def build_parser(prog: str = "dirty-ladder") -> Parser:
    """The top-level parser; each command's own arguments come from its group's module."""
    p = Parser(prog=prog, formatter_class=Formatter,
               description="Step through QEMU's 2013 dirty-bitmap series, one stage at a time, "
                           "and run your own traces through it.",
               epilog=textwrap.dedent(f"""\
                   examples:
                     {prog} list
                     {prog} show 19
                     {prog} diff 19
                     {prog} trace random --seed 1 -o my.json
                     {prog} replay my.json --all
                     {prog} check 27 --examples 200

                   Exit status: 0 ok; 1 check found a new difference (or a stage failed);
                   2 a user error (one line on stderr)."""))
    p.add_argument("--version", action="version", version=f"dirty-ladder {package_version()}",
                   help="print the version and exit")
    p.set_defaults(top=prog)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)
    parsers = {name: add for group in GROUPS for name, add in group.PARSERS.items()}
    for name in COMMANDS:
        parsers[name](sub, prog)
    return p


def package_version() -> str:
    """The installed package's version (pyproject.toml's)."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("dirty-ladder")
    except PackageNotFoundError:            # run from a source tree that is not installed
        return "(not installed)"


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """The entry point: returns the exit status (the console script exits with it)."""
    parser = build_parser(prog or "dirty-ladder")
    return finish(lambda: _main(parser, argv))


def _main(parser: Parser, argv: list[str] | None) -> int:
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:           # --help (0); argparse never exits otherwise here
            return exc.code if isinstance(exc.code, int) else 0
        return args.func(args)
    except UserError as exc:
        sys.stdout.flush()
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except UnknownStage as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except Failure as exc:
        sys.stdout.flush()
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130

