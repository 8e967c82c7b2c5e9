"""What every command of ``dirty-ladder`` shares: the two kinds of error
(``UserError``: exit status 2; ``Failure``: 1), the parser whose errors are
one line, the number parsers of the arguments, a subcommand with its help
and examples, the output helpers (``out``, ``warn``, ``to_json``,
``emit_json``, ``plural``, ``short``), and running a user's module
contained (``contained``, ``--timeout``)."""

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


def parse_one_line(parser: Parser, argv: list[str] | None) -> argparse.Namespace:
    """``parser.parse_args`` for the package's other commands (``python -m
    dirty_ladder.bench``, ``python -m dirty_ladder.invariants``): a bad
    argument is one line on stderr and exit status 2, as for dirty-ladder."""
    try:
        return parser.parse_args(argv)
    except UserError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        raise SystemExit(2) from None


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
def stdout():
    """Where the command's output goes (in a child running a user's module,
    not where the module's prints go: see dirty_ladder/contain.py)."""
    from ..contain import tool_streams
    return tool_streams()[0]


def stderr():
    from ..contain import tool_streams
    return tool_streams()[1]


def out(line: str = "") -> None:
    print(line, file=stdout())


def warn(line: str) -> None:
    print(line, file=stderr())


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
    print(to_json(obj), file=stdout())


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def short(value: Any, width: int = 100) -> str:
    text = json.dumps(value)
    return text if len(text) <= width else text[:width - 3] + "..."


class StatusLine:
    """A progress line on stderr.  On a terminal, rich draws it in place
    (a spinner and the text) and the lines :meth:`print` gives appear above
    it; elsewhere (a pipe, a log) the text is written as a plain line at most
    every ``every`` seconds and the lines as they are.  :meth:`stop` (also
    on Ctrl-C) takes the line away."""

    def __init__(self, every: float = 10.0):
        self.tty = bool(getattr(stderr(), "isatty", lambda: False)())
        self.every, self.last = every, 0.0
        self.status = None
        if self.tty:
            from rich.console import Console
            self.console = Console(file=stderr(), highlight=False, markup=False)

    def update(self, text: str) -> None:
        import time
        if self.tty:
            if self.status is None:
                self.status = self.console.status(text, spinner="dots")
                self.status.start()
            else:
                self.status.update(text)
        elif time.monotonic() - self.last >= self.every:
            self.last = time.monotonic()
            warn(text)

    def print(self, line: str) -> None:
        if self.tty:
            self.console.print(line, soft_wrap=True)
        else:
            warn(line)

    def stop(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None


def table(header: list[str], rows: list[list[str]], styles: list[str | None] | None = None) -> None:
    """Rows under a header on stdout: drawn by rich on a terminal (``styles``:
    one per row), plain columns two spaces apart elsewhere, the first column
    right-aligned, as the commands have always printed them."""
    if getattr(stdout(), "isatty", lambda: False)():
        from rich import box
        from rich.console import Console
        from rich.table import Table
        t = Table(box=box.SIMPLE_HEAD, show_edge=False, highlight=False)
        for k, name in enumerate(header):
            t.add_column(name, justify="right" if k == 0 else "left", overflow="fold")
        for row, style in zip(rows, styles or [None] * len(rows)):
            t.add_row(*row, style=style)
        Console(file=stdout(), highlight=False).print(t)
        return
    widths = [max(len(r[k]) for r in [header, *rows]) for k in range(len(header))]
    for r in [header, *rows]:
        cells = [r[0].rjust(widths[0])] + [c.ljust(w) for c, w in zip(r[1:-1], widths[1:-1])] + [r[-1]]
        out("  ".join(cells))


# ------------------------------------------------------------------ what several commands read
def load_user_stage(path: str, n: int | None) -> type:
    """A user's module standing in for stage ``n`` (--stage-file): loaded in
    the child process of ``contained`` (its import may not change the ladder)."""
    from ..contain import check_ladder
    from ..exercises import StageFileError, load_stage_file
    try:
        cls = load_stage_file(path, n)
    except StageFileError as exc:
        raise UserError(str(exc)) from None
    check_ladder()
    return cls


def add_timeout(sp: argparse.ArgumentParser, what: str) -> None:
    """--timeout: the time limit of the child process that runs a user's module."""
    from ..contain import DEFAULT_TIMEOUT
    sp.add_argument("--timeout", type=seconds, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                    help=f"stop {what} after SECONDS (default {DEFAULT_TIMEOUT:g}): your module runs in a "
                         f"child process, its output goes to a log")


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number of seconds, not {text!r}") from None
    if not 0 < value <= 7 * 24 * 3600 or value != value:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds and at most a week, not {text}")
    return value


def contained(args, fn, *fn_args, file: str, what: str, on_event=None, **kwargs):
    """``fn(*fn_args, **kwargs)`` run in a child process with the user's module
    ``file`` (dirty_ladder/contain.py): its value.  Its output goes to a log,
    said on stderr when there is any; an end the module forces is a Failure,
    one line."""
    from .. import contain
    if contain.inside():
        return fn(*fn_args, **kwargs)
    args.log = None
    try:
        try:
            log = contain.new_log()
        except OSError as exc:
            raise Failure(f"cannot make a log for {file}'s output: {exc.strerror or exc}") from None
        try:
            value = contain.run(fn, *fn_args, file=file, timeout=args.timeout, log=log, on_event=on_event,
                                what=what, **kwargs)
        finally:
            args.log = contain.keep_log(log, file)
    except contain.Ended as exc:
        raise Failure(str(exc) + (f"; its output is in {args.log}" if args.log else "")) from None
    if args.log is not None:
        warn(f"note: {file} printed {plural(_lines(args.log), 'line')}; its output is in {args.log}")
    return value


def _lines(path) -> int:
    with open(path, "rb") as fh:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 16), b"")) or 1


def contained_command(args, what: str) -> int:
    """The whole command, its user's module (--stage-file) with it, in a child."""
    return contained(args, args.func, args, file=args.stage_file, what=what)


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
