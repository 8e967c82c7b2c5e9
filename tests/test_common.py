"""An oracle for stages/common.py: every function against a plain model.

Like stages/bitmap.py (tests/test_bitmap.py), common.py is shared by every
stage, so the rung checks cannot see a mistake in it.  The model here says,
with Python ints, what C's unsigned arguments and page walks mean and shares
no code with the module:

- a ``ram_addr_t`` is an int in [0, 2**64); a page is ``addr // 4096``;
- a range function walks the pages from ``start // 4096`` up to the page that
  holds byte ``start + length - 1`` (none when the length is 0 and start is
  aligned, one when start is not); each walked page must be below the
  ``npages`` pages of dirty state;
- a client is checked first, where the stage hands it on (see common.py).

For each refusal the exception type and the whole message are checked; the
checks keep no state, so "nothing changed" is the arguments (numpy arrays,
the memory region) left as they were.

Each public function of stages/common.py has tests named ``test_<function>_...``;
``test_every_public_function_has_an_oracle_test`` fails for a new one without.
"""

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from stages import common

from oracle import oracle_tests, public_functions

PAGE = 4096
TOP = 2**64                                    # one past the largest ram_addr_t
ORACLE = settings(max_examples=max(20, settings.default.max_examples // 5))
PAGE_COUNTS = (0, 1, 2, 63, 64, 65, 127, 128, 129, 192)


# ---------------------------------------------------------------- the model
def walked_pages(start: int, length: int) -> range:
    """The pages a range function visits for [start, start + length)."""
    if length == 0:
        return range(start // PAGE, start // PAGE + (1 if start % PAGE else 0))
    return range(start // PAGE, (start + length - 1) // PAGE + 1)


def unsigned_refusal(what, name, value):
    if value < 0:
        return ValueError, f"{what}: {name} {value:#x} is negative (C's argument is unsigned)"
    if value >= TOP:
        return ValueError, f"{what}: {name} {value:#x} does not fit in 64 bits"
    return None


def walk_refusal(npages, start, length, what, start_arg, length_arg):
    pages = walked_pages(start, length)
    if len(pages) and pages[-1] >= npages:
        name, value = start_arg if pages[0] >= npages else length_arg
        return IndexError, (f"{what}: {name} {value:#x} takes the range [{start:#x}, {start + length:#x}) "
                            f"past the end of the dirty memory ({npages} pages)")
    return None


def model_check_range(npages, start, length, what, start_name="start", length_name="length"):
    """None if C's walk stays inside the dirty state, else (exception, message)."""
    return (unsigned_refusal(what, start_name, start) or unsigned_refusal(what, length_name, length)
            or ((ValueError, f"{what}: {start_name} {start:#x} + {length_name} {length:#x} overflows a "
                             f"64-bit ram_addr_t") if start + length > TOP else None)
            or walk_refusal(npages, start, length, what, (start_name, start), (length_name, length)))


def verdict(fn, *args, **kwargs):
    """None if ``fn`` accepts, else (exception type, message)."""
    try:
        fn(*args, **kwargs)
    except (ValueError, IndexError, AssertionError) as exc:
        return type(exc), str(exc)
    return None


# ---------------------------------------------------------------- strategies
def addresses(npages: int):
    """Addresses at, inside and just past page boundaries around the end of
    the dirty state and of a word of pages, plus the corners of 64 bits."""
    pages = sorted({p for p in (0, 1, 63, 64, 65, 127, 128, npages - 1, npages, npages + 1) if p >= 0})
    return st.one_of(
        st.builds(lambda p, o: p * PAGE + o, st.sampled_from(pages), st.sampled_from([0, 1, PAGE // 2, PAGE - 1])),
        st.sampled_from([-1, -PAGE, TOP - 1, TOP - PAGE, TOP, TOP + 1]),
        st.integers(0, (npages + 2) * PAGE))


def lengths(npages: int):
    return st.one_of(st.sampled_from([0, 1, 2, PAGE - 1, PAGE, PAGE + 1, 64 * PAGE, npages * PAGE, -1, TOP - 1, TOP]),
                     st.integers(0, (npages + 2) * PAGE))


@st.composite
def ranges(draw):
    npages = draw(st.sampled_from(PAGE_COUNTS))
    return npages, draw(addresses(npages)), draw(lengths(npages))


CLIENTS = st.sampled_from([0, 1, 2, 3, 7, 8, -1, 31])


def stage_check(calls):
    """A stage's client check that records its calls and refuses client 3 and up."""
    def check(client, what):
        calls.append((client, what))
        if not 0 <= client < 3:
            raise AssertionError(f"{what}: planted client check refused {client}")
    return check


def client_refusal(client, length, what):
    """Where the stage's client check runs first: a non-empty walk and a
    client that not every stage accepts (0-2 pass every stage's check)."""
    if length and not 0 <= client < 3:
        return AssertionError, f"{what}: planted client check refused {client}"
    return None


# ---------------------------------------------------------------- page constants
def test_the_page_constants_are_qemu_s_4_kib_target_pages():
    assert common.TARGET_PAGE_BITS == 12 and common.TARGET_PAGE_SIZE == PAGE
    assert common.TARGET_PAGE_MASK & (TOP - 1) == TOP - PAGE
    assert common.RAM_ADDR_MAX == TOP - 1 and common.ANY_STAGE_CLIENTS == 3


@ORACLE
@given(st.one_of(st.integers(0, TOP - 1), st.sampled_from([0, 1, PAGE - 1, PAGE, PAGE + 1, TOP - PAGE])))
def test_TARGET_PAGE_ALIGN_rounds_up_to_a_page(addr):
    aligned = common.TARGET_PAGE_ALIGN(addr)
    assert aligned % PAGE == 0 and addr <= aligned < addr + PAGE


# ---------------------------------------------------------------- removed
def test_removed_makes_the_name_unreadable_from_its_stage_on():
    class Before:
        STAGE = 6

        def gone(self):
            return 1

    class After(Before):
        STAGE = 7
        gone = common.removed("folded into its caller")
        other = common.removed()

    class Later(After):
        STAGE = 9

    assert Before().gone() == 1
    for owner in (After, After(), Later, Later()):
        with pytest.raises(AttributeError) as err:
            owner.gone
        assert str(err.value) == "gone was removed at stage 07 (folded into its caller)"
        assert not hasattr(owner, "gone")
        with pytest.raises(AttributeError) as err:
            owner.other
        assert str(err.value) == "other was removed at stage 07"


# ---------------------------------------------------------------- dirty_pages
@pytest.mark.parametrize("npages", PAGE_COUNTS)
def test_dirty_pages_is_the_room_of_the_flag_bytes_or_of_the_bitmaps(npages):
    assert common.dirty_pages(SimpleNamespace(phys_dirty=np.zeros(npages, dtype=np.uint8))) == npages
    words = len(range(0, npages, 64))
    maps = [np.zeros(words, dtype=np.uint64) for _ in range(3)]
    assert common.dirty_pages(SimpleNamespace(dirty_memory=maps)) == 64 * words


# ---------------------------------------------------------------- single values
@ORACLE
@given(st.one_of(st.sampled_from([0, 1, TOP - 1, TOP, TOP + 1, -1, -TOP]), st.integers(-TOP, 2 * TOP)))
def test_check_unsigned_accepts_exactly_the_values_of_64_bits(value):
    assert verdict(common.check_unsigned, value, "fn", "addr") == unsigned_refusal("fn", "addr", value)


@ORACLE
@given(st.sampled_from(PAGE_COUNTS), st.data())
def test_check_addr_is_the_page_of_an_address_inside_the_dirty_state(npages, data):
    addr = data.draw(addresses(npages))
    want = unsigned_refusal("fn", "offset", addr)
    if want is None and addr // PAGE >= npages:
        want = IndexError, f"fn: offset {addr:#x} is past the end of the dirty memory ({npages} pages)"
    assert verdict(common.check_addr, npages, addr, "fn", "offset") == want
    if want is None:
        assert common.check_addr(npages, addr, "fn", "offset") == addr // PAGE


@ORACLE
@given(st.sampled_from(PAGE_COUNTS), st.data())
def test_check_page_checks_against_the_length_of_a_per_page_array(npages, data):
    addr = data.draw(addresses(npages))
    array = np.arange(npages, dtype=np.uint8)
    before = array.copy()
    want = unsigned_refusal("fn", "addr", addr)
    if want is None and addr // PAGE >= npages:
        want = IndexError, f"fn: addr {addr:#x} is past the end of the dirty memory ({npages} pages)"
    assert verdict(common.check_page, array, addr, "fn") == want
    if want is None:
        assert common.check_page(array, addr, "fn") == addr // PAGE
    assert np.array_equal(array, before)


# ---------------------------------------------------------------- ranges
@ORACLE
@given(ranges(), CLIENTS)
@example((64, 63 * PAGE, PAGE), 0)                 # the last page: accepted
@example((64, 63 * PAGE + 1, PAGE), 0)             # one byte into page 64: refused, the length named
@example((64, 64 * PAGE, 0), 0)                    # an empty walk at the end: accepted
@example((64, 64 * PAGE + 1, 0), 0)                # an unaligned zero length walks one page: refused
@example((64, 65 * PAGE, 1), 0)                    # starts past the end: the start named
@example((1, TOP - 1, 1), 0)                       # start + length == 2**64: no overflow, past the end
@example((1, TOP - 1, 2), 0)                       # overflows
@example((1, 0, 5), 9)                             # a bad client is refused before the range
@example((1, 0, 0), 9)                             # ... unless the length is 0
@example((0, 0, 0), 0)                             # no dirty state, empty walk: accepted
def test_check_range_refuses_a_walk_out_of_the_dirty_state(case, client):
    npages, start, length = case
    want = model_check_range(npages, start, length, "fn", "addr", "len")
    assert verdict(common.check_range, npages, start, length, "fn", "addr", "len") == want
    calls = []
    with_client = client_refusal(client, length, "fn") or want
    assert verdict(common.check_range, npages, start, length, "fn", "addr", "len", client=client,
                   check_client=stage_check(calls)) == with_client
    assert calls == ([(client, "fn")] if length and not 0 <= client < 3 else [])


@ORACLE
@given(ranges(), CLIENTS)
@example((64, PAGE, 3 * PAGE), 0)                  # accepted
@example((2, PAGE, 3 * PAGE), 0)                   # end past the dirty state: end named, with its value
@example((2, 3 * PAGE, 3 * PAGE), 0)               # start past it, empty walk: accepted
@example((2, 3 * PAGE + 1, 3 * PAGE + 1), 0)       # unaligned: one page walked, start named
@example((8, 2 * PAGE, PAGE), 0)                   # end before start
@example((8, 0, PAGE), 9)                          # client first
def test_check_end_refuses_an_end_before_start_or_a_walk_out(case, client):
    npages, start, end = case
    want = (unsigned_refusal("fn", "start", start) or unsigned_refusal("fn", "end", end)
            or ((ValueError, f"fn: end {end:#x} is before start {start:#x}") if end < start else None)
            or walk_refusal(npages, start, end - start, "fn", ("start", start), ("end", end)))
    assert verdict(common.check_end, npages, start, end, "fn") == want
    calls = []
    assert verdict(common.check_end, npages, start, end, "fn", client=client,
                   check_client=stage_check(calls)) == (client_refusal(client, end != start, "fn") or want)


@ORACLE
@given(ranges(), st.sampled_from([0, PAGE, 64 * PAGE, 65 * PAGE, TOP - PAGE]), CLIENTS)
@example((70, PAGE, PAGE), 64 * PAGE, 0)           # the walk from mr->ram_addr + addr: accepted
@example((70, 6 * PAGE, PAGE), 64 * PAGE, 0)       # past the end: addr named with the value passed
@example((70, 0, 7 * PAGE), 64 * PAGE, 0)          # the size takes it past the end
@example((70, PAGE, 0), TOP - PAGE, 0)             # mr->ram_addr + addr == 2**64: overflows
@example((70, 0, PAGE + 1), TOP - PAGE, 0)         # mr->ram_addr + addr + size > 2**64: overflows
def test_check_region_walks_from_the_region_s_ram_addr(case, ram_addr, client):
    npages, addr, size = case
    mr = SimpleNamespace(ram_addr=ram_addr, size=PAGE)
    start = ram_addr + addr
    want = (unsigned_refusal("fn", "offset", addr) or unsigned_refusal("fn", "size", size)
            or ((ValueError, f"fn: mr->ram_addr + offset {addr:#x} overflows a 64-bit ram_addr_t")
                if start >= TOP else None)
            or ((ValueError, f"fn: mr->ram_addr + offset {addr:#x} + size {size:#x} overflows a 64-bit ram_addr_t")
                if start + size > TOP else None)
            or walk_refusal(npages, start, size, "fn", ("offset", addr), ("size", size)))
    assert verdict(common.check_region, npages, mr, addr, size, "fn", "offset") == want
    calls = []
    assert verdict(common.check_region, npages, mr, addr, size, "fn", "offset", client=client,
                   check_client=stage_check(calls)) == (client_refusal(client, size, "fn") or want)
    assert mr == SimpleNamespace(ram_addr=ram_addr, size=PAGE)


@ORACLE
@given(ranges(), st.integers(0, 200), st.integers(0, 4))
@example((64, 0, 64 * PAGE), 64, 1)                # a section of 64 pages, one word of log: accepted
@example((64, 0, 64 * PAGE), 65, 1)                # 65 pages need two words
@example((64, 0, 65 * PAGE), 64, 2)                # the section itself is past the end
def test_check_section_checks_the_section_and_the_words_its_pages_need(case, pages, nwords):
    npages, offset, size = case
    section = SimpleNamespace(mr=SimpleNamespace(ram_addr=0, size=size), offset_within_region=offset, size=size)
    log = np.zeros(nwords, dtype=np.uint64)
    want = (unsigned_refusal("fn", "section.offset_within_region", offset)
            or unsigned_refusal("fn", "section.size", size)
            or ((ValueError, f"fn: mr->ram_addr + section.offset_within_region {offset:#x} + section.size "
                             f"{size:#x} overflows a 64-bit ram_addr_t") if offset + size > TOP else None)
            or walk_refusal(npages, offset, size, "fn", ("section.offset_within_region", offset),
                            ("section.size", size)))
    assert verdict(common.check_section, npages, section, "fn") == want
    words_needed = len(range(0, pages, 64))
    if want is None and nwords < words_needed:
        want = IndexError, f"fn: bitmap has {nwords} words, {pages} pages need {words_needed}"
    assert verdict(common.check_section, npages, section, "fn", log, pages) == want
    assert not log.any() and log.shape == (nwords,)


@ORACLE
@given(st.sampled_from(PAGE_COUNTS), st.data(), st.sampled_from([0, 1, 2, 63, 64, 65, -1]), st.sampled_from([1, 16]),
       st.integers(0, 3))
@example(64, None, 64, 1, 1)                       # 64 host pages of one target page, one word: accepted
@example(64, None, 65, 1, 2)                       # one page too many: the pages named
@example(64, None, 4, 16, 1)                       # 4 host pages of 16 target pages
@example(64, None, 5, 16, 1)                       # 80 target pages
@example(128, None, 65, 1, 1)                      # in range, but 65 pages need two words
def test_check_lebitmap_checks_host_pages_of_hpratio_target_pages(npages, data, pages, hpratio, nwords):
    start = data.draw(addresses(npages)) if data is not None else 0
    log = np.zeros(nwords, dtype=np.uint64)
    length = pages * hpratio * PAGE
    want = (unsigned_refusal("fn", "pages", pages) or unsigned_refusal("fn", "start", start)
            or ((ValueError, f"fn: start {start:#x} + pages {pages:#x} host pages overflows a 64-bit ram_addr_t")
                if start + length > TOP else None)
            or walk_refusal(npages, start, length, "fn", ("start", start), ("pages", pages)))
    words_needed = len(range(0, pages, 64)) if pages >= 0 else 0
    if want is None and nwords < words_needed:
        want = IndexError, f"fn: bitmap has {nwords} words, {pages} pages need {words_needed}"
    assert verdict(common.check_lebitmap, npages, log, start, pages, hpratio, "fn") == want
    assert not log.any() and log.shape == (nwords,)


# ---------------------------------------------------------------- clients
@pytest.mark.parametrize("client", [-2**64, -1, 0, 1, 2, 3, 4, 7, 8, 2**64])
@pytest.mark.parametrize("num", [3, 4])
def test_check_client_is_c_s_assertion_on_an_unsigned_client(client, num):
    want = None if 0 <= client < num else (
        AssertionError, f"fn: assert(client < DIRTY_MEMORY_NUM) failed for client {client}")
    assert verdict(common.check_client, client, num, "fn") == want


@pytest.mark.parametrize("client", [-1, 0, 1, 2, 3, 5, 7, 8, 30, 31, 2**64])
def test_check_flag_client_accepts_the_eight_bits_of_the_flag_byte(client):
    want = None if 0 <= client < 8 else (
        ValueError, f"fn: client {client} names no bit of the flag byte (1 << client)")
    assert verdict(common.check_flag_client, client, "fn") == want


# ---------------------------------------------------------------- every function has its oracle
def test_every_public_function_has_an_oracle_test():
    functions = public_functions(common)
    assert len(functions) >= 13
    missing = [f for f in functions if not oracle_tests(globals(), f)]
    assert not missing, f"stages/common.py functions with no test_<function>_... here: {missing}"
