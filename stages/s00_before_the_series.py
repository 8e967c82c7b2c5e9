"""Stage 00: the dirty API before the series.

Upstream: c2d30667 "rtc: remove dead SQW IRQ code" (the v2 base), identical
in the dirty API to 9c22687ea "bitmap: use long as index", the parent of the
merged series.

Kind: baseline.

One byte of flags per target page, ``ram_list.phys_dirty``, of which three
bits are used: ``VGA_DIRTY_FLAG`` 0x01, ``CODE_DIRTY_FLAG`` 0x02 and
``MIGRATION_DIRTY_FLAG`` 0x08.  A page is "dirty" only when its byte is
``0xff``, so the five unused bits matter: they are set by every ``0xff`` and
``0xff & ~CODE_DIRTY_FLAG`` write.  The memory API (memory.c) speaks of
clients (``DIRTY_MEMORY_VGA`` 0, ``_CODE`` 1, ``_MIGRATION`` 3) and shifts
``1 << client`` into a flag.

Every range function walks page by page; ``migration_bitmap_sync`` asks
``memory_region_test_and_clear_dirty`` once per page of guest RAM.

Odd things kept as the C has them:

- ``cpu_physical_memory_set_dirty_range`` tells Xen about ``(addr, length)``
  with ``addr`` the loop variable *after* the loop: the end of the range, not
  its start (fixed by stage 27).
- ``cpu_physical_memory_set_dirty_flags`` and ``_clear_dirty_flags`` return
  the new flag byte, which no caller reads (stages 02 and 17 make them void).
- ``memory_region_set_dirty`` passes ``-1`` as the flags: all eight bits.

Left out, as outside the dirty API: the guest RAM contents (stores write
nothing), the rate and auto-converge bookkeeping of ``migration_bitmap_sync``
(it reads the clock), and the XBZRLE and QEMUFile parts of ``ram_save_setup``.
"""

from __future__ import annotations

import numpy as np

from .bitmap import (
    HOST_LONG_BITS, bitmap_new, bitmap_set, clear_bit, each_set_bit_le, find_next_bit,
    test_and_set_bit,
)
from .common import (
    TARGET_PAGE_ALIGN, TARGET_PAGE_BITS, TARGET_PAGE_MASK, TARGET_PAGE_SIZE, check_addr, check_end,
    check_flag_client, check_page, check_range, check_region, check_section, check_unsigned,
    dirty_pages,
)


class Stage:
    STAGE = 0
    TITLE = "before the series"
    UPSTREAM = "c2d30667"
    KIND = "baseline"

    # Where each name is declared or defined in C at this stage.
    DECLARED_IN = {
        "CPUWriteMemoryFunc": "include/exec/cpu-common.h",
        "CPUReadMemoryFunc": "include/exec/cpu-common.h",
        "VGA_DIRTY_FLAG": "include/exec/memory-internal.h",
        "CODE_DIRTY_FLAG": "include/exec/memory-internal.h",
        "MIGRATION_DIRTY_FLAG": "include/exec/memory-internal.h",
        "DIRTY_MEMORY_VGA": "include/exec/memory.h",
        "DIRTY_MEMORY_CODE": "include/exec/memory.h",
        "DIRTY_MEMORY_MIGRATION": "include/exec/memory.h",
        "cpu_physical_memory_get_dirty_flags": "include/exec/memory-internal.h",
        "cpu_physical_memory_is_dirty": "include/exec/memory-internal.h",
        "cpu_physical_memory_get_dirty": "include/exec/memory-internal.h",
        "cpu_physical_memory_set_dirty_flags": "include/exec/memory-internal.h",
        "cpu_physical_memory_set_dirty": "include/exec/memory-internal.h",
        "cpu_physical_memory_clear_dirty_flags": "include/exec/memory-internal.h",
        "cpu_physical_memory_set_dirty_range": "include/exec/memory-internal.h",
        "cpu_physical_memory_mask_dirty_range": "include/exec/memory-internal.h",
        "cpu_physical_memory_reset_dirty": "include/exec/memory-internal.h (defined in exec.c)",
        "tlb_reset_dirty_range_all": "exec.c",
        "cpu_physical_memory_set_dirty_tracking": "exec.c",
        "qemu_ram_alloc_from_ptr": "include/exec/memory-internal.h (defined in exec.c)",
        "notdirty_mem_write": "exec.c",
        "core_log_global_start": "exec.c",
        "core_log_global_stop": "exec.c",
        "invalidate_and_set_dirty": "exec.c",
        "stl_phys_notdirty": "include/exec/cpu-common.h (defined in exec.c)",
        "tlb_protect_code": "cputlb.c",
        "tlb_unprotect_code_phys": "cputlb.c",
        "tlb_set_page": "cputlb.c",
        "memory_region_get_dirty": "include/exec/memory.h (defined in memory.c)",
        "memory_region_set_dirty": "include/exec/memory.h (defined in memory.c)",
        "memory_region_test_and_clear_dirty": "include/exec/memory.h (defined in memory.c)",
        "memory_region_reset_dirty": "include/exec/memory.h (defined in memory.c)",
        "kvm_get_dirty_pages_log_range": "kvm-all.c",
        "migration_bitmap_find_and_reset_dirty": "arch_init.c",
        "migration_bitmap_set_dirty": "arch_init.c",
        "migration_bitmap_sync": "arch_init.c",
        "ram_save_setup": "arch_init.c",
    }

    VGA_DIRTY_FLAG = 0x01
    CODE_DIRTY_FLAG = 0x02
    MIGRATION_DIRTY_FLAG = 0x08

    DIRTY_MEMORY_VGA = 0
    DIRTY_MEMORY_CODE = 1
    DIRTY_MEMORY_MIGRATION = 3

    def __init__(self, machine):
        self.machine = machine
        self.ram_list = machine.ram_list
        self.ram_list.phys_dirty = np.zeros(0, dtype=np.uint8)
        self.in_migration = 0                    # exec.c: static int in_migration
        self.migration_bitmap = None             # arch_init.c statics
        self.migration_dirty_pages = 0
        self.ram_bulk_stage = False              # machine.md: never in bulk stage

    # ---- include/exec/memory-internal.h ----------------------------------------------
    def cpu_physical_memory_get_dirty_flags(self, addr: int) -> int:
        phys_dirty = self.ram_list.phys_dirty
        return int(phys_dirty[check_page(phys_dirty, addr, "cpu_physical_memory_get_dirty_flags")])

    def cpu_physical_memory_is_dirty(self, addr: int) -> int:
        """Read dirty bit (return 0 or 1): all eight bits of the byte set."""
        return int(self.cpu_physical_memory_get_dirty_flags(addr) == 0xFF)

    def cpu_physical_memory_get_dirty(self, start: int, length: int, dirty_flags: int) -> int:
        """OR of ``flags & dirty_flags`` over the pages: a flag value, not a bool."""
        check_range(dirty_pages(self.ram_list), start, length, "cpu_physical_memory_get_dirty")
        ret = 0
        end = TARGET_PAGE_ALIGN(start + length)
        start &= TARGET_PAGE_MASK
        addr = start
        while addr < end:
            ret |= self.cpu_physical_memory_get_dirty_flags(addr) & dirty_flags
            addr += TARGET_PAGE_SIZE
        return ret

    def cpu_physical_memory_set_dirty_flags(self, addr: int, dirty_flags: int) -> int:
        """``phys_dirty[page] |= dirty_flags``; returns the new byte, which no caller reads."""
        phys_dirty = self.ram_list.phys_dirty
        page = check_page(phys_dirty, addr, "cpu_physical_memory_set_dirty_flags")
        phys_dirty[page] |= np.uint8(dirty_flags & 0xFF)
        return int(phys_dirty[page])

    def cpu_physical_memory_set_dirty(self, addr: int) -> None:
        self.cpu_physical_memory_set_dirty_flags(addr, 0xFF)

    def cpu_physical_memory_clear_dirty_flags(self, addr: int, dirty_flags: int) -> int:
        """``phys_dirty[page] &= ~dirty_flags``; returns the new byte."""
        mask = ~dirty_flags
        phys_dirty = self.ram_list.phys_dirty
        page = check_page(phys_dirty, addr, "cpu_physical_memory_clear_dirty_flags")
        phys_dirty[page] &= np.uint8(mask & 0xFF)
        return int(phys_dirty[page])

    def cpu_physical_memory_set_dirty_range(self, start: int, length: int, dirty_flags: int) -> None:
        """Page by page; Xen is told ``(addr, length)`` with ``addr`` the
        loop variable after the loop, i.e. the aligned end (the C's slip)."""
        check_range(dirty_pages(self.ram_list), start, length,
                    "cpu_physical_memory_set_dirty_range")
        end = TARGET_PAGE_ALIGN(start + length)
        start &= TARGET_PAGE_MASK
        addr = start
        while addr < end:
            self.cpu_physical_memory_set_dirty_flags(addr, dirty_flags)
            addr += TARGET_PAGE_SIZE
        self.machine.xen_modified_memory(addr, length)

    def cpu_physical_memory_mask_dirty_range(self, start: int, length: int, dirty_flags: int) -> None:
        check_range(dirty_pages(self.ram_list), start, length,
                    "cpu_physical_memory_mask_dirty_range")
        end = TARGET_PAGE_ALIGN(start + length)
        start &= TARGET_PAGE_MASK
        addr = start
        while addr < end:
            self.cpu_physical_memory_clear_dirty_flags(addr, dirty_flags)
            addr += TARGET_PAGE_SIZE

    # ---- exec.c -----------------------------------------------------------------------
    def tlb_reset_dirty_range_all(self, start: int, end: int, length: int) -> None:
        block = self.machine.qemu_get_ram_block(start)
        assert block is self.machine.qemu_get_ram_block(end - 1), \
            "assert(block == qemu_get_ram_block(end - 1))"
        start1 = block.host + (start - block.offset)
        self.machine.cpu_tlb_reset_dirty_all(start1, length)

    def cpu_physical_memory_reset_dirty(self, start: int, end: int, dirty_flags: int) -> None:
        """Note: start and end must be within the same ram block."""
        check_end(dirty_pages(self.ram_list), start, end, "cpu_physical_memory_reset_dirty")
        start &= TARGET_PAGE_MASK
        end = TARGET_PAGE_ALIGN(end)
        length = end - start
        if length == 0:
            return
        self.cpu_physical_memory_mask_dirty_range(start, length, dirty_flags)
        if self.machine.tcg_enabled():
            self.tlb_reset_dirty_range_all(start, end, length)

    def cpu_physical_memory_set_dirty_tracking(self, enable: int) -> int:
        ret = 0
        self.in_migration = enable
        return ret

    def qemu_ram_alloc_from_ptr(self, size: int) -> int:
        """The dirty half of the allocation: grow the byte map to
        ``last_ram_offset()`` pages, zero the new block's bytes, set them dirty."""
        new_block = self.machine.ram_block_add(size)
        size = new_block.length
        self.ram_list.phys_dirty = _g_realloc(
            self.ram_list.phys_dirty, self.machine.last_ram_offset() >> TARGET_PAGE_BITS)
        first = new_block.offset >> TARGET_PAGE_BITS
        self.ram_list.phys_dirty[first:first + (size >> TARGET_PAGE_BITS)] = 0
        self.cpu_physical_memory_set_dirty_range(new_block.offset, size, 0xFF)
        return new_block.offset

    def notdirty_mem_write(self, ram_addr: int, size: int) -> None:
        dirty_flags = self.cpu_physical_memory_get_dirty_flags(ram_addr)
        if not dirty_flags & self.CODE_DIRTY_FLAG:
            self.machine.tb_invalidate_phys_page_fast(ram_addr, size)
            dirty_flags = self.cpu_physical_memory_get_dirty_flags(ram_addr)
        _store(size)
        dirty_flags |= 0xFF & ~self.CODE_DIRTY_FLAG
        self.cpu_physical_memory_set_dirty_flags(ram_addr, dirty_flags)
        # we remove the notdirty callback only if the code has been flushed
        if dirty_flags == 0xFF:
            self.machine.tlb_set_dirty(ram_addr)       # env->mem_io_vaddr

    def core_log_global_start(self) -> None:
        self.cpu_physical_memory_set_dirty_tracking(1)

    def core_log_global_stop(self) -> None:
        self.cpu_physical_memory_set_dirty_tracking(0)

    def invalidate_and_set_dirty(self, addr: int, length: int) -> None:
        check_range(dirty_pages(self.ram_list), addr, length, "invalidate_and_set_dirty", "addr")
        if not self.cpu_physical_memory_is_dirty(addr):
            # invalidate code
            self.machine.tb_invalidate_phys_page_range(addr, addr + length, 0)
            # set dirty bit
            self.cpu_physical_memory_set_dirty_flags(addr, 0xFF & ~self.CODE_DIRTY_FLAG)
        self.machine.xen_modified_memory(addr, length)

    def stl_phys_notdirty(self, addr1: int) -> None:
        """The RAM branch, ``addr1`` already a ram_addr; the store itself is not modelled."""
        if self.in_migration:
            if not self.cpu_physical_memory_is_dirty(addr1):
                # invalidate code
                self.machine.tb_invalidate_phys_page_range(addr1, addr1 + 4, 0)
                # set dirty bit
                self.cpu_physical_memory_set_dirty_flags(addr1, 0xFF & ~self.CODE_DIRTY_FLAG)

    # ---- cputlb.c ---------------------------------------------------------------------
    def tlb_protect_code(self, ram_addr: int) -> None:
        """Update the TLBs so that writes to code in the page can be detected."""
        self.cpu_physical_memory_reset_dirty(ram_addr, ram_addr + TARGET_PAGE_SIZE,
                                             self.CODE_DIRTY_FLAG)

    def tlb_unprotect_code_phys(self, ram_addr: int) -> None:
        """Writes in the page are no longer tested for self-modifying code."""
        self.cpu_physical_memory_set_dirty_flags(ram_addr, self.CODE_DIRTY_FLAG)

    def tlb_set_page(self, ram_addr: int) -> bool:
        """The write-permission test of tlb_set_page for a RAM page: a
        NOTDIRTY entry (returned True) unless the page is dirty for all."""
        notdirty = not self.cpu_physical_memory_is_dirty(ram_addr)
        self.machine.tlb_set_entry(ram_addr, notdirty)
        return notdirty

    # ---- memory.c ---------------------------------------------------------------------
    def memory_region_get_dirty(self, mr, addr: int, size: int, client: int) -> bool:
        assert mr.terminates, "assert(mr->terminates)"
        check_flag_client(client, "memory_region_get_dirty")
        check_region(dirty_pages(self.ram_list), mr, addr, size, "memory_region_get_dirty")
        return bool(self.cpu_physical_memory_get_dirty(mr.ram_addr + addr, size, 1 << client))

    def memory_region_set_dirty(self, mr, addr: int, size: int):
        assert mr.terminates, "assert(mr->terminates)"
        check_region(dirty_pages(self.ram_list), mr, addr, size, "memory_region_set_dirty")
        return self.cpu_physical_memory_set_dirty_range(mr.ram_addr + addr, size, -1)

    def memory_region_test_and_clear_dirty(self, mr, addr: int, size: int, client: int) -> bool:
        assert mr.terminates, "assert(mr->terminates)"
        check_flag_client(client, "memory_region_test_and_clear_dirty")
        check_region(dirty_pages(self.ram_list), mr, addr, size,
                     "memory_region_test_and_clear_dirty")
        ret = bool(self.cpu_physical_memory_get_dirty(mr.ram_addr + addr, size, 1 << client))
        if ret:
            self.cpu_physical_memory_reset_dirty(mr.ram_addr + addr, mr.ram_addr + addr + size,
                                                 1 << client)
        return ret

    def memory_region_reset_dirty(self, mr, addr: int, size: int, client: int) -> None:
        assert mr.terminates, "assert(mr->terminates)"
        check_flag_client(client, "memory_region_reset_dirty")
        check_region(dirty_pages(self.ram_list), mr, addr, size, "memory_region_reset_dirty")
        self.cpu_physical_memory_reset_dirty(mr.ram_addr + addr, mr.ram_addr + addr + size,
                                             1 << client)

    # ---- kvm-all.c --------------------------------------------------------------------
    def kvm_get_dirty_pages_log_range(self, section, bitmap: np.ndarray) -> int:
        """Get KVM's dirty pages bitmap and update QEMU's: for each set bit
        (one per host page), ``memory_region_set_dirty`` of the host page."""
        pages = section.size // self.machine.getpagesize()
        check_section(dirty_pages(self.ram_list), section, "kvm_get_dirty_pages_log_range", bitmap,
                      pages)
        length = (pages + HOST_LONG_BITS - 1) // HOST_LONG_BITS
        hpratio = self.machine.getpagesize() // TARGET_PAGE_SIZE
        # bitmap-traveling is faster than memory-traveling (for addr...)
        # especially when most of the memory is not dirty.
        for bit in each_set_bit_le(bitmap, length):     # i * HOST_LONG_BITS + j
            page_number = bit * hpratio
            addr1 = page_number * TARGET_PAGE_SIZE
            addr = section.offset_within_region + addr1
            self.memory_region_set_dirty(section.mr, addr, TARGET_PAGE_SIZE * hpratio)
        return 0

    # ---- arch_init.c ------------------------------------------------------------------
    def migration_bitmap_find_and_reset_dirty(self, mr, start: int) -> int:
        check_unsigned(start, "migration_bitmap_find_and_reset_dirty", "start")
        base = mr.ram_addr >> TARGET_PAGE_BITS
        nr = base + (start >> TARGET_PAGE_BITS)
        mr_size = TARGET_PAGE_ALIGN(mr.size)
        size = base + (mr_size >> TARGET_PAGE_BITS)
        if self.ram_bulk_stage and nr > base:
            next_ = nr + 1
        else:
            next_ = find_next_bit(self.migration_bitmap, size, nr)
        if next_ < size:
            clear_bit(next_, self.migration_bitmap)
            self.migration_dirty_pages -= 1
        return (next_ - base) << TARGET_PAGE_BITS

    def migration_bitmap_set_dirty(self, mr, offset: int) -> bool:
        check_unsigned(offset, "migration_bitmap_set_dirty", "offset")
        check_addr(self.migration_bitmap.size * 64, mr.ram_addr + offset,
                   "migration_bitmap_set_dirty", "offset")
        nr = (mr.ram_addr + offset) >> TARGET_PAGE_BITS
        ret = test_and_set_bit(nr, self.migration_bitmap)
        if not ret:
            self.migration_dirty_pages += 1
        return ret

    def migration_bitmap_sync(self) -> None:
        """Needs iothread lock!  Page by page over every block."""
        self.machine.address_space_sync_dirty_bitmap()
        for block in self.ram_list.blocks:
            addr = 0
            while addr < block.length:
                if self.memory_region_test_and_clear_dirty(block.mr, addr, TARGET_PAGE_SIZE,
                                                           self.DIRTY_MEMORY_MIGRATION):
                    self.migration_bitmap_set_dirty(block.mr, addr)
                addr += TARGET_PAGE_SIZE

    def ram_save_setup(self) -> int:
        """The dirty part of ram_save_setup; returns ram_pages."""
        ram_pages = self.machine.last_ram_offset() >> TARGET_PAGE_BITS
        self.migration_bitmap = bitmap_new(ram_pages)
        bitmap_set(self.migration_bitmap, 0, ram_pages)
        self.migration_dirty_pages = ram_pages
        self.core_log_global_start()             # memory_global_dirty_log_start()
        self.migration_bitmap_sync()
        return ram_pages


def _g_realloc(old: np.ndarray, count: int) -> np.ndarray:
    """g_realloc of a byte array: keeps what fits; new bytes read as zero
    (C leaves them indeterminate; machine.md fixes them to zero)."""
    new = np.zeros(count, dtype=old.dtype)
    keep = min(count, old.size)
    new[:keep] = old[:keep]
    return new


def _store(size: int) -> None:
    """The stb_p/stw_p/stl_p switch of notdirty_mem_write: RAM contents are
    not modelled, but any other size is C's abort()."""
    if size not in (1, 2, 4):
        raise AssertionError(f"notdirty_mem_write: abort() on access size {size}")
