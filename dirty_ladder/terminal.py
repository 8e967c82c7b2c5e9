"""The terminal, through rich: what a command prints, made to read well.

On a terminal: colour, Markdown prose, syntax-highlighted diffs, tables
that fit, at most :data:`MAX_WIDTH` columns, and a pager when the text is
longer than the screen (``$PAGER``, else ``less``; ``--no-pager`` or
``NO_COLOR`` as usual).  Piped or redirected: the same text, plain (no
colour, no pager), :data:`MAX_WIDTH` columns or ``$COLUMNS``.

A :class:`Screen` collects a command's output and shows it once at the end,
so that it can decide on the pager knowing the length::

    screen = Screen()
    screen.markdown(chapter.problem)
    screen.table(["stage", "title"], rows)
    screen.show()
"""

from __future__ import annotations

import io
import os
import shutil
import sys
from typing import Any, TextIO

MAX_WIDTH = 100          # the widest a line gets, terminal or not
PROSE_WIDTH = 80         # prose reads better narrower


def terminal_size() -> os.terminal_size:
    return shutil.get_terminal_size((MAX_WIDTH, 40))


def _cell(value: Any):
    """A table cell: its text, or for a pair (first, second) the first line
    and, indented below it, the second (wrapped under its own indent)."""
    if not isinstance(value, tuple):
        return str(value)
    from rich.console import Group
    from rich.padding import Padding
    from rich.text import Text
    first, second = value
    return Group(Text(str(first)), Padding(Text(str(second), style="dim"), (0, 0, 0, 2)))


class Screen:
    """One command's output, rendered by rich into memory, then written to
    ``file`` (or paged) by :meth:`show`."""

    def __init__(self, file: TextIO | None = None, pager: bool = True, width: int | None = None):
        from rich.console import Console
        from rich.theme import Theme

        self.file = file if file is not None else sys.stdout
        self.tty = bool(getattr(self.file, "isatty", lambda: False)())
        size = terminal_size()
        self.width = width or min(MAX_WIDTH, size.columns if self.tty or "COLUMNS" in os.environ else MAX_WIDTH)
        self.height = size.lines
        self.pager = pager and self.tty
        self._buffer = io.StringIO()
        colour = self.tty and "NO_COLOR" not in os.environ
        self.console = Console(file=self._buffer, force_terminal=colour, no_color=not colour,
                               color_system="auto" if colour else None, width=self.width, highlight=False,
                               emoji=False, markup=False, soft_wrap=False,
                               theme=Theme({"differs": "bold red", "heading": "bold cyan", "dim": "dim",
                                            "seed": "green", "term": "bold"}))

    # ---- what can be printed
    def line(self, text: str = "", style: str | None = None) -> None:
        """A line of plain text (no markup), wrapped at the width."""
        self.console.print(text, style=style, overflow="fold")

    def lines(self, lines: list[str], style: str | None = None) -> None:
        for text in lines:
            self.console.print(text, style=style, overflow="fold", no_wrap=True, crop=False)

    def paragraph(self, text: str, indent: int = 0, style: str | None = None) -> None:
        """Plain text (no Markdown), wrapped at the width with every line indented."""
        from rich.padding import Padding
        from rich.text import Text
        body = Text(" ".join(text.split()), style=style or "")
        self.console.print(Padding(body, (0, 0, 0, indent)) if indent else body)

    def heading(self, text: str) -> None:
        self.console.print()
        self.console.print(text, style="heading")

    def rule(self, title: str) -> None:
        from rich.rule import Rule
        self.console.print()
        self.console.print(Rule(title, align="left", style="dim"))

    def markdown(self, text: str, indent: int = 0) -> None:
        """Prose written in Markdown (the chapters, the glossary, the
        docstrings, whose ``code`` is Markdown too), at most
        :data:`PROSE_WIDTH` columns."""
        from rich.markdown import Markdown
        from rich.padding import Padding
        body = Markdown(text, code_theme="ansi_dark", hyperlinks=False)
        width = min(PROSE_WIDTH + indent, self.width)
        self.console.print(Padding(body, (0, 0, 0, indent)) if indent else body, width=width)

    def diff(self, text: str) -> None:
        """A unified diff, highlighted on a terminal."""
        from rich.syntax import Syntax
        self.console.print(Syntax(text.rstrip("\n"), "diff", theme="ansi_dark", background_color="default",
                                  word_wrap=True))

    def code(self, text: str, language: str = "python", indent: int = 0) -> None:
        from rich.padding import Padding
        from rich.syntax import Syntax
        syntax = Syntax(text.rstrip("\n"), language, theme="ansi_dark", background_color="default",
                        word_wrap=True)
        self.console.print(Padding(syntax, (0, 0, 0, indent)) if indent else syntax)

    def table(self, columns: list[str], rows: list[list[Any]], styles: list[str | None] | None = None,
              no_wrap: tuple[int, ...] = (), indent: int = 0, title: str | None = None,
              max_widths: dict[int, int] | None = None) -> None:
        """A table that fits the width: the columns not in ``no_wrap`` wrap
        at spaces (a word longer than its column folds); ``max_widths``
        caps a column so that the others get the room.  A cell may hold
        several lines."""
        from rich import box
        from rich.padding import Padding
        from rich.table import Table
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, expand=False, title=title,
                      title_justify="left", header_style="bold", title_style="bold", collapse_padding=True)
        for k, name in enumerate(columns):
            table.add_column(name, no_wrap=k in no_wrap, overflow="fold",
                             max_width=(max_widths or {}).get(k))
        for k, row in enumerate(rows):
            table.add_row(*[_cell(x) for x in row], style=(styles[k] if styles else None))
        self.console.print(Padding(table, (0, 0, 0, indent)) if indent else table)

    # ---- the end
    def text(self) -> str:
        """What was printed so far, each line without trailing blanks."""
        return "\n".join(line.rstrip() for line in self._buffer.getvalue().split("\n"))

    def show(self) -> None:
        """Write it out: through the pager on a terminal when it is longer than
        the screen, else as it is."""
        text = self.text()
        if self.pager and text.count("\n") + 1 > self.height - 1:
            import pydoc
            os.environ.setdefault("LESS", "-FRX")        # colours through, quit when it fits
            pydoc.pager(text)
            return
        self.file.write(text if text.endswith("\n") else text + "\n")
        self.file.flush()
