"""Pictures of the dirty state, drawn from real replays of the stages.

A picture is data first: a :class:`Grid` (rows of cells over pages, one band
per 64-page word) or a :class:`FlagBytes` (one page's flag byte, its bits
named by the stage's own constants), read off machines that ran a trace on
the stages' own code.  Then it is drawn twice: as SVG for the book
(:meth:`svg`) and as compact text for the terminal (:meth:`text`).  Nothing
is drawn by hand, so a change to a stage redraws its pictures.

- :func:`stage_pictures` -- the pictures of the structure a commit changes
  (the flag byte at 11 and 14, bytes beside bitmaps at 19, the TLB reset at
  30, the KVM log at 35-37, the migration sync at 38-39), each with the
  trace it replays;
- :func:`entry_picture` -- a register entry's replay drawn: every
  observable that differs, labelled, with the TLB among the rows.
"""

from __future__ import annotations

import html
import json
import textwrap
from dataclasses import dataclass, field
from typing import Any

from stages import LAST as LAST_STAGE, stage
from stages.bitmap import BITS_PER_LONG

from .machine import Machine
from .trace import TARGET_PAGE_BITS, TARGET_PAGE_SIZE, validate
from .views import CLIENTS, client_flag, dirty_pages_of, representation

WORD = BITS_PER_LONG                 # pages per bitmap word
MAX_PAGES = 192                      # a picture never draws more pages than this (three words)


# ------------------------------------------------------------------ the data of a picture
@dataclass
class Cell:
    """One page of one row: ``mark`` is what the text form prints (``#``,
    ``.``, ``N``, ``D``, a hex digit...), ``on`` whether the SVG fills it."""
    mark: str
    on: bool
    differs: bool = False
    title: str = ""


@dataclass
class Row:
    label: str
    cells: dict[int, Cell]           # page -> cell; a page missing from it is drawn empty
    span: int = 1                    # pages one cell covers (a host page of 16 target pages)
    word_values: bool = False        # a bitmap row: write each word's value
    group: str = ""                  # rows of one group are drawn under its heading
    short: str = ""                  # the label on a narrow terminal ("" : the label itself)

    @property
    def differs(self) -> bool:
        return any(c.differs for c in self.cells.values())

    def cell_at(self, page: int) -> tuple[int, Cell] | None:
        """The cell that covers ``page`` and the page it starts at (a cell
        of a span row covers ``span`` pages from its own page)."""
        for start in range(page, page - self.span, -1):
            cell = self.cells.get(start)
            if cell is not None:
                return start, cell
        return None


# What the marks of a picture mean, said for each medium: the terminal
# prints characters, the SVG fills squares.
LEGENDS = {
    "bits": ("# = bit set (page dirty), . = clear",
             "filled square = bit set (page dirty), empty square = clear"),
    "tlb": ("TLB: N = NOTDIRTY entry (the next write traps and sets the dirty bits), D = dirty entry "
            "(writes go straight through, setting nothing), - = no entry",
            "TLB: orange N = NOTDIRTY entry (the next write traps and sets the dirty bits), green D = dirty "
            "entry (writes go straight through, setting nothing), white = no entry"),
    "ranges": ("a range a-b holds both a and b", "a range a-b holds both a and b"),
}
TEXT, SVG = 0, 1


def legend_text(keys: tuple[str, ...], medium: int) -> str:
    return "; ".join(LEGENDS[k][medium] for k in keys)


# Cells per line of a text picture: a whole word when it fits, else the
# largest of these that does, so that a line starts at a round bit number.
CHUNKS = (64, 32, 16, 8, 4, 2, 1)
NBSP = "\u00a0"


@dataclass
class Grid:
    """Rows over pages ``[first, end)``, drawn one 64-page word per band."""
    id: str
    title: str
    caption: str
    first: int
    end: int
    rows: list[Row]
    marks: dict[int, str] = field(default_factory=dict)     # page -> what happens there
    notes: list[tuple[str, str, str, bool]] = field(default_factory=list)   # (label, before, after, differs)
    legend: tuple[str, ...] = ()     # keys of LEGENDS
    trace: dict | None = None        # the dirty-trace/1 object replayed, when there is one
    edges: dict[int, str] = field(default_factory=dict)     # page -> a boundary before it (a block's start)
    bars: list[tuple[str, float, float, bool]] = field(default_factory=list)  # (label, first, end, differs) in pages

    # ---- terminal
    def text(self, width: int = 100) -> list[str]:
        """The picture as lines of at most ``width`` columns (for any width
        from 20 up): a band per word, each row ``* LABEL CELLS``; when a
        word's 64 cells do not fit beside the full labels, the short labels
        (a key below says what they stand for) and, if need be, the word's
        cells over several lines of 32, 16 or 8."""
        width = max(1, width)
        bands = list(range(self.first - self.first % WORD, self.end, WORD))
        cols = max(min(k0 + WORD, self.end) - max(k0, self.first) for k0 in bands) if bands else 0

        def labels(short: bool) -> list[str]:
            return [("  " if r.group else "") + ((r.short or r.label) if short else r.label) for r in self.rows]

        full = labels(False)
        short = not (2 + max(map(len, full), default=0) + 1 + cols <= width)
        shown = labels(True) if short else full
        lw = max(map(len, shown), default=1)
        lw = max(1, min(lw, width - 4))                          # a label is cut only below one cell's room
        per_line = next((c for c in CHUNKS if c <= max(1, width - 3 - lw)), 1)
        lines = _wrap(self.title, width)
        for k0 in bands:
            a, b = max(k0, self.first), min(k0 + WORD, self.end)
            lines += _wrap(f"word {k0 // WORD}: {_span('page', a, b - 1)} ({_span('bit', a - k0, b - 1 - k0)})",
                           width, "  ", "    ")
            for c0 in range(a, b, per_line):
                c1 = min(c0 + per_line, b)
                if (c0, c1) != (a, b):
                    lines += _wrap(f"{_span('page', c0, c1 - 1)} ({_span('bit', c0 - k0, c1 - 1 - k0)})", width,
                                   "   ", "     ")
                lines += self._chunk(c0, c1, shown, lw, width)
        for page, what in sorted(self.marks.items()):
            lines += _wrap(f"v page {page}: {what}", width, "  ", "    ")
        for page, what in sorted(self.edges.items()):
            lines += _wrap(f"| page {page}: {what}", width, "  ", "    ")
        for label, first, end, differs in self.bars:
            lines += _wrap(f"{label}", width, "* " if differs else "  ", "    ")
        for label, before, after, differs in self.notes:
            lines += _wrap(f"{label}: {before} -> {after}", width, "* " if differs else "  ", "    ")
        if short:
            key = [f"{s.strip()} = {f.strip()}".replace(" ", NBSP) for s, f in dict(zip(shown, full)).items()
                   if s != f]
            if key:                                       # an item is cut only when longer than a line
                lines += [x.replace(NBSP, " ") for x in _wrap("(rows: " + "; ".join(key) + ")", width, "  ", "   ")]
        legend = ("*: differs between the stages; " if any(r.differs for r in self.rows) or any(
            n[3] for n in self.notes) else "") + legend_text(self.legend, TEXT)
        if legend.strip("; "):
            lines += _wrap(f"({legend.rstrip('; ')})", width, "  ", "   ")
        return lines

    def _chunk(self, a: int, b: int, shown: list[str], lw: int, width: int) -> list[str]:
        """The rows over pages [a, b): one line each, group headings above."""
        lines = []
        marks = "".join("v" if p in self.marks else " " for p in range(a, b))
        if marks.strip():
            lines.append(f"  {'':<{lw}} {marks}".rstrip()[:width])
        group = None
        for row, label in zip(self.rows, shown):
            if row.group != group and row.group:
                lines += _wrap(row.group, width, "  ", "    ")
            group = row.group
            mark = "*" if _band_differs(row, a, b) else " "
            lines.append(f"{mark} {label[:lw]:<{lw}} {_row_text(row, a, b)}".rstrip())
        return lines

    # ---- book
    def svg(self) -> str:
        return _grid_svg(self)


def _span(what: str, first: int, last: int) -> str:
    """``pages 3-7``, or ``page 3`` when there is one: both ends included."""
    return f"{what} {first}" if first == last else f"{what}s {first}-{last}"


def _wrap(text: str, width: int, first: str = "", rest: str = "") -> list[str]:
    """``text`` wrapped to ``width`` columns, no line longer even when a word is."""
    return textwrap.wrap(text, max(1, width), initial_indent=first, subsequent_indent=rest,
                         break_long_words=True, break_on_hyphens=False) or [""]


def _row_text(row: Row, a: int, b: int) -> str:
    """The cells of pages [a, b): a cell's mark, or for a cell that covers
    several pages ``[###]`` over them (cut where [a, b) cuts it)."""
    out = []
    for p in range(a, b):
        found = row.cell_at(p)
        if found is None:
            out.append(" ")
            continue
        start, cell = found
        if row.span == 1:
            out.append(cell.mark)
        elif p == start:
            out.append("[")
        elif p == start + row.span - 1:
            out.append("]")
        else:
            out.append(cell.mark)
    return "".join(out)


def _band_differs(row: Row, a: int, b: int) -> bool:
    return any(c.differs for p, c in row.cells.items() if a <= p < b or p < a < p + row.span)


# ------------------------------------------------------------------ the flag byte
@dataclass
class ByteView:
    stage: int
    page: int
    value: int
    names: list[str]                 # bit 0 .. bit 7: the client that owns it, or "spare"


@dataclass
class FlagBytes:
    id: str
    title: str
    caption: str
    views: list[ByteView]
    trace: dict | None = None

    def text(self, width: int = 100) -> list[str]:
        """The byte bit 7 to bit 0, each bit with its value and its owner,
        a line of eight bits when that fits in ``width`` columns (it does at
        100), else of four (two lines a byte), two or one."""
        cw = max(len(name) for v in self.views for name in v.names + ["bit 7"]) + 1
        value = "   = 0x00"
        for name in ("stage {:02d}", "{:02d}"):             # the stage's label, shorter when narrow
            head = 2 + len(name.format(0))
            per_line = next((k for k in (8, 4, 2, 1) if head + k * cw + (len(value) if k == 8 else 0) <= width),
                            0)
            if per_line:
                break
        per_line = per_line or 1
        lines = _wrap(self.title, width)
        for top in range(7, -1, -per_line):
            bits = range(top, top - per_line, -1)
            lines.append(" " * head + "".join(f"{'bit ' + str(b):>{cw}}" for b in bits))
            for v in self.views:
                tail = f"   = {v.value:#04x}" if per_line == 8 else ""
                lines.append(f"  {name.format(v.stage)}" + "".join(f"{(v.value >> b) & 1:>{cw}}" for b in bits)
                             + tail)
                lines.append(" " * head + "".join(f"{v.names[b]:>{cw}}" for b in bits))
        if per_line < 8:
            lines += _wrap("the byte: " + ", ".join(f"stage {v.stage:02d} = {v.value:#04x}" for v in self.views),
                           width, "  ", "    ")
        return [line[:width] for line in lines]

    def svg(self) -> str:
        return _byte_svg(self)


# ------------------------------------------------------------------ replaying
def _machine(n: int, trace: dict) -> Machine:
    """Stage ``n`` after ``trace`` (a dirty-trace/1 dict, validated first)."""
    t = validate(trace)
    m = Machine(stage(n), t.config)
    for op in t.ops:
        m.run_op(op)
    return m


def _trace(ops: list[dict], **config) -> dict:
    out = {"format": "dirty-trace/1", "ops": ops}
    if config:
        out["config"] = config
    return out


def _pages(ranges: list[list[int]]) -> set[int]:
    return {p for a, b in ranges for p in range(a, b)}


def _npages(m: Machine) -> int:
    return m.last_ram_offset() >> TARGET_PAGE_BITS


def _dirty(m: Machine, client: str) -> set[int]:
    flags = dirty_pages_of(m.stage, client, _npages(m))
    return {int(p) for p in flags.nonzero()[0]}


def _bits_row(label: str, pages: set[int], other: set[int] | None, first: int, end: int,
              word_values: bool = False, on: str = "#", off: str = ".", short: str = "") -> Row:
    cells = {}
    for p in range(first, end):
        inside = p in pages
        cells[p] = Cell(on if inside else off, inside, other is not None and inside != (p in other),
                        f"page {p}: {'set' if inside else 'clear'}")
    return Row(label, cells, word_values=word_values, short=short)


def _tlb_row(label: str, tlb: dict[int, bool], other: dict[int, bool] | None, first: int, end: int,
             short: str = "") -> Row:
    cells = {}
    for p in range(first, end):
        if p not in tlb and (other is None or p not in other):
            continue
        entry = tlb.get(p)
        mark = "-" if entry is None else ("N" if entry else "D")
        what = {"-": "no entry", "N": "NOTDIRTY: the next write traps",
                "D": "dirty: writes go straight through"}[mark]
        cells[p] = Cell(mark, entry is True,
                        other is not None and other.get(p) != entry, f"page {p}: {what}")
    return Row(label, cells, short=short)


def _tlb_of(state_tlb: dict[str, list[list[int]]]) -> dict[int, bool]:
    out = {p: True for p in _pages(state_tlb.get("notdirty", []))}
    out.update({p: False for p in _pages(state_tlb.get("dirty", []))})
    return out


SHORT = {"vga": "vga", "code": "code", "migration": "mig"}     # a client's name on a narrow terminal


# ------------------------------------------------------------------ the structure each commit changes
def flag_byte_picture(*numbers: int) -> FlagBytes:
    """One page's flag byte on the byte stages ``numbers`` (one or two), each
    bit named by the client whose flag it is (the stage's own constants)."""
    trace = _trace([{"op": "ram_alloc", "size": TARGET_PAGE_SIZE}])
    views = []
    for n in numbers:
        m = _machine(n, trace)
        st = m.stage
        owners = {client_flag(st, c).bit_length() - 1: c.upper() for c in CLIENTS}
        views.append(ByteView(n, 0, int(st.ram_list.phys_dirty[0]),
                              [owners.get(bit, "spare") for bit in range(8)]))
    va, vb = views[0], views[-1]
    moved = [f"{name} moves from bit {va.names.index(name)} to bit {vb.names.index(name)}"
             for name in (c.upper() for c in CLIENTS) if va.names.index(name) != vb.names.index(name)]
    change = ", ".join(f"{v.value:#04x} at stage {v.stage:02d}" for v in views)
    caption = (f"The flag byte of page 0 just after it is allocated, dirty for every client: {change}"
               + (f"; {', '.join(moved)}" if moved else "") + ". A bit that no client owns is spare."
               + (" Spare bits set at one stage and not at the other." if
                  (va.value ^ vb.value) & ~sum(1 << i for i, x in enumerate(va.names) if x != "spare") & 0xFF else ""))
    name = "-".join(f"{v.stage:02d}" for v in views)
    stages_text = " and ".join(f"{v.stage:02d}" for v in views)
    return FlagBytes(f"flag-byte-{name}", f"One page's flag byte, stage{'s' if len(views) > 1 else ''} {stages_text}",
                     caption, views, trace)


# A trace over three words of pages whose three clients differ, crossing the
# word boundaries 63/64 and 127/128 (stage 19's picture).
def _bitmaps_trace() -> dict:
    pages = 130
    return _trace([
        {"op": "ram_alloc", "size": pages * TARGET_PAGE_SIZE},
        {"op": "reset_dirty", "addr": 0, "len": pages * TARGET_PAGE_SIZE, "client": "vga"},
        {"op": "reset_dirty", "addr": 0, "len": pages * TARGET_PAGE_SIZE, "client": "migration"},
        {"op": "set_dirty", "addr": 62 * TARGET_PAGE_SIZE, "len": 4 * TARGET_PAGE_SIZE},
        {"op": "tb_translate", "addr": 5 * TARGET_PAGE_SIZE},
        {"op": "tb_translate", "addr": 64 * TARGET_PAGE_SIZE},
        {"op": "tcg_write", "addr": 127 * TARGET_PAGE_SIZE, "size": 4},
        {"op": "tcg_write", "addr": 128 * TARGET_PAGE_SIZE, "size": 4},
    ])


def bytes_and_bitmaps_picture(a: int = 18, b: int = 19) -> Grid:
    """The same dirty state held as flag bytes (stage ``a``) and as three
    bitmaps (stage ``b``), page by page, word by word."""
    trace = _bitmaps_trace()
    ma, mb = _machine(a, trace), _machine(b, trace)
    end = _npages(ma)
    rows = []
    if representation(ma.stage) == "bytes":
        data = ma.stage.ram_list.phys_dirty
        rows.append(Row(f"{a:02d}: phys_dirty byte", {
            p: Cell(f"{int(data[p]):x}" if data[p] < 16 else "#", bool(data[p]), False,
                    f"page {p}: byte {int(data[p]):#04x}") for p in range(end)}, short=f"{a:02d}: byte"))
    for c in CLIENTS:
        pa, pb = _dirty(ma, c), _dirty(mb, c)
        n = mb.client_number(c)
        rows.append(_bits_row(f"{b:02d}: dirty_memory[{n}] {c}", pb, pa, 0, end, word_values=True,
                              short=f"{b:02d}: {SHORT[c]}"))
    return Grid("bytes-and-bitmaps", f"Flag bytes (stage {a:02d}) and the three bitmaps (stage {b:02d})",
                f"The same dirty state after one trace, page by page: at stage {a:02d} one byte per page "
                f"(the hex digit is the byte: 1 VGA, 2 CODE, 4 MIGRATION), at stage {b:02d} one bit per page in "
                f"each client's bitmap. Bit i of word k is page 64k+i: page 63 is the last bit of word 0, "
                f"page 64 the first of word 1. 8 bits a page become 3.",
                0, end, rows, {62: "set_dirty of pages 62-65 crosses the word boundary",
                               127: "a TCG write, last bit of word 1", 128: "a TCG write, first bit of word 2"},
                legend=("bits",), trace=trace)


class _RecordingMachine(Machine):
    """A machine that also notes each range the stage hands to the TLB reset."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.tlb_resets: list[tuple[int, int]] = []

    def cpu_tlb_reset_dirty_all(self, start1: int, length: int) -> None:
        self.tlb_resets.append((int(start1), int(length)))
        super().cpu_tlb_reset_dirty_all(start1, length)


def _recording(n: int, trace: dict) -> _RecordingMachine:
    t = validate(trace)
    m = _RecordingMachine(stage(n), t.config)
    for op in t.ops:
        m.run_op(op)
    return m


def tlb_reset_picture(a: int = 29, b: int = 30) -> Grid:
    """A reset of an unaligned range under TCG: what each stage clears, which
    range it hands to the TLB reset (recorded as the stage calls it), which
    entries become NOTDIRTY, and what a later write to the last page sets."""
    page = TARGET_PAGE_SIZE
    setup = [{"op": "ram_alloc", "size": 4 * page}] + [{"op": "tlb_fill", "addr": k * page} for k in range(4)]
    reset = {"op": "reset_dirty", "addr": page // 2, "len": page, "client": "vga"}
    write = {"op": "tcg_write", "addr": page + 8, "size": 4}
    first = _trace(setup + [reset], accel="tcg")
    full = _trace(setup + [reset, write], accel="tcg")
    ma, mb = _recording(a, first), _recording(b, first)
    fa, fb = _machine(a, full), _machine(b, full)
    rows = []
    for n, m, o, f, fo in ((a, ma, mb, fa, fb), (b, mb, ma, fb, fa)):
        group = f"stage {n:02d}"
        rows += [_bits_row("vga after the reset", _dirty(m, "vga"), _dirty(o, "vga"), 0, 4, short="vga reset"),
                 _tlb_row("TLB after the reset", m.tlb, o.tlb, 0, 4, short="TLB reset"),
                 _bits_row("vga after the write", _dirty(f, "vga"), _dirty(fo, "vga"), 0, 4, short="vga write")]
        for row in rows[-3:]:
            row.group = group
    bars = [(f"the reset: {_byte_span(reset['addr'], reset['len'])}", reset["addr"] / page,
             (reset["addr"] + reset["len"]) / page, False)]
    for n, m, o in ((a, ma, mb), (b, mb, ma)):
        for s1, length in m.tlb_resets:
            bars.append((f"stage {n:02d} TLB reset: {_byte_span(s1, length)}", s1 / page, (s1 + length) / page,
                         m.tlb_resets != o.tlb_resets))

    def ranges(m: _RecordingMachine) -> str:
        return ", ".join(_byte_span(s, n) for s, n in m.tlb_resets) or "none"
    notes = [("range handed to the TLB reset (cpu_tlb_reset_dirty_all)", ranges(ma), ranges(mb),
              ma.tlb_resets != mb.tlb_resets)]
    return Grid("tlb-reset", f"Resetting an unaligned range under TCG, stages {a:02d} and {b:02d}",
                f"Four pages, each with a dirty TLB entry; the VGA bits of "
                f"{_byte_span(reset['addr'], reset['len'])} are reset; then the guest writes to "
                f"page 1 through its TLB entry. The TLB reset must cover every page whose bits it cleared: where "
                f"the entry stays dirty (D), the write goes straight through and sets no bit, a lost VGA write.",
                0, 4, rows, {1: "the last page of the reset, written afterwards"}, notes, ("bits", "tlb", "ranges"), full,
                bars=bars)


def _page_span(start: int, length: int) -> str:
    """The pages a byte range touches, both ends included."""
    first, last = start // TARGET_PAGE_SIZE, (start + length - 1) // TARGET_PAGE_SIZE
    return "no page" if length <= 0 else f"page {first}" if first == last else f"pages {first}-{last}"


def _byte_span(start: int, length: int) -> str:
    """A byte range and the pages it touches, both written first-last, ends included."""
    if length <= 0:
        return f"no bytes (at byte {start})"
    return f"bytes {start}-{start + length - 1} ({_page_span(start, length)})"


def kvm_log_picture(a: int, b: int, host_page_size: int) -> Grid:
    """A word of the KVM dirty log (one bit per host page) beside the
    target pages it covers, and what each stage's sync marks dirty."""
    hpratio = host_page_size // TARGET_PAGE_SIZE
    page = TARGET_PAGE_SIZE
    size = WORD * page                                    # one word of target pages: 64 pages
    hosts = [1, 2] if hpratio > 1 else [1, 2, 40]
    ops = [{"op": "ram_alloc", "size": size}]
    ops += [{"op": "reset_dirty", "addr": 0, "len": size, "client": c} for c in CLIENTS]
    ops += [{"op": "kvm_write", "addr": h * host_page_size} for h in hosts]
    before = _trace(ops, host_page_size=host_page_size, accel="kvm")
    after = _trace(ops + [{"op": "kvm_sync"}], host_page_size=host_page_size, accel="kvm")
    log_machine = _machine(a, before)
    words = log_machine.kvm_log[0]
    log_pages = {p for p in range(size // host_page_size) if int(words[p // 64]) >> (p % 64) & 1}
    log_cells = {h * hpratio: Cell("1" if h in log_pages else "0", h in log_pages, False,
                                   f"host page {h} = target pages {h * hpratio}-{(h + 1) * hpratio - 1}: "
                                   f"{'written' if h in log_pages else 'clean'}")
                 for h in range(size // host_page_size)}
    rows = [Row("KVM log, word 0", log_cells, span=hpratio, short="log")]
    ma, mb = _machine(a, after), _machine(b, after)
    for c in ("migration",):
        pa, pb = _dirty(ma, c), _dirty(mb, c)
        rows.append(_bits_row(f"{a:02d}: {c.upper()} bitmap after kvm_sync", pa, pb, 0, WORD, word_values=True,
                              short=f"{a:02d}: {SHORT[c]}"))
        rows.append(_bits_row(f"{b:02d}: {c.upper()} bitmap after kvm_sync", pb, pa, 0, WORD, word_values=True,
                              short=f"{b:02d}: {SHORT[c]}"))
    same = all(_dirty(ma, c) == _dirty(mb, c) for c in CLIENTS)
    hp = "4 KiB host pages (hpratio 1)" if hpratio == 1 else f"{host_page_size // 1024} KiB host pages (hpratio {hpratio})"
    return Grid(f"kvm-log-{host_page_size // 1024}k", f"The KVM dirty log merged into the bitmaps, {hp}",
                f"A block of 64 target pages on a 64-page boundary, clean, then the guest writes under KVM to "
                f"host page{'s' if len(hosts) > 1 else ''} {', '.join(map(str, hosts))}. Bit i of the log is host page i"
                + (f", which covers target pages 16i to 16i+15" if hpratio == 16 else
                   f", which covers {hpratio} target pages" if hpratio > 1 else ", the same as target page i")
                + f". The VGA and CODE bitmaps get the same bits as MIGRATION"
                + (". Both stages mark the same pages." if same else
                   f"; stage {b:02d} marks other pages than stage {a:02d}."),
                0, WORD, rows, {h * hpratio: f"host page {h} written" for h in hosts}, legend=("bits",),
                trace=after)


def _migration_rows(group: str, m: Machine, other: Machine | None, end: int) -> list[Row]:
    o_source = _dirty(other, "migration") if other is not None else None
    o_bitmap = _pages(other.state()["migration"]["bitmap"]) if other is not None else None
    rows = [_bits_row("MIGRATION client bitmap", _dirty(m, "migration"), o_source, 0, end, word_values=True,
                      short="mig client"),
            _bits_row("migration_bitmap", _pages(m.state()["migration"]["bitmap"]), o_bitmap, 0, end,
                      word_values=True, short="mig bitmap"),
            _tlb_row("TLB", m.tlb, other.tlb if other is not None else None, 0, end)]
    for row in rows:
        row.group = group
    return rows


def migration_sync_picture(a: int = 38, b: int = 39) -> Grid:
    """The migration bitmap sync: the migration client's bits moved into
    migration's own bitmap, and the TLB entries of the pages it took."""
    page = TARGET_PAGE_SIZE
    ops = [{"op": "ram_alloc", "size": 100 * page}, {"op": "ram_alloc", "size": 20 * page},
           {"op": "migration_setup"}]
    ops += [{"op": "migration_next", "block": 0, "start": 0} for _ in range(3)]
    for p in (1, 2, 105):
        ops += [{"op": "tlb_fill", "addr": p * page}, {"op": "tcg_write", "addr": p * page, "size": 4}]
    before = _trace(ops, accel="tcg")
    synced = _trace(ops + [{"op": "migration_sync"}], accel="tcg")
    again = _trace(ops + [{"op": "migration_sync"}, {"op": "tcg_write", "addr": 105 * page, "size": 4},
                          {"op": "tcg_write", "addr": 1 * page, "size": 4}], accel="tcg")
    m0 = _machine(a, before)
    end = _npages(m0)
    ma, mb = _machine(a, synced), _machine(b, synced)
    ra, rb = _machine(a, again), _machine(b, again)
    rows = _migration_rows(f"before the sync (stages {a:02d} and {b:02d} alike)", m0, None, end)
    rows += _migration_rows(f"stage {a:02d} after the sync", ma, mb, end)
    rows += _migration_rows(f"stage {b:02d} after the sync", mb, ma, end)
    again_rows = [_bits_row(f"stage {a:02d}", _dirty(ra, "migration"), _dirty(rb, "migration"), 0, end),
                  _bits_row(f"stage {b:02d}", _dirty(rb, "migration"), _dirty(ra, "migration"), 0, end)]
    for row in again_rows:
        row.group = "MIGRATION client after the guest writes pages 1 and 105 again"
    notes = [("migration_dirty_pages after the sync", str(ma.stage.migration_dirty_pages),
              str(mb.stage.migration_dirty_pages), ma.stage.migration_dirty_pages != mb.stage.migration_dirty_pages)]
    return Grid("migration-sync", f"The migration bitmap sync, stages {a:02d} and {b:02d}",
                f"Two RAM blocks: pages 0-99, on a 64-page boundary but not a whole number of words, and pages "
                f"100-119. After migration setup pages 0-2 are sent; then the guest writes pages 1, 2 and 105 "
                f"under TCG, which makes their TLB entries dirty (D). A sync moves the MIGRATION client's bits "
                f"into migration_bitmap and must make each page's entry NOTDIRTY (N) again, or the next write to "
                f"that page sets no bit. Page 105 belongs to the second block, which starts off a 64-page "
                f"boundary, so its own sync walks it page by page and makes its entry NOTDIRTY, as at stage "
                f"{a:02d}. At stage {b:02d} the first block's sync takes its last word (pages 64-127) whole, page "
                f"105 with it: migration_bitmap and migration_dirty_pages come out the same, and the only sign "
                f"of it is page 105's TLB entry, which the word path leaves dirty (D).",
                0, end, rows + again_rows, {1: "written", 2: "written", 105: "written"}, notes,
                ("bits", "tlb"), again, edges={100: "the second RAM block starts"})


# Which pictures show the structure each commit changes.
def stage_pictures(n: int) -> list[Grid | FlagBytes]:
    """The generated pictures of stage ``n``'s page: the structure its commit
    changes, each drawn from a replay on stages ``n - 1`` and ``n``."""
    if n in (11, 14):
        return [flag_byte_picture(n - 1, n)]
    if n == 19:
        return [flag_byte_picture(18), bytes_and_bitmaps_picture(18, 19)]
    if n == 30:
        return [tlb_reset_picture(29, 30)]
    if n in (35, 36, 37):
        return [kvm_log_picture(n - 1, n, 4096), kvm_log_picture(n - 1, n, 65536)]
    if n in (38, 39):
        return [migration_sync_picture(n - 1, n)]
    return []


# ------------------------------------------------------------------ a register entry's replay, drawn
def _state_pages(state: dict[str, Any]) -> int:
    """How many pages a picture of this state needs to show."""
    ends = [o + ln for o, ln in state.get("blocks", [])]
    npages = max(ends, default=0) >> TARGET_PAGE_BITS
    for c in CLIENTS:
        v = state.get("dirty", {}).get(c, [])
        npages = max(npages, max(_flat_pages(v), default=-1) + 1)
    return npages


def _flat_pages(v: list) -> set[int]:
    """Pages from a list of [first, end) ranges (a replay) or of pages (a call)."""
    if v and isinstance(v[0], list):
        return _pages(v)
    return set(v)


def _kvm_pages(state: dict[str, Any], host_page_size: int) -> set[int]:
    hp = host_page_size // TARGET_PAGE_SIZE
    out = set()
    for offset, ranges in state.get("kvm_log", []):
        for h in _pages(ranges):
            first = (offset >> TARGET_PAGE_BITS) + h * hp
            out |= set(range(first, first + hp))
    return out


def entry_picture(replay: dict[str, Any], kind: str) -> Grid | None:
    """A register entry's replay (``model.entry_replay``'s "trace" or "call"
    part) drawn over its pages: per observable that holds pages (the three
    clients, the TLB, the TB pages, the KVM log, the migration bitmap), the
    row of each stage, the cells that differ outlined and the rows labelled;
    every other observable that differs as a labelled note."""
    part = replay[kind]
    a, b = replay["before_stage"], replay["after_stage"]
    before, after = part["before"], part["after"]
    sa, sb = before.get("state", before), after.get("state", after)
    if "dirty" not in sa:
        return None
    source = part.get("trace") if kind == "trace" else part.get("call")
    host = source.get("config", {}).get("host_page_size", 4096) if isinstance(source, dict) else 4096
    end = max(_state_pages(sa), _state_pages(sb), 1)
    if kind == "call":                             # the call's state: blocks of these sizes from page 0
        call = json.loads(source) if isinstance(source, str) else source or {}
        end = max(end, sum(call.get("sizes", [])) >> TARGET_PAGE_BITS)
    end = min(end, MAX_PAGES)
    rows: list[Row] = []

    def pair(name: str, short: str, pa: set[int], pb: set[int]) -> None:
        if not pa and not pb:
            return
        rows.append(_bits_row(f"{name}, stage {a:02d}", pa, pb, 0, end, short=f"{short} {a:02d}"))
        rows.append(_bits_row(f"{name}, stage {b:02d}", pb, pa, 0, end, short=f"{short} {b:02d}"))

    for c in CLIENTS:
        pair(f"{c} dirty", SHORT[c], _flat_pages(sa["dirty"][c]), _flat_pages(sb["dirty"][c]))
    if "tlb" in sa:
        ta, tb = _tlb_of(sa["tlb"]), _tlb_of(sb["tlb"])
    else:                                          # an API call: the pages with a NOTDIRTY entry
        ta = {p: True for p in sa.get("tlb_notdirty", [])}
        tb = {p: True for p in sb.get("tlb_notdirty", [])}
        for p in range(end):
            ta.setdefault(p, False)
            tb.setdefault(p, False)
    if ta or tb:
        rows.append(_tlb_row(f"TLB, stage {a:02d}", ta, tb, 0, end, short=f"TLB {a:02d}"))
        rows.append(_tlb_row(f"TLB, stage {b:02d}", tb, ta, 0, end, short=f"TLB {b:02d}"))
    pair("TB pages", "TB", _flat_pages(sa.get("tb_pages", [])), _flat_pages(sb.get("tb_pages", [])))
    pair("KVM log", "log", _kvm_pages(sa, host), _kvm_pages(sb, host))
    if sa.get("migration") or sb.get("migration"):
        pair("migration_bitmap", "mbitmap", _pages((sa.get("migration") or {}).get("bitmap", [])),
             _pages((sb.get("migration") or {}).get("bitmap", [])))
    notes = []
    for row in part.get("rows", []):
        name = row["name"]
        if name.startswith(("dirty.", "tlb", "tb_pages", "kvm_log")) or name == "migration" and not row["differs"]:
            continue
        if row["differs"] or name.startswith("repr:"):
            notes.append((name, _short(row["before"]), _short(row["after"]), row["differs"]))
    shown = {r.label.rsplit(",", 1)[0] for r in rows if r.differs}
    what = ", ".join(sorted(shown)) if shown else "no page row"
    caption = (f"The entry's {'minimal trace' if kind == 'trace' else 'minimal call'} on stages {a:02d} and {b:02d}: "
               f"one cell per page (pages 0-{end - 1}), a row per stage for each observable that holds pages; "
               f"outlined: the cells that differ ({what}).")
    if notes:
        caption += " Below: the other observables that differ" + (" and the representation itself." if any(
            n[0].startswith("repr:") for n in notes) else ".")
    return Grid(f"entry-{replay['id']}-{kind}", f"What differs, drawn: stage {a:02d} against stage {b:02d}",
                caption, 0, end,
                rows, {}, notes, ("bits", "tlb") if ta or tb else ("bits",),
                part.get("trace") if kind == "trace" else None)


def _short(value: Any, width: int = 70) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= width else text[:width - 3] + "..."


# ------------------------------------------------------------------ SVG
CW, CH, GAP = 11, 15, 3              # cell width and height, space between rows
FONT = 'font-family="ui-monospace, DejaVu Sans Mono, monospace"'


def _text_width(text: str, size: int) -> int:
    """The width in pixels a line of ``text`` needs at ``size`` px in FONT
    (a monospace glyph is 0.6 em wide in DejaVu Sans Mono), with the margin."""
    return 16 + int(0.62 * size * len(text))
COLOURS = {"on": "#23395d", "off": "#f4f6f9", "N": "#e6a100", "D": "#5c8a3a", "-": "#ffffff",
           "differs": "#d00000", "grid": "#c9ced6", "word": "#7a8699", "mark": "#b35c00"}


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _label_width(labels: list[str]) -> int:
    return 16 + int(6.7 * max([len(x) for x in labels] + [8]))


def _grid_svg(g: Grid) -> str:
    bands = list(range(g.first - g.first % WORD, g.end, WORD))
    cols = WORD if len(bands) > 1 else g.end - g.first
    cw = CW if cols > 16 else 40                         # a few pages: wide enough to read each
    labels = [("  " if r.group else "") + r.label + (" (differs)" if r.differs else "") for r in g.rows] \
        + [b[0] for b in g.bars]
    lw = _label_width(labels)
    value_w = 140 if any(r.word_values for r in g.rows) else 0
    width = lw + cols * cw + value_w + 20
    parts: list[str] = []
    y = 8
    for k0 in bands:
        a, b = max(k0, g.first), min(k0 + WORD, g.end)
        colstart = k0 if len(bands) > 1 else g.first       # a lone short band starts at its first page

        def x_of(page: float) -> float:
            return lw + (page - colstart) * cw

        parts.append(f'<text x="4" y="{y + 11}" font-size="12" font-weight="bold" {FONT}>word {k0 // WORD}: '
                     f'{_span("page", a, b - 1)}, {_span("bit", a - k0, b - 1 - k0)}</text>')
        y += 18
        for p in range(a, b):
            x = x_of(p)
            ends = p == a or (p == b - 1 and (b - 1 - a >= 3 or cw > CW))
            if ends or p % 16 == 0 or p in g.marks or p in g.edges or cw > CW:
                parts.append(f'<text x="{x + cw / 2:.1f}" y="{y + 8}" font-size="8" text-anchor="middle" '
                             f'{FONT} fill="#555">{p}</text>')
                parts.append(f'<text x="{x + cw / 2:.1f}" y="{y + 17}" font-size="7" text-anchor="middle" '
                             f'{FONT} fill="#888">{p - k0}</text>')
            if p in g.marks:
                parts.append(f'<path class="mark" d="M{x + cw / 2:.1f} {y + 24} l-3.5 -5 h7 z" '
                             f'fill="{COLOURS["mark"]}"><title>page {p}: {_esc(g.marks[p])}</title></path>')
        parts.append(f'<text x="4" y="{y + 8}" font-size="8" {FONT} fill="#555">page</text>')
        parts.append(f'<text x="4" y="{y + 17}" font-size="7" {FONT} fill="#888">bit i of word {k0 // WORD}</text>')
        y += 26
        top = y
        for label, first, last, differs in g.bars:        # byte ranges, in pages
            lo, hi = max(first, a), min(last, b)
            colour = COLOURS["differs"] if differs else "#222"
            parts.append(f'<g class="bar" data-bar="{_esc(label)}"><text x="4" y="{y + CH - 4}" font-size="11" '
                         f'{FONT} fill="{colour}">{_esc(label)}</text>')
            if hi > lo:
                parts.append(f'<rect x="{x_of(lo):.1f}" y="{y + 3}" width="{(hi - lo) * cw:.1f}" height="{CH - 6}" '
                             f'fill="{COLOURS["mark"]}" opacity="0.75"><title>{_esc(label)}</title></rect>')
            parts.append("</g>")
            y += CH + GAP
        group = None
        for row in g.rows:
            if row.group and row.group != group:
                y += 4
                parts.append(f'<text x="4" y="{y + 10}" font-size="11" font-style="italic" {FONT} '
                             f'fill="#23395d">{_esc(row.group)}</text>')
                y += 14
            group = row.group
            differs = _band_differs(row, a, b)
            colour = COLOURS["differs"] if differs else "#222"
            indent = 14 if row.group else 4
            parts.append(f'<g class="row{" differs" if differs else ""}" data-row="{_esc(row.label)}"'
                         f'{" data-group=" + chr(34) + _esc(row.group) + chr(34) if row.group else ""}>'
                         f'<text x="{indent}" y="{y + CH - 4}" font-size="11" {FONT} fill="{colour}">'
                         f'{_esc(row.label + (" (differs)" if differs else ""))}</text>')
            p = a
            while p < b:
                cell = row.cells.get(p)
                span = min(row.span, b - p) if cell is not None and row.span > 1 else 1
                if cell is not None:
                    parts.append(_cell_svg(cell, p, x_of(p), y, span, cw))
                p += span
            if row.word_values:
                word = sum(1 << (q - k0) for q in range(a, b) if q in row.cells and row.cells[q].on)
                parts.append(f'<text class="word-value" x="{lw + cols * cw + 8}" y="{y + CH - 4}" font-size="10" '
                             f'{FONT} fill="#555">{word:#018x}</text>')
            parts.append("</g>")
            y += CH + GAP
        for edge in (k0, k0 + WORD):                     # the word's edges: before bit 0, after bit 63
            if a <= edge <= b:
                parts.append(f'<line class="word-edge" x1="{x_of(edge)}" y1="{top - 4}" x2="{x_of(edge)}" '
                             f'y2="{y}" stroke="{COLOURS["word"]}" stroke-width="1.5" stroke-dasharray="3 2"/>')
        for page, what in g.edges.items():              # block boundaries
            if a < page < b:
                parts.append(f'<line class="block-edge" x1="{x_of(page)}" y1="{top - 8}" x2="{x_of(page)}" '
                             f'y2="{y}" stroke="{COLOURS["mark"]}" stroke-width="2"><title>page {page}: '
                             f'{_esc(what)}</title></line>')
        y += 10
    for label, before, after, differs in g.notes:
        colour = COLOURS["differs"] if differs else "#222"
        text = f'{label}{" (differs)" if differs else ""}: {before} \u2192 {after}'
        parts.append(f'<text class="note" x="4" y="{y + 11}" font-size="11" {FONT} fill="{colour}">{_esc(text)}</text>')
        y += 16
        width = max(width, _text_width(text, 11))
    for page, what in sorted({**g.marks, **g.edges}.items()):
        sign = "\u25bc" if page in g.marks else "|"
        text = f'{sign} page {page}: {g.marks.get(page) or g.edges[page]}'
        parts.append(f'<text x="4" y="{y + 11}" font-size="10" {FONT} fill="{COLOURS["mark"]}">{_esc(text)}</text>')
        width = max(width, _text_width(text, 10))
        y += 14
    for key in g.legend:                              # the SVG's own legend: squares, not characters
        text = LEGENDS[key][SVG]
        parts.append(f'<text class="legend" x="4" y="{y + 11}" font-size="10" {FONT} fill="#555">'
                     f'{_esc(text)}</text>')
        width = max(width, _text_width(text, 10))
        y += 14
    height = y + 4
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="picture" id="pic-{_esc(g.id)}" role="img" '
            f'aria-label="{_esc(g.title)}" viewBox="0 0 {width} {height}" width="{width}" height="{height}">'
            f'<title>{_esc(g.title)}</title>' + "".join(parts) + "</svg>")


def _cell_svg(cell: Cell, page: int, x: float, y: int, span: int, cw: int) -> str:
    fill = COLOURS[cell.mark] if cell.mark in ("N", "D") else COLOURS["on"] if cell.on else COLOURS["off"]
    stroke, sw = (COLOURS["differs"], 2) if cell.differs else (COLOURS["grid"], 0.6)
    cls = "cell" + (" on" if cell.on else "") + (" differs" if cell.differs else "")
    title = f"<title>{_esc(cell.title)}</title>" if cell.on or cell.differs or cell.mark not in (".", "#") else ""
    out = (f'<rect class="{cls}" data-page="{page}" data-mark="{_esc(cell.mark)}" x="{x + 0.5:.1f}" '
           f'y="{y + 0.5}" width="{span * cw - 1}" height="{CH - 1}" fill="{fill}" stroke="{stroke}" '
           f'stroke-width="{sw}">{title}</rect>')
    if cell.mark not in ("#", ".", "-") and not cell.mark.isspace():
        colour = "#fff" if cell.on or cell.mark in ("N", "D") else "#333"
        out += (f'<text x="{x + span * cw / 2:.1f}" y="{y + CH - 4}" font-size="9" text-anchor="middle" '
                f'{FONT} fill="{colour}">{_esc(cell.mark)}</text>')
    return out


def _byte_svg(fb: FlagBytes) -> str:
    bw, bh, lw = 74, 26, 90
    width = lw + 8 * bw + 90
    parts = []
    y = 6
    for bit in range(7, -1, -1):
        x = lw + (7 - bit) * bw
        parts.append(f'<text x="{x + bw / 2}" y="{y + 11}" font-size="11" text-anchor="middle" {FONT} '
                     f'fill="#333">bit {bit}</text>')
        parts.append(f'<text x="{x + bw / 2}" y="{y + 23}" font-size="9" text-anchor="middle" {FONT} '
                     f'fill="#888">{1 << bit:#04x}</text>')
    y += 30
    for v in fb.views:
        parts.append(f'<text x="4" y="{y + bh / 2 + 4}" font-size="12" font-weight="bold" {FONT}>stage {v.stage:02d}</text>')
        for bit in range(7, -1, -1):
            x = lw + (7 - bit) * bw
            on = (v.value >> bit) & 1
            name = v.names[bit]
            fill = (COLOURS["on"] if name != "spare" else "#8896ab") if on else COLOURS["off"]
            parts.append(f'<rect class="bit{" on" if on else ""}" data-stage="{v.stage}" data-bit="{bit}" '
                         f'data-name="{_esc(name)}" x="{x + 1}" y="{y}" width="{bw - 2}" height="{bh}" '
                         f'fill="{fill}" stroke="{COLOURS["grid"]}"><title>stage {v.stage:02d}, bit {bit}: '
                         f'{_esc(name)} = {on}</title></rect>')
            parts.append(f'<text x="{x + bw / 2}" y="{y + bh / 2 + 5}" font-size="13" text-anchor="middle" '
                         f'{FONT} fill="{"#fff" if on else "#333"}">{on}</text>')
            parts.append(f'<text x="{x + bw / 2}" y="{y + bh + 12}" font-size="10" text-anchor="middle" '
                         f'{FONT} fill="{"#222" if name != "spare" else "#888"}">{_esc(name)}</text>')
        parts.append(f'<text x="{lw + 8 * bw + 10}" y="{y + bh / 2 + 5}" font-size="13" {FONT}>= {v.value:#04x}</text>')
        y += bh + 24
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="picture" id="pic-{_esc(fb.id)}" role="img" '
            f'aria-label="{_esc(fb.title)}" viewBox="0 0 {width} {y}" width="{width}" height="{y}">'
            f'<title>{_esc(fb.title)}</title>' + "".join(parts) + "</svg>")


# ------------------------------------------------------------------ the cost plot of the book
def cost_drops(bench: dict[str, Any]) -> dict[int, list[str]]:
    """The rungs where a cost of the model falls to less than half and stays
    there: rung -> the operations."""
    import statistics
    from .bench import OPS
    recs = sorted(bench["stages"], key=lambda r: r["stage"])
    drops: dict[int, list[str]] = {}
    for name in OPS:
        ys = [r[f"{name}_ns_per_page"] for r in recs]
        for i in range(1, len(ys)):
            before = statistics.median(ys[max(0, i - 5):i])
            if ys[i] <= ys[i - 1] / 2 and ys[i] <= before / 2 and statistics.median(ys[i:i + 3]) <= before / 2:
                drops.setdefault(recs[i]["stage"], []).append(name)
    return drops


def cost_plot(bench: dict[str, Any], path) -> dict[str, Any]:
    """The book's plot of the model's cost per page by stage (matplotlib,
    PNG): the y axis fits the data, each fall is labelled beside it, and
    nothing is cut off.  Returns what it drew: the axis limits, the data's
    range and the labels."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .bench import OP_LABEL, OPS

    recs = sorted(bench["stages"], key=lambda r: r["stage"])
    xs = [r["stage"] for r in recs]
    values = [r[f"{op}_ns_per_page"] for r in recs for op in OPS if r.get(f"{op}_ns_per_page")]
    reference = (bench.get("reference") or {}).get("sync_ns_per_page")
    if reference:
        values.append(reference)
    lo, hi = min(v for v in values if v > 0), max(values)
    fig, ax = plt.subplots(figsize=(11, 6))
    markers = {"sync": "o-", "setup": "s-", "set_range": "^-", "clear_range": "v-", "get_dirty": "d-"}
    for op in OPS:
        ax.semilogy(xs, [r[f"{op}_ns_per_page"] for r in recs], markers[op], ms=4, lw=1.4, label=OP_LABEL[op])
    if reference:
        ax.axhline(reference, color="k", ls="--", lw=1, label="plain numpy, the same word work (reference)")
    ylim = (lo / 3, hi * 3)
    ax.set_ylim(*ylim)
    ax.set_xlim(-0.8, LAST_STAGE + 0.8)
    labels = []
    for n, ops in sorted(cost_drops(bench).items()):
        after = min(next(r for r in recs if r["stage"] == n)[f"{op}_ns_per_page"] for op in ops)
        text = f"{n:02d}: " + ", ".join(OP_LABEL[op] for op in ops)
        labels.append(text)
        ax.axvline(n, color="0.85", lw=0.8, zorder=0)
        ax.annotate(text, (n, after), xytext=(-6, -4), textcoords="offset points", ha="right", va="top",
                    fontsize=8, rotation=0, bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "0.8"})
    ax.set_xticks(range(0, LAST_STAGE + 1))
    ax.tick_params(axis="x", labelsize=7)
    ax.set_xlabel("stage")
    ax.set_ylabel("ns per page, this Python model (log scale)")
    ax.set_title("Cost per page by stage in this Python model (not QEMU's timings)", fontsize=11)
    ax.grid(True, which="major", axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.savefig(str(path), dpi=100, bbox_inches="tight")
    plt.close(fig)
    return {"ylim": ylim, "data": (lo, hi), "labels": labels}
