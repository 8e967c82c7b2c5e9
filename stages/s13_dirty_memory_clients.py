"""Stage 13: memory: use DIRTY_MEMORY_* instead of *_DIRTY_FLAG

Upstream: 521591929, its second half (series.md, note C; a reconstruction).

Kind: change of parameter meaning (flag mask -> client number), removal of
constants.

``VGA_DIRTY_FLAG``, ``CODE_DIRTY_FLAG`` and ``MIGRATION_DIRTY_FLAG`` are
gone.  Every ``cpu_physical_memory_*`` function that took a flag takes a
client (``DIRTY_MEMORY_VGA`` 0, ``_CODE`` 1, ``_MIGRATION`` 3) and shifts
``1 << client`` itself, and memory.c stops shifting.  Behaviour is kept:
``1 << DIRTY_MEMORY_x`` is exactly the old ``x_DIRTY_FLAG`` for all three
clients, so every byte operation touches the same bit.  The comment in
memory.h that tied the two sets of numbers together goes.

Misuse moves with the shift.  memory.c shifted the client at the call,
whatever the range, so a client past the byte was refused (ValueError, see
``common.check_flag_client``) even with an empty range.  Now each page of a
walk shifts it, so a range function over an empty range (an aligned address
and a length of 0) never meets the client, and C does nothing with it: such
a call is accepted, as in C.  A non-empty walk meets it on its first page,
before it touches memory, so the range functions check it first
(``_check_client``).
"""

import numpy as np

from . import s12_mask_dirty_range_single_flag as parent
from .common import (
    TARGET_PAGE_ALIGN, TARGET_PAGE_MASK, TARGET_PAGE_SIZE, check_end, check_flag_client, check_page,
    check_range, check_region, dirty_pages, removed,
)
from .s00_before_the_series import _store


class Stage(parent.Stage):
    STAGE = 13
    TITLE = "memory: use DIRTY_MEMORY_* instead of *_DIRTY_FLAG"
    UPSTREAM = "521591929 (second half)"
    KIND = "change of parameter meaning (reconstruction of half a commit)"

    DECLARED_IN = {k: v for k, v in parent.Stage.DECLARED_IN.items() if not k.endswith("_DIRTY_FLAG")}

    VGA_DIRTY_FLAG = removed("use DIRTY_MEMORY_VGA")
    CODE_DIRTY_FLAG = removed("use DIRTY_MEMORY_CODE")
    MIGRATION_DIRTY_FLAG = removed("use DIRTY_MEMORY_MIGRATION")

    def _check_client(self, client: int, what: str) -> None:
        """The check a client meets in the flag accessors: here the shift
        into the byte (``check_flag_client``), from stage 15 C's assertion.
        The range functions below hand their client on to the accessors and
        run this first (``check_range``'s ``client``), as C meets the client
        on the first page before it touches memory."""
        check_flag_client(client, what)

    # ---- include/exec/memory-internal.h ----------------------------------------------
    def cpu_physical_memory_get_dirty_flag(self, addr: int, client: int) -> bool:
        check_flag_client(client, "cpu_physical_memory_get_dirty_flag")
        phys_dirty = self.ram_list.phys_dirty
        return bool(phys_dirty[check_page(phys_dirty, addr, "cpu_physical_memory_get_dirty_flag")]
                    & (1 << client))

    def cpu_physical_memory_is_dirty(self, addr: int) -> bool:
        """Read dirty bit (return 0 or 1)."""
        vga = self.cpu_physical_memory_get_dirty_flag(addr, self.DIRTY_MEMORY_VGA)
        code = self.cpu_physical_memory_get_dirty_flag(addr, self.DIRTY_MEMORY_CODE)
        migration = self.cpu_physical_memory_get_dirty_flag(addr, self.DIRTY_MEMORY_MIGRATION)
        return vga and code and migration

    def cpu_physical_memory_get_dirty(self, start: int, length: int, client: int) -> int:
        check_range(dirty_pages(self.ram_list), start, length, "cpu_physical_memory_get_dirty",
                    client=client, check_client=self._check_client)
        ret = 0
        end = TARGET_PAGE_ALIGN(start + length)
        start &= TARGET_PAGE_MASK
        addr = start
        while addr < end:
            ret |= self.cpu_physical_memory_get_dirty_flag(addr, client)
            addr += TARGET_PAGE_SIZE
        return ret

    def cpu_physical_memory_set_dirty_flag(self, addr: int, client: int) -> None:
        check_flag_client(client, "cpu_physical_memory_set_dirty_flag")
        phys_dirty = self.ram_list.phys_dirty
        phys_dirty[check_page(phys_dirty, addr, "cpu_physical_memory_set_dirty_flag")] |= \
            np.uint8((1 << client) & 0xFF)

    def cpu_physical_memory_set_dirty(self, addr: int) -> None:
        self.cpu_physical_memory_set_dirty_flag(addr, self.DIRTY_MEMORY_MIGRATION)
        self.cpu_physical_memory_set_dirty_flag(addr, self.DIRTY_MEMORY_VGA)
        self.cpu_physical_memory_set_dirty_flag(addr, self.DIRTY_MEMORY_CODE)

    def cpu_physical_memory_clear_dirty_flag(self, addr: int, client: int) -> int:
        check_flag_client(client, "cpu_physical_memory_clear_dirty_flag")
        mask = ~(1 << client)
        phys_dirty = self.ram_list.phys_dirty
        page = check_page(phys_dirty, addr, "cpu_physical_memory_clear_dirty_flag")
        phys_dirty[page] &= np.uint8(mask & 0xFF)
        return int(phys_dirty[page])

    def cpu_physical_memory_mask_dirty_range(self, start: int, length: int, client: int) -> None:
        check_range(dirty_pages(self.ram_list), start, length,
                    "cpu_physical_memory_mask_dirty_range", client=client,
                    check_client=self._check_client)
        end = TARGET_PAGE_ALIGN(start + length)
        start &= TARGET_PAGE_MASK
        addr = start
        while addr < end:
            self.cpu_physical_memory_clear_dirty_flag(addr, client)
            addr += TARGET_PAGE_SIZE

    # ---- exec.c -----------------------------------------------------------------------
    def cpu_physical_memory_reset_dirty(self, start: int, end: int, client: int) -> None:
        """Note: start and end must be within the same ram block."""
        check_end(dirty_pages(self.ram_list), start, end, "cpu_physical_memory_reset_dirty",
                  client=client, check_client=self._check_client)
        start &= TARGET_PAGE_MASK
        end = TARGET_PAGE_ALIGN(end)
        length = end - start
        if length == 0:
            return
        self.cpu_physical_memory_mask_dirty_range(start, length, client)
        if self.machine.tcg_enabled():
            self.tlb_reset_dirty_range_all(start, end, length)

    def notdirty_mem_write(self, ram_addr: int, size: int) -> None:
        if not self.cpu_physical_memory_get_dirty_flag(ram_addr, self.DIRTY_MEMORY_CODE):
            self.machine.tb_invalidate_phys_page_fast(ram_addr, size)
        _store(size)
        self.cpu_physical_memory_set_dirty_flag(ram_addr, self.DIRTY_MEMORY_MIGRATION)
        self.cpu_physical_memory_set_dirty_flag(ram_addr, self.DIRTY_MEMORY_VGA)
        # we remove the notdirty callback only if the code has been flushed
        if self.cpu_physical_memory_is_dirty(ram_addr):
            self.machine.tlb_set_dirty(ram_addr)       # env->mem_io_vaddr

    def invalidate_and_set_dirty(self, addr: int, length: int) -> None:
        check_range(dirty_pages(self.ram_list), addr, length, "invalidate_and_set_dirty", "addr")
        if not self.cpu_physical_memory_is_dirty(addr):
            # invalidate code
            self.machine.tb_invalidate_phys_page_range(addr, addr + length, 0)
            # set dirty bit
            self.cpu_physical_memory_set_dirty_flag(addr, self.DIRTY_MEMORY_VGA)
            self.cpu_physical_memory_set_dirty_flag(addr, self.DIRTY_MEMORY_MIGRATION)
        self.machine.xen_modified_memory(addr, length)

    def stl_phys_notdirty(self, addr1: int) -> None:
        if self.in_migration:
            if not self.cpu_physical_memory_is_dirty(addr1):
                # invalidate code
                self.machine.tb_invalidate_phys_page_range(addr1, addr1 + 4, 0)
                # set dirty bit
                self.cpu_physical_memory_set_dirty_flag(addr1, self.DIRTY_MEMORY_MIGRATION)
                self.cpu_physical_memory_set_dirty_flag(addr1, self.DIRTY_MEMORY_VGA)

    # ---- cputlb.c ---------------------------------------------------------------------
    def tlb_protect_code(self, ram_addr: int) -> None:
        self.cpu_physical_memory_reset_dirty(ram_addr, ram_addr + TARGET_PAGE_SIZE,
                                             self.DIRTY_MEMORY_CODE)

    def tlb_unprotect_code_phys(self, ram_addr: int) -> None:
        self.cpu_physical_memory_set_dirty_flag(ram_addr, self.DIRTY_MEMORY_CODE)

    # ---- memory.c ---------------------------------------------------------------------
    def memory_region_get_dirty(self, mr, addr: int, size: int, client: int) -> bool:
        assert mr.terminates, "assert(mr->terminates)"
        check_region(dirty_pages(self.ram_list), mr, addr, size, "memory_region_get_dirty",
                     client=client, check_client=self._check_client)
        return bool(self.cpu_physical_memory_get_dirty(mr.ram_addr + addr, size, client))

    def memory_region_test_and_clear_dirty(self, mr, addr: int, size: int, client: int) -> bool:
        assert mr.terminates, "assert(mr->terminates)"
        check_region(dirty_pages(self.ram_list), mr, addr, size,
                     "memory_region_test_and_clear_dirty", client=client,
                     check_client=self._check_client)
        ret = bool(self.cpu_physical_memory_get_dirty(mr.ram_addr + addr, size, client))
        if ret:
            self.cpu_physical_memory_reset_dirty(mr.ram_addr + addr, mr.ram_addr + addr + size, client)
        return ret

    def memory_region_reset_dirty(self, mr, addr: int, size: int, client: int) -> None:
        assert mr.terminates, "assert(mr->terminates)"
        check_region(dirty_pages(self.ram_list), mr, addr, size, "memory_region_reset_dirty",
                     client=client, check_client=self._check_client)
        self.cpu_physical_memory_reset_dirty(mr.ram_addr + addr, mr.ram_addr + addr + size, client)
