"""What a replay will cost, known before it starts: the pages a stage walks
one at a time.

Until the series rewrote them with bitmap operations, several functions
walk their range page by page in Python, about a microsecond or more per
page: a 1 TiB ``ram_alloc`` (2**28 pages) takes minutes on stage 0, and a
trace that is cheap on stage 39 can take hours under ``replay --all``.  The
command line adds up these walks for the stages it is about to run and
refuses, before running anything, when the total passes a limit
(``--max-pages``, or ``DIRTY_LADDER_MAX_PAGES``).  The library
(:func:`dirty_ladder.machine.replay`) has no limit.

The table below says, for each op that walks, the first stage that no
longer does and what it walks; ``tests/test_first_use.py`` checks it
against the stages themselves, by counting the lines they execute on two
block sizes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from stages import LAST

from .trace import (
    TARGET_PAGE_BITS, TARGET_PAGE_SIZE, Block, Trace, find_ram_offset, insert_block, last_ram_offset, page_align,
)

# op -> (the first stage that no longer walks it page by page, what it walks):
#   "range": the target pages of [addr, addr + len), or of the new block for ram_alloc
#   "ram":   every target page below the end of RAM (the migration bitmap sync)
# (Before stage 37 kvm_sync also loops over the KVM log, but a 64-bit word
# at a time, skipping zero words: 64 times fewer steps, not counted.)
PAGE_WALKS: dict[str, tuple[int, str]] = {
    "ram_alloc": (27, "range"),              # set_dirty_range: bitmap_set from rung 27
    "set_dirty": (27, "range"),
    "get_dirty": (26, "range"),              # find_next_bit from rung 26
    "test_and_clear_dirty": (28, "range"),   # ... then the clear: bitmap_clear from rung 28
    "reset_dirty": (28, "range"),
    "migration_setup": (39, "ram"),          # migration_bitmap_sync: 64 bits at a time from rung 39
    "migration_sync": (39, "ram"),
}

DEFAULT_MAX_PAGES = 300_000_000     # minutes, not hours: about 1 to 10 us a page
ENVIRONMENT = "DIRTY_LADDER_MAX_PAGES"


@dataclass(frozen=True)
class Walk:
    """The pages one op walks one at a time, on the stages below ``until``."""
    index: int
    op: str
    pages: int
    until: int


def walks(trace: Trace) -> list[Walk]:
    """Every op of ``trace`` that walks pages on some stage, with how many.
    Replays only the block layout (which no stage changes), as validation does."""
    blocks: list[Block] = []
    out = []
    for index, op in enumerate(trace.ops):
        name = op["op"]
        if name == "ram_alloc":
            block = Block(find_ram_offset(blocks, page_align(op["size"])), page_align(op["size"]))
            insert_block(blocks, block)
            pages = block.length >> TARGET_PAGE_BITS
        elif name == "ram_free":
            blocks[:] = [b for b in blocks if b.offset != op["offset"]]
            continue
        elif name not in PAGE_WALKS:
            continue
        elif PAGE_WALKS[name][1] == "range":
            pages = (page_align(op["addr"] + op["len"]) - (op["addr"] & -TARGET_PAGE_SIZE)) >> TARGET_PAGE_BITS
        else:
            pages = last_ram_offset(blocks) >> TARGET_PAGE_BITS
        out.append(Walk(index, name, pages, PAGE_WALKS[name][0]))
    return out


def pages_walked(trace: Trace, stages: list[int]) -> int:
    """The pages ``stages`` walk one at a time, in all, to replay ``trace``."""
    found = walks(trace)
    return sum(w.pages for n in stages for w in found if n < w.until)


def limit(option: int | None, environ: Mapping[str, str]) -> int:
    """The limit in force: ``--max-pages`` if given, else the environment's,
    else the default.  A bad value in the environment is a ValueError."""
    if option is not None:
        return option
    text = environ.get(ENVIRONMENT, "").strip()
    if not text:
        return DEFAULT_MAX_PAGES
    if not text.isdigit():
        raise ValueError(f"{ENVIRONMENT} must be a whole number of pages, not {text!r}")
    return int(text)


def refusal(trace: Trace, stages: list[int], max_pages: int) -> str | None:
    """Why replaying ``trace`` on ``stages`` is refused under ``max_pages``, in
    one line naming the limit and how to raise it; None when it is not."""
    total = pages_walked(trace, stages)
    if total <= max_pages:
        return None
    worst = max(walks(trace), key=lambda w: w.pages * sum(1 for n in stages if n < w.until))
    where = f"stage {stages[0]}" if len(stages) == 1 else f"stages {stages[0]}-{stages[-1]}"
    cheap = [n for n in range(worst.until, LAST + 1) if pages_walked(trace, [n]) <= max_pages]
    hint = f", or replay on stage {cheap[0]} or later" if cheap and len(stages) == 1 else ""
    return (f"{where} would walk {total:,} pages one at a time (the most: op {worst.index}, {worst.op}, "
            f"{worst.pages:,} pages at each stage below {worst.until}), over the limit of {max_pages:,} "
            f"(1 to 10 us a page); raise it with --max-pages N or {ENVIRONMENT}=N{hint}")
