"""How an observer reads and writes a stage's dirty state, per representation.

These are not part of any stage: the machine uses them to report the pages
dirty for each client, and the API-level tests to load random states.  They
know the two representations of the series: one byte of flags per page in
``ram_list.phys_dirty`` (stages 00-18), three bitmaps in
``ram_list.dirty_memory`` (stages 19-39).  Which bit of the byte belongs to a
client is read off the stage's own constants (``*_DIRTY_FLAG`` while they
exist, ``1 << DIRTY_MEMORY_*`` after stage 13), so stage 14's move of the
migration bit is seen here too.
"""

from __future__ import annotations

import numpy as np

from stages.bitmap import BITS_PER_LONG, BITS_TO_LONGS, bits_of, words_from_bits

CLIENTS = ("vga", "code", "migration")


def representation(stage) -> str:
    return "bitmaps" if hasattr(stage.ram_list, "dirty_memory") else "bytes"


def client_flag(stage, client: str) -> int:
    """The bit of the flag byte that holds ``client`` at a byte stage."""
    name = client.upper()
    if hasattr(stage, name + "_DIRTY_FLAG"):
        return getattr(stage, name + "_DIRTY_FLAG")
    return 1 << getattr(stage, "DIRTY_MEMORY_" + name)


def dirty_pages_of(stage, client: str, npages: int) -> np.ndarray:
    """A bool per page below ``npages``: is the page dirty for ``client``?"""
    if representation(stage) == "bytes":
        data = stage.ram_list.phys_dirty[:npages]
        out = (data & client_flag(stage, client)) != 0
    else:
        bitmap = stage.ram_list.dirty_memory[getattr(stage, "DIRTY_MEMORY_" + client.upper())]
        out = bits_of(bitmap, min(npages, bitmap.size * BITS_PER_LONG))
    if out.size < npages:           # never grown that far: reads as clean
        out = np.concatenate([out, np.zeros(npages - out.size, dtype=bool)])
    return out


def load_dirty(stage, clients: dict[str, np.ndarray], spare_bits: np.ndarray | None = None) -> None:
    """Replace the stage's dirty state by the given per-client pages.

    ``spare_bits`` (bytes stages only) sets, per page, every bit of the byte
    that no client uses, as the ``0xff`` writes of the early stages do.
    """
    npages = len(next(iter(clients.values())))
    if representation(stage) == "bytes":
        data = np.zeros(npages, dtype=np.uint8)
        used = 0
        for client, pages in clients.items():
            flag = client_flag(stage, client)
            used |= flag
            data[np.asarray(pages, dtype=bool)] |= np.uint8(flag)
        if spare_bits is not None:
            data[np.asarray(spare_bits, dtype=bool)] |= np.uint8(0xFF & ~used)
        stage.ram_list.phys_dirty = data
    else:
        maps = [np.zeros(BITS_TO_LONGS(npages), dtype=np.uint64) for _ in range(3)]
        for client, pages in clients.items():
            maps[getattr(stage, "DIRTY_MEMORY_" + client.upper())] = words_from_bits(np.asarray(pages, dtype=bool))
        stage.ram_list.dirty_memory = maps


def raw_state(stage) -> bytes:
    """The representation itself, byte for byte (bytes, or the three bitmaps' words)."""
    if representation(stage) == "bytes":
        return stage.ram_list.phys_dirty.tobytes()
    return b"".join(m.astype("<u8").tobytes() + b"|" for m in stage.ram_list.dirty_memory)
