"""Random valid traces, for the rung checks, the tests and ``trace random``.

One builder, two sources of choices: :class:`RandomChooser` (a seeded
``random.Random``, for the command line) and the Hypothesis chooser in
``tests/strategies.py`` (shrinkable).  The builder keeps the RAM layout as it
goes, exactly as :func:`dirty_ladder.trace.validate` replays it, so every trace it
emits is valid; ``validate`` is still run on the result as a check.

The choices lean towards the places where the series is delicate: zero
lengths and unaligned addresses, blocks whose offsets are or are not on a
64-page boundary, block lengths that are not a multiple of 64 pages or of the
host page, freed gaps (also at the end of RAM), writes through every path,
and syncs before and after ``migration_setup``.
"""

from __future__ import annotations

import random
from typing import Any, Protocol, Sequence

from .trace import (
    ACCELS, CLIENTS, HOST_PAGE_SIZES, TARGET_PAGE_SIZE, Block, Config, Trace,
    find_ram_offset, insert_block, page_align, validate,
)


class Chooser(Protocol):
    def integer(self, lo: int, hi: int) -> int: ...
    def choice(self, options: Sequence[Any]) -> Any: ...


class RandomChooser:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def integer(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def choice(self, options: Sequence[Any]) -> Any:
        return options[self.rng.randrange(len(options))]


PAGE_COUNTS = (1, 3, 15, 16, 17, 40, 63, 64, 65, 100, 128, 130)
MAX_BLOCKS = 4

# op name -> weight, while RAM may still change / once migration has begun
BEFORE_SETUP = {
    "ram_alloc": 3, "ram_free": 2, "tb_translate": 3, "tlb_fill": 3, "tcg_write": 8,
    "dma_write": 3, "stl_phys_notdirty": 2, "kvm_write": 5, "kvm_sync": 2,
    "get_dirty": 3, "set_dirty": 2, "test_and_clear_dirty": 3, "reset_dirty": 4,
    "is_clean": 2, "log_global_start": 2, "log_global_stop": 1, "migration_setup": 3,
}
AFTER_SETUP = {
    "tb_translate": 3, "tlb_fill": 3, "tcg_write": 10, "dma_write": 3, "stl_phys_notdirty": 3,
    "kvm_write": 6, "kvm_sync": 2, "get_dirty": 3, "set_dirty": 2, "test_and_clear_dirty": 3,
    "reset_dirty": 4, "is_clean": 2, "log_global_start": 1, "log_global_stop": 1,
    "migration_sync": 6, "migration_next": 5,
}


def _weighted(chooser: Chooser, weights: dict[str, int]) -> str:
    names = [name for name, w in weights.items() for _ in range(w)]
    return chooser.choice(names)


def random_config(chooser: Chooser) -> Config:
    return Config(chooser.choice(HOST_PAGE_SIZES), chooser.choice(ACCELS), chooser.choice((False, True)))


def _alloc_size(chooser: Chooser) -> int:
    pages = chooser.choice(PAGE_COUNTS)
    tail = chooser.choice((0, 0, 0, 1, TARGET_PAGE_SIZE // 2))   # rounded up to a page
    return max(1, pages * TARGET_PAGE_SIZE - (TARGET_PAGE_SIZE - tail if tail else 0))


def _addr(chooser: Chooser, block: Block, room: int = 0) -> int:
    """An address in ``block`` with at least ``room`` bytes after it."""
    last = block.length - room
    kind = chooser.choice(("hot", "hot", "page", "byte", "end"))
    if kind == "hot":            # the first pages of a block, where ops meet
        hot_pages = max(1, min(3, last // TARGET_PAGE_SIZE))
        page = chooser.integer(0, hot_pages - 1) * TARGET_PAGE_SIZE
        return block.offset + min(page + chooser.choice((0, 0, 1, 2048, TARGET_PAGE_SIZE - 2, TARGET_PAGE_SIZE - 1)), max(0, last - 1))
    if kind == "page":
        return block.offset + chooser.integer(0, (last - 1) // TARGET_PAGE_SIZE) * TARGET_PAGE_SIZE \
            if last > 0 else block.offset
    if kind == "end":
        return block.offset + max(0, last - chooser.integer(1, 8))
    return block.offset + chooser.integer(0, max(0, last - 1))


def _range(chooser: Chooser, block: Block, zero: bool = True) -> tuple[int, int]:
    addr = _addr(chooser, block)
    room = block.end - addr
    kinds = ("small", "small", "page", "page", "page", "pages", "rest", "rest")
    kind = chooser.choice(kinds + ("zero",) if zero else kinds)
    if kind == "zero":
        length = 0
    elif kind == "small":
        length = chooser.integer(1, min(room, 64))
    elif kind == "page":
        length = min(room, TARGET_PAGE_SIZE)
    elif kind == "pages":
        length = chooser.integer(1, room)
    else:
        length = room
    return addr, length


ADDRESS_OPS = ("tb_translate", "tlb_fill", "is_clean", "tcg_write", "stl_phys_notdirty",
               "dma_write", "set_dirty", "get_dirty", "test_and_clear_dirty", "reset_dirty")


def place_op(chooser: Chooser, name: str, block: Block, addr=None, rng=None,
             clients: Sequence[str] = CLIENTS) -> dict[str, Any]:
    """One of ADDRESS_OPS inside ``block``, valid by construction: an address
    op at ``addr(chooser, block, room)``, a range op over ``rng(chooser, block)``
    (this module's ``_addr`` and ``_range`` unless given), a client from
    ``clients``.  The invariant traces place their ops with their own choices."""
    addr = addr or _addr
    rng = rng or _range
    if name in ("tb_translate", "tlb_fill", "is_clean"):
        return {"op": name, "addr": addr(chooser, block, 1)}
    if name == "tcg_write":
        size = chooser.choice((1, 2, 4))
        at = addr(chooser, block, size)
        at -= max(0, (at % TARGET_PAGE_SIZE) + size - TARGET_PAGE_SIZE)   # stay in the page
        return {"op": name, "addr": at, "size": size}
    if name == "stl_phys_notdirty":
        return {"op": name, "addr": addr(chooser, block, 4)}
    start, length = rng(chooser, block)
    if name in ("dma_write", "set_dirty"):
        return {"op": name, "addr": start, "len": length}
    return {"op": name, "addr": start, "len": length, "client": chooser.choice(clients)}


def build_trace(chooser: Chooser, n_ops: int, config: Config | None = None) -> Trace:
    config = config or random_config(chooser)
    blocks: list[Block] = []
    ops: list[dict[str, Any]] = []
    migrating = False
    # a third of the traces never use an empty range: a zero-length reset
    # differs early in the ladder (rung 30) and would hide what else that
    # rung changes behind it
    zero_lengths = chooser.choice((True, True, False))

    def alloc() -> None:
        size = _alloc_size(chooser)
        offset = find_ram_offset(blocks, page_align(size))
        insert_block(blocks, Block(offset, page_align(size)))
        ops.append({"op": "ram_alloc", "size": size})

    for _ in range(chooser.integer(1, 3)):
        alloc()
    while len(ops) < n_ops:
        name = _weighted(chooser, AFTER_SETUP if migrating else BEFORE_SETUP)
        block = chooser.choice(blocks)
        if name == "ram_alloc":
            if len(blocks) < MAX_BLOCKS:
                alloc()
        elif name == "ram_free":
            if len(blocks) > 1:
                blocks.remove(block)
                ops.append({"op": "ram_free", "offset": block.offset})
        elif name == "kvm_write":
            hps = config.host_page_size
            host_pages = block.length // hps
            if host_pages:
                addr = block.offset + chooser.integer(0, host_pages - 1) * hps + chooser.integer(0, hps - 1)
                ops.append({"op": name, "addr": addr})
        elif name in ADDRESS_OPS:
            ops.append(place_op(chooser, name, block, rng=lambda c, b: _range(c, b, zero_lengths)))
        elif name == "migration_next":
            start = chooser.choice((0, 0, chooser.integer(0, block.length + TARGET_PAGE_SIZE)))
            ops.append({"op": name, "block": block.offset, "start": start})
        else:
            ops.append({"op": name})
            if name == "migration_setup":
                migrating = True
    return validate(Trace(config, ops).as_dict())


def random_trace(seed: int, n_ops: int = 30, config: Config | None = None) -> Trace:
    return build_trace(RandomChooser(seed), n_ops, config)
