"""QEMU's bitmap.h and bitops.h, as the series used them, on numpy words.

A bitmap is a numpy ``uint64`` array; bit ``i`` of word ``k`` is bit number
``64 * k + i`` (QEMU's ``unsigned long`` bitmaps on a 64-bit host).  These
helpers existed before the series; stage 18 adds ``bitmap_zero_extend`` in its
own module, as its commit added it to ``include/qemu/bitmap.h``.

The single-bit helpers work on one word, like their C versions.  The range
helpers (``bitmap_set``, ``bitmap_clear``, ``find_next_bit``) work a word or a
slice of words at a time with numpy, as QEMU's do with whole ``longs``: that is
the cost model the later stages of the series rely on.

C would scribble past the end of the array on a bad index; numpy would wrap a
negative one round to the end.  Both are refused here with ``IndexError``
naming the bit number, before anything is written.
"""

from __future__ import annotations

import numpy as np

BITS_PER_LONG = 64
HOST_LONG_BITS = 64
WORD_MASK = (1 << BITS_PER_LONG) - 1
ALL_ONES = np.uint64(WORD_MASK)


def BIT_WORD(nr: int) -> int:
    return nr // BITS_PER_LONG


def BIT_MASK(nr: int) -> int:
    return 1 << (nr % BITS_PER_LONG)


def BITS_TO_LONGS(nr: int) -> int:
    return (nr + BITS_PER_LONG - 1) // BITS_PER_LONG


def bitmap_new(nbits: int) -> np.ndarray:
    """``bitmap_new``: a zeroed bitmap of ``nbits`` bits."""
    if nbits < 0:
        raise ValueError(f"bitmap_new: nbits {nbits} is negative")
    return np.zeros(BITS_TO_LONGS(nbits), dtype=np.uint64)


def _check_bit(addr: np.ndarray, nr: int, what: str) -> None:
    if nr < 0 or nr >= addr.size * BITS_PER_LONG:
        raise IndexError(
            f"{what}: bit {nr} is outside the bitmap of {addr.size * BITS_PER_LONG} bits"
        )


def _check_range(addr: np.ndarray, start: int, nr: int, what: str) -> None:
    if start < 0 or nr < 0 or start + nr > addr.size * BITS_PER_LONG:
        raise IndexError(
            f"{what}: bits [{start}, {start + nr}) are outside the bitmap of "
            f"{addr.size * BITS_PER_LONG} bits"
        )


def test_bit(nr: int, addr: np.ndarray) -> bool:
    _check_bit(addr, nr, "test_bit")
    return bool((int(addr[nr >> 6]) >> (nr & 63)) & 1)


def set_bit(nr: int, addr: np.ndarray) -> None:
    _check_bit(addr, nr, "set_bit")
    addr[nr >> 6] |= np.uint64(1 << (nr & 63))


def clear_bit(nr: int, addr: np.ndarray) -> None:
    _check_bit(addr, nr, "clear_bit")
    addr[nr >> 6] &= np.uint64(WORD_MASK ^ (1 << (nr & 63)))


def test_and_set_bit(nr: int, addr: np.ndarray) -> bool:
    _check_bit(addr, nr, "test_and_set_bit")
    old = test_bit(nr, addr)
    set_bit(nr, addr)
    return old


def ctpopl(word: int) -> int:
    """Population count of one 64-bit word."""
    return int(word).bit_count()


def ctzl(word: int) -> int:
    """Count trailing zeros of a word (``ffsl(word) - 1``); 64 for a zero
    word, as QEMU's ctz64 (host-utils.h) answers."""
    word = int(word)
    if word == 0:
        return BITS_PER_LONG
    return (word & -word).bit_length() - 1


def _first_word_mask(start: int) -> int:
    return (WORD_MASK << (start % BITS_PER_LONG)) & WORD_MASK


def _last_word_mask(end: int) -> int:
    rem = end % BITS_PER_LONG
    return WORD_MASK if rem == 0 else (1 << rem) - 1


def bitmap_set(map: np.ndarray, start: int, nr: int) -> None:
    """Set bits ``[start, start + nr)``, whole words with one numpy store."""
    _check_range(map, start, nr, "bitmap_set")
    if nr == 0:
        return
    end = start + nr
    first, last = start >> 6, (end - 1) >> 6
    if first == last:
        map[first] |= np.uint64(_first_word_mask(start) & _last_word_mask(end))
        return
    map[first] |= np.uint64(_first_word_mask(start))
    map[first + 1:last] = ALL_ONES
    map[last] |= np.uint64(_last_word_mask(end))


def bitmap_clear(map: np.ndarray, start: int, nr: int) -> None:
    """Clear bits ``[start, start + nr)``, whole words with one numpy store."""
    _check_range(map, start, nr, "bitmap_clear")
    if nr == 0:
        return
    end = start + nr
    first, last = start >> 6, (end - 1) >> 6
    if first == last:
        map[first] &= np.uint64(WORD_MASK ^ (_first_word_mask(start) & _last_word_mask(end)))
        return
    map[first] &= np.uint64(WORD_MASK ^ _first_word_mask(start))
    map[first + 1:last] = 0
    map[last] &= np.uint64(WORD_MASK ^ _last_word_mask(end))


def find_next_bit(addr: np.ndarray, size: int, offset: int) -> int:
    """The first set bit at or after ``offset`` and below ``size``, else ``size``.

    As QEMU's util/bitops.c: an offset at or past ``size`` returns ``size``.
    Words are searched with ``np.flatnonzero``, not bit by bit.
    """
    if offset < 0 or size < 0:
        raise IndexError(f"find_next_bit: negative offset {offset} or size {size}")
    if offset >= size:
        return size
    if BITS_TO_LONGS(size) > addr.size:
        raise IndexError(
            f"find_next_bit: size {size} is past the bitmap of {addr.size * BITS_PER_LONG} bits"
        )
    word = offset >> 6
    first = int(addr[word]) & _first_word_mask(offset)
    if first:
        return min(word * BITS_PER_LONG + ctzl(first), size)
    rest = np.flatnonzero(addr[word + 1:BITS_TO_LONGS(size)])
    if rest.size == 0:
        return size
    k = word + 1 + int(rest[0])
    return min(k * BITS_PER_LONG + ctzl(int(addr[k])), size)


def each_set_bit_le(bitmap, nwords: int):
    """The bit numbers set in the first ``nwords`` little-endian words, lowest
    first, found as kvm-all.c finds them: skip zero words, then
    ``j = ffsl(c) - 1; c &= ~(1ul << j)`` until the word is empty.  One step
    per set bit: the cost the series' KVM sync had until stage 37."""
    for i in range(nwords):
        if bitmap[i] != 0:
            c = int(bitmap[i])                 # leul_to_cpu
            while c != 0:
                j = ctzl(c)                    # ffsl(c) - 1
                c &= ~(1 << j)
                yield i * HOST_LONG_BITS + j


def bits_of(addr: np.ndarray, nbits: int) -> np.ndarray:
    """The first ``nbits`` bits as a bool array (for observers, not for stages)."""
    as_bytes = addr.astype("<u8", copy=False).view(np.uint8)
    return np.unpackbits(as_bytes, bitorder="little")[:nbits].astype(bool)


def words_from_bits(bits: np.ndarray) -> np.ndarray:
    """Pack a bool array into a bitmap of 64-bit words (for loaders and tests)."""
    nwords = BITS_TO_LONGS(bits.size)
    padded = np.zeros(nwords * BITS_PER_LONG, dtype=bool)
    padded[:bits.size] = bits
    return np.packbits(padded, bitorder="little").view("<u8").astype(np.uint64)
