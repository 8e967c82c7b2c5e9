"""The dirty API of each stage called directly, against what the C of that
commit returns and stores.  These cover what no trace reaches: functions
without a caller at their stage, return values nobody reads, abort paths.
Every expected value is worked out from the upstream C, not from the stages.
"""

import numpy as np
import pytest

from stages import LAST, stage
from dirty_ladder.machine import Machine
from dirty_ladder.views import dirty_pages_of, load_dirty, representation

STAGES = [pytest.param(n, id=f"stage{n:02d}") for n in range(LAST + 1)]


def _machine(n, pages=2, dirty=False):
    m = Machine(stage(n))
    m.stage.qemu_ram_alloc_from_ptr(pages * 4096)
    load_dirty(m.stage, {c: np.full(pages, dirty) for c in ("vga", "code", "migration")})
    return m


def _flag(st, client):
    """The argument the stage's cpu_physical_memory_* functions take for a client."""
    name = client.upper()
    return getattr(st, name + "_DIRTY_FLAG") if hasattr(st, name + "_DIRTY_FLAG") \
        else getattr(st, "DIRTY_MEMORY_" + name)


@pytest.mark.parametrize("n", [p for p in STAGES if p.values[0] <= 20])
def test_set_dirty_marks_every_client(n):
    # cpu_physical_memory_set_dirty: set_dirty_flags(addr, 0xff) up to 9e...,
    # three set_dirty_flag calls from 63995cebf (stage 10); removed by 4f13bb80a (21)
    m = _machine(n)
    m.stage.cpu_physical_memory_set_dirty(4096)
    for client in ("vga", "code", "migration"):
        assert dirty_pages_of(m.stage, client, 2).tolist() == [False, True]
    if representation(m.stage) == "bytes":
        byte = int(m.ram_list.phys_dirty[1])
        assert byte == (0xFF if n < 10 else (0x0B if n < 14 else 0x07))
        assert int(m.ram_list.phys_dirty[0]) == 0


@pytest.mark.parametrize("n", STAGES)
def test_set_dirty_tracking(n):
    # exec.c: "int ret = 0; in_migration = enable; return ret;" until 981fdf235 (31)
    m = _machine(n)
    result = m.stage.cpu_physical_memory_set_dirty_tracking(1 if n < 31 else True)
    assert (result == 0 and type(result) is int) if n < 31 else result is None
    assert m.stage.in_migration
    m.stage.cpu_physical_memory_set_dirty_tracking(0 if n < 31 else False)
    assert not m.stage.in_migration


@pytest.mark.parametrize("n", STAGES)
@pytest.mark.parametrize("size", [0, 3, 8])
def test_notdirty_mem_write_aborts_on_other_sizes(n, size):
    # the switch of notdirty_mem_write: default: abort()
    m = _machine(n)
    with pytest.raises(AssertionError, match="abort"):
        m.stage.notdirty_mem_write(0, size)


@pytest.mark.parametrize("n", STAGES)
def test_get_dirty_return_value(n):
    # OR of (flags & mask) until 36187e2ca (9): the migration mask itself, 8;
    # then an OR of bools (an int 0/1) until 94833c896 (24) makes it a bool
    m = _machine(n)
    st = m.stage
    load_dirty(st, {"vga": np.array([False, False]), "code": np.array([False, False]),
                    "migration": np.array([False, True])})
    got = st.cpu_physical_memory_get_dirty(4096, 4096, _flag(st, "migration"))
    if n < 9:
        assert got == 8 and type(got) is int
    elif n < 24:
        assert got == 1 and type(got) is int
    else:
        assert got is True
    clean = st.cpu_physical_memory_get_dirty(0, 4096, _flag(st, "migration"))
    assert clean == 0 and not clean


@pytest.mark.parametrize("n", [p for p in STAGES if p.values[0] <= 28])
def test_is_dirty_needs_the_three_clients(n):
    # == 0xff until 4f08cabe9 (7); vga && code && migration after
    m = _machine(n)
    st = m.stage
    load_dirty(st, {"vga": np.array([True, True]), "code": np.array([True, False]),
                    "migration": np.array([True, True])},
               np.array([True, True]))
    assert st.cpu_physical_memory_is_dirty(0)
    assert not st.cpu_physical_memory_is_dirty(4096)


@pytest.mark.parametrize("n", [p for p in STAGES if p.values[0] <= 10])
def test_set_dirty_flags_result(n):
    # "return ram_list.phys_dirty[...] |= dirty_flags;" until e2da99d58 (2);
    # removed by 75218e7f2 (11)
    m = _machine(n)
    result = m.stage.cpu_physical_memory_set_dirty_flags(0, 0x03)
    assert result == (0x03 if n < 2 else None)
    assert int(m.ram_list.phys_dirty[0]) == 0x03


@pytest.mark.parametrize("n", [p for p in STAGES if 12 <= p.values[0] <= 19])
def test_clear_dirty_flag_result(n):
    # "return ram_list.phys_dirty[...] &= mask;" until e8a97cafc (17)
    m = _machine(n, dirty=True)
    st = m.stage
    result = st.cpu_physical_memory_clear_dirty_flag(0, _flag(st, "vga"))
    assert dirty_pages_of(st, "vga", 2).tolist() == [False, True]
    if n < 17:
        assert result == (0x0A if n < 14 else 0x06)   # code|migration left
    else:
        assert result is None


@pytest.mark.parametrize("n", [p for p in STAGES if p.values[0] >= 6])
def test_get_dirty_flag_reads_the_page_of_its_address_only(n):
    # ram_list.phys_dirty[addr >> TARGET_PAGE_BITS] (7e5609a85), test_bit(addr >> ...)
    # (19), get_dirty(addr, 1, client) (9f2c43e41, 23): one page, also at its last byte
    m = _machine(n)
    st = m.stage
    load_dirty(st, {"vga": np.array([False, True]), "code": np.array([False, True]),
                    "migration": np.array([False, True])})
    for client in ("vga", "code", "migration"):
        assert not st.cpu_physical_memory_get_dirty_flag(4095, _flag(st, client))
        assert st.cpu_physical_memory_get_dirty_flag(4096, _flag(st, client))


@pytest.mark.parametrize("n", STAGES)
def test_kvm_log_range_returns_zero(n):
    # kvm_get_dirty_pages_log_range: "return 0;" at every stage
    from dirty_ladder.machine import MemoryRegionSection
    m = _machine(n)
    block = m.ram_list.blocks[0]
    log = np.zeros(1, dtype=np.uint64)
    log[0] = 1
    assert m.stage.kvm_get_dirty_pages_log_range(MemoryRegionSection(block.mr, 0, block.length), log) == 0


@pytest.mark.parametrize("n", [p for p in STAGES if p.values[0] >= 18])
def test_bitmap_zero_extend_clears_exactly_the_new_range(n):
    # 164590a60: g_realloc to BITS_TO_LONGS(new_nbits) longs, then
    # bitmap_clear(new, old_nbits, new_nbits - old_nbits); nothing else
    bitmap_zero_extend = stage(n).bitmap_zero_extend
    old = np.full(2, np.uint64((1 << 64) - 1))
    new = bitmap_zero_extend(old, 10, 100)
    bits = [(int(new[i // 64]) >> (i % 64)) & 1 for i in range(128)]
    assert bits[:10] == [1] * 10 and bits[10:100] == [0] * 90 and bits[100:] == [1] * 28
    grown = bitmap_zero_extend(np.full(1, np.uint64((1 << 64) - 1)), 64, 130)
    assert grown.size == 3 and int(grown[0]) == (1 << 64) - 1 and int(grown[1]) == 0 and int(grown[2]) == 0


@pytest.mark.parametrize("n", STAGES)
def test_block_in_a_gap_below_the_end_does_not_resize_the_dirty_state(n):
    # Blocks of 1, 1, 1 and 128 pages go at pages 0, 1, 2 and 3 (131 pages of
    # RAM); the second and the last are freed, so RAM ends at page 3, and a
    # block of one page goes in the hole at page 1 (find_ram_offset: the
    # smallest gap that fits).  Up to stage 15 qemu_ram_alloc_from_ptr
    # reallocates phys_dirty to last_ram_offset() >> TARGET_PAGE_BITS bytes at
    # every allocation: 3.  2152f5ca7 (16) reallocates only when
    # last_ram_offset() grows, and 1ab4c8cea (19) extends the three bitmaps
    # under the same test: the dirty state keeps its 131 pages, 131 bytes or
    # BITS_TO_LONGS(131) = 3 words per bitmap.
    m = Machine(stage(n))
    st = m.stage
    for pages in (1, 1, 1, 128):
        st.qemu_ram_alloc_from_ptr(pages * 4096)
    m.ram_free(4096)
    m.ram_free(3 * 4096)
    assert st.qemu_ram_alloc_from_ptr(4096) == 4096
    if representation(st) == "bytes":
        assert len(m.ram_list.phys_dirty) == (3 if n < 16 else 131)
    else:
        assert [words.size for words in m.ram_list.dirty_memory] == [3, 3, 3]
    for client in ("vga", "code", "migration"):     # nothing was cleared
        assert dirty_pages_of(st, client, 3).tolist() == [True, True, True]


@pytest.mark.parametrize("n", [p for p in STAGES if 11 <= p.values[0] <= 14])
def test_block_in_a_hole_does_not_inherit_spare_bits(n):
    # Stages 11-14 still accept a spare bit of the byte: bit 4 is the flag
    # 0x10 for cpu_physical_memory_set_dirty_flag(addr, dirty_flag) at 11-12
    # and client 4 (1 << client) at 13-14; the client is checked from
    # 7a5b558c9 (15).
    # The block holding it is freed and a block of the same page takes the
    # hole.  qemu_ram_alloc_from_ptr memsets the new block's flag bytes to 0
    # before cpu_physical_memory_set_dirty_range, which from 75218e7f2 (11)
    # sets the three client flags only: the byte is VGA|CODE|MIGRATION,
    # 0x01|0x02|0x08 = 0x0b, or 0x07 once 5adca7ace (14) moves MIGRATION to bit 2.
    m = Machine(stage(n))
    st = m.stage
    for _ in range(3):
        st.qemu_ram_alloc_from_ptr(4096)
    st.cpu_physical_memory_set_dirty_flag(4096, 0x10 if n < 13 else 4)
    assert int(m.ram_list.phys_dirty[1]) & 0x10
    m.ram_free(4096)
    assert st.qemu_ram_alloc_from_ptr(4096) == 4096
    assert int(m.ram_list.phys_dirty[1]) == (0x0B if n < 14 else 0x07)


@pytest.mark.parametrize("n", [p for p in STAGES if p.values[0] >= 38])
def test_sync_range_refuses_a_range_past_the_migration_bitmap(n):
    # migration_bitmap_sync_range (791fa2a24, aa8dc0447) writes migration_bitmap
    # for every page of the range: one past its ram_pages bits would be out of
    # bounds in C; refused before anything moves
    from stages.bitmap import bitmap_new
    m = _machine(n, pages=128, dirty=True)
    st = m.stage
    st.migration_bitmap = bitmap_new(64)
    with pytest.raises(IndexError, match="migration_bitmap_sync_range"):
        st.migration_bitmap_sync_range(0, 65 * 4096)
    assert dirty_pages_of(st, "migration", 128).all() and st.migration_dirty_pages == 0


@pytest.mark.parametrize("n", [p for p in STAGES if p.values[0] < 38])
def test_migration_bitmap_set_dirty_refuses_a_negative_offset(n):
    # arch_init.c: migration_bitmap_set_dirty(MemoryRegion *mr, ram_addr_t offset)
    # until 791fa2a24 (38): an unsigned offset; a negative one is refused even
    # when mr->ram_addr + offset would land inside the bitmap
    from stages.bitmap import bitmap_new
    m = Machine(stage(n))
    m.stage.qemu_ram_alloc_from_ptr(4096)
    m.stage.qemu_ram_alloc_from_ptr(4096)
    m.stage.migration_bitmap = bitmap_new(2)
    second = next(b for b in m.ram_list.blocks if b.offset == 4096)
    with pytest.raises(ValueError, match="offset"):
        m.stage.migration_bitmap_set_dirty(second.mr, -4096)
    assert int(m.stage.migration_bitmap[0]) == 0 and m.stage.migration_dirty_pages == 0
