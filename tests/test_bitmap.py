"""An oracle for stages/bitmap.py: every function against a plain model.

The ladder's rung checks compare each stage with the one before it, and
every stage shares stages/bitmap.py, so a mistake there is in both neighbours
of every rung and no rung sees it.  These tests check the module on its own,
as QEMU's util/bitmap.c and include/qemu/bitmap.h (and bitops.h,
host-utils.h) mean it, against a model that shares no code with it:

- a bitmap is a numpy bool array, one entry per bit: bit ``i`` of word ``k``
  is entry ``64 * k + i`` (an ``unsigned long`` bitmap on a 64-bit host);
- a word or a mask is a Python int.

The model packs and unpacks words itself (``model_bits``, ``model_words``)
and never calls stages.bitmap.  Sizes and bit numbers are drawn around the
word boundaries (0, 1, 63, 64, 65, 127, 128, 129, ...) and across several
words, and bitmaps hold bits past the range a function is asked about, so a
function that reads or writes past its range is seen.  Every refusal is
checked for its exception, the start of its message and an unchanged bitmap.

Each public function of stages/bitmap.py has tests named ``test_<function>_...``;
``test_every_public_function_has_an_oracle_test`` fails for a new function
without one.  The module is imported whole (``bitmap.test_bit``), never its
names: pytest would collect ``test_bit`` as a test.
"""

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from stages import bitmap

from oracle import oracle_tests, public_functions

WORD = 64
ONES = 2**64 - 1
# Each property runs a fifth of the profile's examples (200 under ci, 1000
# under deep), besides its explicit examples at the word boundaries.
ORACLE = settings(max_examples=max(20, settings.default.max_examples // 5))
BOUNDARIES = (0, 1, 2, 31, 32, 62, 63, 64, 65, 66, 126, 127, 128, 129, 191, 192, 193, 255, 256, 257)


# ---------------------------------------------------------------- the model
def model_bits(words) -> np.ndarray:
    """The bool array of a sequence of 64-bit words, bit by bit."""
    return np.array([(int(w) >> i) & 1 == 1 for w in words for i in range(WORD)], dtype=bool)


def model_words(bits) -> list[int]:
    """The 64-bit words (Python ints) holding ``bits``, the last one padded with zeros."""
    out = []
    for k in range(0, len(bits), WORD):
        out.append(sum(1 << i for i, b in enumerate(bits[k:k + WORD]) if b))
    return out


def as_bitmap(words) -> np.ndarray:
    return np.array([int(w) for w in words], dtype=np.uint64)


def words_needed(nbits: int) -> int:
    """How many 64-bit words hold ``nbits`` bits: counted, not computed."""
    return len(range(0, nbits, WORD))


# ---------------------------------------------------------------- strategies
words = st.one_of(st.sampled_from([0, ONES, 1, 1 << 63, ONES ^ 1, ONES >> 1, 0x5555555555555555]),
                  st.integers(0, ONES))
word_lists = st.lists(words, min_size=1, max_size=6)        # up to 384 bits: several words


def near_boundaries(hi: int):
    """A bit number or a size in [0, hi], most often at or beside a word boundary."""
    return st.one_of(st.sampled_from([b for b in BOUNDARIES if b <= hi]), st.integers(0, hi))


@st.composite
def bitmap_and_bit(draw):
    ws = draw(word_lists)
    return ws, draw(near_boundaries(len(ws) * WORD - 1))


@st.composite
def bitmap_and_range(draw):
    """A bitmap and a range [start, start + nr) inside it."""
    ws = draw(word_lists)
    nbits = len(ws) * WORD
    start = draw(near_boundaries(nbits))
    nr = draw(st.one_of(near_boundaries(nbits - start), st.just(nbits - start)))
    return ws, start, nr


@st.composite
def bitmap_size_offset(draw):
    """A bitmap, a size no larger than it and an offset, possibly at or past the size."""
    ws = draw(word_lists)
    nbits = len(ws) * WORD
    size = draw(near_boundaries(nbits))
    offset = draw(st.one_of(near_boundaries(size), st.integers(size, size + 200)))
    return ws, size, offset


def refused(exc_type, prefix, fn, addr, *args):
    """``fn`` raises ``exc_type`` with a message starting ``prefix`` and leaves ``addr`` as it was."""
    before = addr.copy()
    with pytest.raises(exc_type) as err:
        fn(*args)
    assert str(err.value).startswith(prefix), str(err.value)
    assert addr.dtype == np.uint64 and np.array_equal(addr, before)


# ---------------------------------------------------------------- constants and macros
def test_the_constants_are_those_of_a_64_bit_host():
    assert bitmap.BITS_PER_LONG == 64 and bitmap.HOST_LONG_BITS == 64
    assert bitmap.WORD_MASK == ONES
    assert bitmap.ALL_ONES.dtype == np.uint64 and int(bitmap.ALL_ONES) == ONES


@ORACLE
@given(near_boundaries(10_000))
@example(0)
@example(63)
@example(64)
@example(65)
@example(127)
@example(128)
def test_BIT_WORD_is_the_word_holding_the_bit(nr):
    assert bitmap.BIT_WORD(nr) == next(k for k in range(nr + 1) if k * WORD <= nr < (k + 1) * WORD)


@ORACLE
@given(near_boundaries(10_000))
@example(0)
@example(63)
@example(64)
@example(65)
def test_BIT_MASK_is_the_bit_within_its_word(nr):
    mask = bitmap.BIT_MASK(nr)
    assert model_bits([mask]).nonzero()[0].tolist() == [nr - WORD * (nr // WORD)]


@ORACLE
@given(near_boundaries(10_000))
@example(0)
@example(1)
@example(63)
@example(64)
@example(65)
@example(128)
@example(129)
def test_BITS_TO_LONGS_counts_the_words_that_hold_nr_bits(nr):
    assert bitmap.BITS_TO_LONGS(nr) == words_needed(nr)


# ---------------------------------------------------------------- bitmap_new
@ORACLE
@given(near_boundaries(1000))
@example(0)
@example(63)
@example(64)
@example(65)
@example(128)
def test_bitmap_new_is_zeroed_and_just_large_enough(nbits):
    new = bitmap.bitmap_new(nbits)
    assert new.dtype == np.uint64 and new.shape == (words_needed(nbits),)
    assert not model_bits(new).any()


@pytest.mark.parametrize("nbits", [-1, -64, -65])
def test_bitmap_new_refuses_a_negative_size(nbits):
    with pytest.raises(ValueError, match=r"^bitmap_new: nbits -\d+ is negative"):
        bitmap.bitmap_new(nbits)


# ---------------------------------------------------------------- one bit
@ORACLE
@given(bitmap_and_bit())
@example(([0, 0], 63))
@example(([0, 0], 64))
@example(([ONES, ONES], 64))
@example(([1 << 63, 1], 64))
def test_test_bit_reads_one_bit(case):
    ws, nr = case
    addr = as_bitmap(ws)
    assert bitmap.test_bit(nr, addr) is bool(model_bits(ws)[nr])
    assert model_words(model_bits(addr)) == ws


@ORACLE
@given(bitmap_and_bit())
@example(([0, 0], 63))
@example(([0, 0], 64))
@example(([0, 0, 0], 128))
def test_set_bit_sets_that_bit_only(case):
    ws, nr = case
    addr, want = as_bitmap(ws), model_bits(ws)
    bitmap.set_bit(nr, addr)
    want[nr] = True
    assert np.array_equal(model_bits(addr), want)


@ORACLE
@given(bitmap_and_bit())
@example(([ONES, ONES], 63))
@example(([ONES, ONES], 64))
@example(([ONES] * 3, 128))
def test_clear_bit_clears_that_bit_only(case):
    ws, nr = case
    addr, want = as_bitmap(ws), model_bits(ws)
    bitmap.clear_bit(nr, addr)
    want[nr] = False
    assert np.array_equal(model_bits(addr), want)


@ORACLE
@given(bitmap_and_bit())
@example(([0, 0], 64))
@example(([ONES, ONES], 64))
@example(([0, 0], 63))
def test_test_and_set_bit_returns_the_old_bit_and_sets_it(case):
    ws, nr = case
    addr, want = as_bitmap(ws), model_bits(ws)
    old = bitmap.test_and_set_bit(nr, addr)
    assert old is bool(want[nr])
    want[nr] = True
    assert np.array_equal(model_bits(addr), want)


ONE_BIT = [("test_bit", bitmap.test_bit), ("set_bit", bitmap.set_bit), ("clear_bit", bitmap.clear_bit),
           ("test_and_set_bit", bitmap.test_and_set_bit)]


@pytest.mark.parametrize("name, fn", ONE_BIT, ids=[n for n, _ in ONE_BIT])
@pytest.mark.parametrize("nwords, nr", [(1, 64), (1, -1), (2, 128), (2, -65), (3, 192), (3, 10**6)])
def test_test_bit_set_bit_clear_bit_test_and_set_bit_refuse_a_bit_outside(name, fn, nwords, nr):
    """C would read or write past the array; numpy would wrap a negative
    bit round to the end.  Each refuses, naming itself and the bit."""
    addr = as_bitmap([0x5555555555555555] * nwords)
    refused(IndexError, f"{name}: bit {nr} is outside the bitmap of {nwords * 64} bits", fn, addr, nr, addr)


# ---------------------------------------------------------------- one word
@ORACLE
@given(words)
@example(0)
@example(1)
@example(ONES)
@example(1 << 63)
def test_ctpopl_counts_the_set_bits_of_a_word(w):
    assert bitmap.ctpopl(w) == int(model_bits([w]).sum())
    assert bitmap.ctpopl(np.uint64(w)) == int(model_bits([w]).sum())


@ORACLE
@given(words)
@example(0)
@example(1)
@example(ONES)
@example(1 << 63)
@example(1 << 32)
def test_ctzl_counts_the_trailing_zeros_of_a_word_and_64_for_zero(w):
    """QEMU's ctzl is ctz64 on a 64-bit host (host-utils.h): 64 for a zero word."""
    bits = model_bits([w])
    want = int(bits.nonzero()[0][0]) if bits.any() else 64
    assert bitmap.ctzl(w) == want
    assert bitmap.ctzl(np.uint64(w)) == want


# ---------------------------------------------------------------- ranges
@ORACLE
@given(bitmap_and_range())
@example(([0, 0], 0, 64))
@example(([0, 0], 63, 2))
@example(([0, 0, 0], 64, 64))
@example(([0, 0, 0], 1, 190))
@example(([0, 0], 0, 0))
@example(([0, 0], 128, 0))
@example(([0] * 4, 65, 127))
def test_bitmap_set_sets_the_range_only(case):
    ws, start, nr = case
    addr, want = as_bitmap(ws), model_bits(ws)
    bitmap.bitmap_set(addr, start, nr)
    want[start:start + nr] = True
    assert np.array_equal(model_bits(addr), want)


@ORACLE
@given(bitmap_and_range())
@example(([ONES] * 2, 0, 64))
@example(([ONES] * 2, 63, 2))
@example(([ONES] * 3, 64, 64))
@example(([ONES] * 3, 1, 190))
@example(([ONES] * 2, 5, 0))
@example(([ONES] * 4, 65, 127))
def test_bitmap_clear_clears_the_range_only(case):
    ws, start, nr = case
    addr, want = as_bitmap(ws), model_bits(ws)
    bitmap.bitmap_clear(addr, start, nr)
    want[start:start + nr] = False
    assert np.array_equal(model_bits(addr), want)


RANGE = [("bitmap_set", bitmap.bitmap_set), ("bitmap_clear", bitmap.bitmap_clear)]


@pytest.mark.parametrize("name, fn", RANGE, ids=[n for n, _ in RANGE])
@pytest.mark.parametrize("nwords, start, nr", [
    (1, 0, 65), (1, 64, 1), (1, 63, 2), (2, 127, 2), (2, 128, 1), (2, -1, 1), (2, 0, -1),
    (3, 65, 128), (3, 200, -10), (2, 129, 0),
])
def test_bitmap_set_bitmap_clear_refuse_a_range_outside(name, fn, nwords, start, nr):
    addr = as_bitmap([0x5555555555555555] * nwords)
    refused(IndexError, f"{name}: bits [{start}, {start + nr}) are outside the bitmap of {nwords * 64} bits",
            fn, addr, addr, start, nr)


def model_find_next_bit(bits, size, offset):
    """The first set bit in [offset, size), else size (QEMU's find_next_bit)."""
    return next((i for i in range(offset, size) if bits[i]), size)


@ORACLE
@given(bitmap_size_offset())
@example(([0, 1 << 3], 65, 0))                   # the set bit is past size, in size's word
@example(([0, 0, 1], 128, 0))                    # the set bit is in the word after size
@example(([0, 0, 1 << 5], 130, 0))               # the set bit is past size, two words on
@example(([0, 0, 0, 1], 129, 1))                 # multi-word path, bit three words past offset
@example(([1, 0], 64, 1))
@example(([1 << 63, 0], 64, 63))
@example(([0, 1], 128, 64))
@example(([ONES, ONES], 128, 127))
@example(([ONES], 64, 64))
@example(([ONES], 10, 200))
@example(([0, 0, 0, 1 << 63], 256, 65))
@example(([0] * 6, 384, 0))
def test_find_next_bit_is_the_first_set_bit_in_range_else_size(case):
    ws, size, offset = case
    addr = as_bitmap(ws)
    assert bitmap.find_next_bit(addr, size, offset) == model_find_next_bit(model_bits(ws), size, offset)
    assert model_words(model_bits(addr)) == ws


def test_find_next_bit_reads_nothing_when_offset_is_at_or_past_size():
    """C returns size before it reads a word: a size past the bitmap is then no error."""
    addr = as_bitmap([ONES])
    assert bitmap.find_next_bit(addr, 1000, 1000) == 1000
    assert bitmap.find_next_bit(addr, 1000, 5000) == 1000


@pytest.mark.parametrize("size, offset, prefix", [
    (64, -1, "find_next_bit: negative offset -1 or size 64"),
    (-1, 0, "find_next_bit: negative offset 0 or size -1"),
    (-1, -1, "find_next_bit: negative offset -1 or size -1"),
    (129, 0, "find_next_bit: size 129 is past the bitmap of 128 bits"),
    (192, 127, "find_next_bit: size 192 is past the bitmap of 128 bits"),
])
def test_find_next_bit_refuses_a_negative_argument_or_a_size_past_the_bitmap(size, offset, prefix):
    addr = as_bitmap([0, 1 << 7])
    refused(IndexError, prefix, bitmap.find_next_bit, addr, addr, size, offset)


@ORACLE
@given(word_lists, st.integers(0, 6))
@example([1 << 63, 1], 2)
@example([ONES, 0, ONES], 3)
@example([0, 0, 1 << 5], 2)
@example([5, 7], 0)
def test_each_set_bit_le_yields_the_set_bits_of_the_first_words_lowest_first(ws, nwords):
    """kvm-all.c's walk of KVM's log: every set bit of the first ``nwords``
    words, in increasing order, and nothing of the words after them."""
    nwords = min(nwords, len(ws))
    addr = as_bitmap(ws)
    want = [i for i, b in enumerate(model_bits(ws[:nwords])) if b]
    assert list(bitmap.each_set_bit_le(addr, nwords)) == want
    assert list(bitmap.each_set_bit_le([int(w) for w in ws], nwords)) == want     # a list of words too
    assert model_words(model_bits(addr)) == ws


# ---------------------------------------------------------------- observers and loaders
@ORACLE
@given(word_lists, near_boundaries(6 * WORD))
@example([1 << 63, 1], 128)
@example([ONES, ONES], 65)
@example([ONES], 0)
@example([1 << 63], 63)
def test_bits_of_is_the_first_nbits_bits(ws, nbits):
    nbits = min(nbits, len(ws) * WORD)
    addr = as_bitmap(ws)
    out = bitmap.bits_of(addr, nbits)
    assert out.dtype == bool and np.array_equal(out, model_bits(ws)[:nbits])
    assert model_words(model_bits(addr)) == ws


@ORACLE
@given(st.lists(st.booleans(), max_size=400))
@example([])
@example([True] * 63)
@example([True] * 64)
@example([True] * 65)
@example([False] * 127 + [True])
def test_words_from_bits_packs_bits_into_words(bits):
    out = bitmap.words_from_bits(np.array(bits, dtype=bool))
    assert out.dtype == np.uint64 and out.shape == (words_needed(len(bits)),)
    assert [int(w) for w in out] == model_words(bits)


# ---------------------------------------------------------------- every function has its oracle
def test_every_public_function_has_an_oracle_test():
    functions = public_functions(bitmap)
    assert len(functions) >= 16
    missing = [f for f in functions if not oracle_tests(globals(), f)]
    assert not missing, f"stages/bitmap.py functions with no test_<function>_... here: {missing}"
