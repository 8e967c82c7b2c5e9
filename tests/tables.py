"""Reading back a table the command line prints (terminal.Screen.table,
rich): the columns start where their headers do, a row starts where its
first column has text right at the column's start, and a cell that wraps
(or its indented second line) goes on in the same column on the lines
below.  What a reader does with their eyes, for the tests."""

from __future__ import annotations

import re


def read_table(lines: list[str], header: list[str]) -> list[list[str]]:
    """The rows of the table whose header line names ``header`` (in order),
    each cell its text with wrapped lines joined by a space; the table ends
    at the first blank line after its rows.  When the header line does not
    start at its first column, what stands before the first named column (a
    mark such as ``*``, under an empty header) is a cell too, the first."""
    at = next(i for i, line in enumerate(lines) if _has(line, header))
    starts = _starts(lines[at], header)
    lead = bool(lines[at][:starts[0]].strip()) or starts[0] > _indent(lines, at)
    rows: list[list[str]] = []
    for line in lines[at + 1:]:
        if re.fullmatch(r"\s*\u2500+\s*", line):
            continue
        if not line.strip():
            break
        cells = [line[a:b].strip() for a, b in zip(starts, starts[1:] + [None])]
        if lead:
            cells = [line[:starts[0]].strip()] + cells
        if line[starts[0]:starts[0] + 1].strip() or not rows:     # text right at the column's start
            rows.append(cells)
        else:
            rows[-1] = [(old + " " + new).strip() for old, new in zip(rows[-1], cells)]
    return rows


def _starts(line: str, header: list[str]) -> list[int]:
    out, at = [], 0
    for h in header:
        at = line.index(h, at)
        out.append(at)
        at += len(h)
    return out


def _indent(lines: list[str], at: int) -> int:
    """How far the table is indented: its rule line's indent."""
    rule = lines[at + 1] if at + 1 < len(lines) else ""
    return len(rule) - len(rule.lstrip())


def _has(line: str, header: list[str]) -> bool:
    try:
        _starts(line, header)
    except ValueError:
        return False
    return True
