"""The machine below the dirty API, the same for every stage (docs/trace-format.md).

What the series never touched lives here: RAM block placement, translated
blocks (TBs), the TLB, the KVM dirty log, Xen's notifier and the replay of a
trace.  Every operation that the series did touch is a call into the stage
(its ``notdirty_mem_write``, its ``memory_region_get_dirty``, its
``migration_bitmap_sync`` ...), so each stage answers with its own code.

The stage receives this machine and calls back the services QEMU's dirty code
called: ``tcg_enabled``, ``getpagesize``, ``xen_modified_memory``,
``tb_invalidate_phys_page_fast``, ``tb_invalidate_phys_page_range``,
``tlb_set_dirty``, ``cpu_tlb_reset_dirty_all``, ``qemu_get_ram_block``,
``last_ram_offset``, ``address_space_sync_dirty_bitmap``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from stages.bitmap import BITS_TO_LONGS, bits_of
from .views import dirty_pages_of
from .trace import (
    RESULT_FORMAT, TARGET_PAGE_BITS, Block, Config, Trace,
    block_holding, find_ram_offset, insert_block, page_align,
)


@dataclass
class MemoryRegion:
    """The part of a RAM MemoryRegion the dirty API reads."""
    ram_addr: int
    size: int
    terminates: bool = True


@dataclass
class RAMBlock(Block):
    mr: MemoryRegion | None = None

    @property
    def host(self) -> int:
        """Where the block is mapped in QEMU's address space.  The model maps
        RAM at its own ram_addr, so ``block->host + (start - block->offset)``
        is ``start`` and TLB ranges are ram_addr ranges."""
        return self.offset


@dataclass
class MemoryRegionSection:
    mr: MemoryRegion
    offset_within_region: int
    size: int


class RAMList:
    """exec.c's ``ram_list``: the blocks (the machine's) and the dirty state
    (the stage's: ``phys_dirty`` before stage 19, ``dirty_memory`` after)."""

    def __init__(self) -> None:
        self.blocks: list[RAMBlock] = []


def ranges(flags: np.ndarray) -> list[list[int]]:
    """Sorted, merged, half-open [first, end) ranges of the True entries."""
    flags = np.asarray(flags, dtype=bool)
    if flags.size == 0:
        return []
    edges = np.flatnonzero(np.diff(np.concatenate(([False], flags, [False])).astype(np.int8)))
    return [[int(a), int(b)] for a, b in zip(edges[::2], edges[1::2])]


def page_ranges(pages) -> list[list[int]]:
    out: list[list[int]] = []
    for page in sorted(pages):
        if out and out[-1][1] == page:
            out[-1][1] = page + 1
        else:
            out.append([page, page + 1])
    return out


class Machine:
    """One guest: RAM blocks, TBs, TLB, KVM log and Xen log around one stage."""

    def __init__(self, stage_class: type, config: Config | None = None):
        self.config = config or Config()
        self.ram_list = RAMList()
        self.tb_count: dict[int, int] = {}      # page -> TBs on it now
        self.tb_ever: set[int] = set()          # pages that ever held a TB
        self.tlb: dict[int, bool] = {}          # page -> True when NOTDIRTY
        self.kvm_log: dict[int, np.ndarray] = {}  # block offset -> little-endian words
        self.xen_log: list[list[int]] = []
        self.migration_started = False
        self.migration_ram_pages = 0
        self.stage = stage_class(self)

    # --- services QEMU's dirty code calls -------------------------------------------
    def tcg_enabled(self) -> bool:
        return self.config.accel == "tcg"

    def getpagesize(self) -> int:
        return self.config.host_page_size

    def xen_modified_memory(self, start: int, length: int) -> None:
        if self.config.xen:
            self.xen_log.append([int(start), int(length)])

    def last_ram_offset(self) -> int:
        return max((b.end for b in self.ram_list.blocks), default=0)

    def qemu_get_ram_block(self, addr: int) -> RAMBlock:
        block = block_holding(self.ram_list.blocks, addr)
        if block is None:
            raise AssertionError(f"qemu_get_ram_block: bad RAM address {addr:#x}")
        return block

    def tb_invalidate_phys_page_fast(self, addr: int, size: int) -> None:
        page = addr >> TARGET_PAGE_BITS
        if page not in self.tb_ever:
            return
        self.tb_count.pop(page, None)
        self.stage.tlb_unprotect_code_phys(page << TARGET_PAGE_BITS)

    def tb_invalidate_phys_page_range(self, start: int, end: int, is_cpu_write_access: int) -> None:
        # QEMU of the time: only the TBs of the page holding `start` are
        # dropped, and this caller never unprotects (docs/trace-format.md).
        self.tb_count.pop(start >> TARGET_PAGE_BITS, None)

    def tlb_set_dirty(self, vaddr: int) -> None:
        page = vaddr >> TARGET_PAGE_BITS
        if self.tlb.get(page):
            self.tlb[page] = False

    def tlb_set_entry(self, ram_addr: int, notdirty: bool) -> None:
        self.tlb[ram_addr >> TARGET_PAGE_BITS] = notdirty

    def cpu_tlb_reset_dirty_all(self, start1: int, length: int) -> None:
        """Every dirty entry whose page address p has (p - start1) < length,
        unsigned, becomes NOTDIRTY (cputlb.c's tlb_reset_dirty_range)."""
        mask = (1 << 64) - 1
        for page, notdirty in self.tlb.items():
            if not notdirty and ((page << TARGET_PAGE_BITS) - start1) & mask < length:
                self.tlb[page] = True

    def address_space_sync_dirty_bitmap(self) -> None:
        if self.config.accel == "kvm":
            self.kvm_sync()

    # --- the operations of a trace -------------------------------------------------
    def ram_block_add(self, size: int) -> RAMBlock:
        """Placement only (find_ram_offset and the sorted insert): the part
        of qemu_ram_alloc_from_ptr that the series left alone."""
        size = page_align(size)
        offset = find_ram_offset(self.ram_list.blocks, size)
        block = RAMBlock(offset, size, MemoryRegion(offset, size))
        insert_block(self.ram_list.blocks, block)
        return block

    def ram_free(self, offset: int) -> None:
        block = next(b for b in self.ram_list.blocks if b.offset == offset)
        self.ram_list.blocks.remove(block)
        first, end = block.offset >> TARGET_PAGE_BITS, block.end >> TARGET_PAGE_BITS
        for page in [p for p in self.tlb if first <= p < end]:
            del self.tlb[page]
        for page in [p for p in self.tb_count if first <= p < end]:
            del self.tb_count[page]
        self.kvm_log.pop(offset, None)

    def tb_translate(self, addr: int) -> None:
        page = addr >> TARGET_PAGE_BITS
        if not self.tb_count.get(page):
            self.stage.tlb_protect_code(page << TARGET_PAGE_BITS)
        self.tb_count[page] = self.tb_count.get(page, 0) + 1
        self.tb_ever.add(page)

    def tlb_fill(self, addr: int) -> str:
        notdirty = self.stage.tlb_set_page(addr)
        return "notdirty" if notdirty else "dirty"

    def tcg_write(self, addr: int, size: int) -> str:
        page = addr >> TARGET_PAGE_BITS
        if page not in self.tlb:
            self.tlb_fill(addr)
        if self.tlb[page]:
            self.stage.notdirty_mem_write(addr, size)
            return "trapped"
        return "direct"

    def kvm_write(self, addr: int) -> None:
        block = self.qemu_get_ram_block(addr)
        hps = self.config.host_page_size
        bit = (addr - block.offset) // hps
        log = self.kvm_log.setdefault(block.offset, np.zeros(BITS_TO_LONGS(block.length // hps), dtype=np.uint64))
        log[bit >> 6] |= np.uint64(1 << (bit & 63))

    def kvm_sync(self) -> None:
        hps = self.config.host_page_size
        for block in self.ram_list.blocks:
            log = self.kvm_log.pop(block.offset, None)
            if log is None:
                log = np.zeros(BITS_TO_LONGS(block.length // hps), dtype=np.uint64)
            section = MemoryRegionSection(block.mr, 0, block.length)
            self.stage.kvm_get_dirty_pages_log_range(section, log)   # bit i of word k: host page 64k+i

    def client_number(self, client: str) -> int:
        return getattr(self.stage, "DIRTY_MEMORY_" + client.upper())

    def run_op(self, op: dict[str, Any]) -> Any:
        name, st = op["op"], self.stage
        if name == "ram_alloc":
            return st.qemu_ram_alloc_from_ptr(op["size"])
        if name == "ram_free":
            return self.ram_free(op["offset"])
        if name == "tb_translate":
            return self.tb_translate(op["addr"])
        if name == "tlb_fill":
            return self.tlb_fill(op["addr"])
        if name == "tcg_write":
            return self.tcg_write(op["addr"], op["size"])
        if name == "dma_write":
            return st.invalidate_and_set_dirty(op["addr"], op["len"])
        if name == "stl_phys_notdirty":
            return st.stl_phys_notdirty(op["addr"])
        if name == "kvm_write":
            return self.kvm_write(op["addr"])
        if name == "kvm_sync":
            return self.kvm_sync()
        if name in ("get_dirty", "set_dirty", "test_and_clear_dirty", "reset_dirty"):
            block = self.qemu_get_ram_block(op["addr"])
            args = [block.mr, op["addr"] - block.offset, op["len"]]
            if name != "set_dirty":
                args.append(self.client_number(op["client"]))
            result = getattr(st, "memory_region_" + name)(*args)
            return None if result is None else bool(result)
        if name == "is_clean":
            if hasattr(st, "cpu_physical_memory_is_clean"):   # stage 29 on
                return bool(st.cpu_physical_memory_is_clean(op["addr"]))
            return not st.cpu_physical_memory_is_dirty(op["addr"])
        if name == "log_global_start":
            return st.core_log_global_start()
        if name == "log_global_stop":
            return st.core_log_global_stop()
        if name == "migration_setup":
            self.migration_started = True
            self.migration_ram_pages = int(st.ram_save_setup())
            return self.migration_ram_pages
        if name == "migration_sync":
            before = st.migration_dirty_pages
            st.migration_bitmap_sync()
            return int(st.migration_dirty_pages - before)
        if name == "migration_next":
            block = next(b for b in self.ram_list.blocks if b.offset == op["block"])
            return int(st.migration_bitmap_find_and_reset_dirty(block.mr, op["start"]))
        raise AssertionError(f"unknown op {name!r}")  # validate() refuses these first

    # --- observables ---------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        npages = self.last_ram_offset() >> TARGET_PAGE_BITS
        st = self.stage
        hps = self.config.host_page_size
        kvm = []
        for block in self.ram_list.blocks:
            log = self.kvm_log.get(block.offset)
            if log is not None and log.any():
                kvm.append([block.offset, ranges(bits_of(log, block.length // hps))])
        migration = None
        if self.migration_started:
            ram_pages = self.migration_ram_pages
            migration = {
                "bitmap": ranges(bits_of(st.migration_bitmap, ram_pages)),
                "dirty_pages": int(st.migration_dirty_pages),
            }
        return {
            "blocks": [[b.offset, b.length] for b in self.ram_list.blocks],
            "dirty": {c: ranges(dirty_pages_of(st, c, npages)) for c in ("vga", "code", "migration")},
            "tlb": {
                "notdirty": page_ranges(p for p, nd in self.tlb.items() if nd),
                "dirty": page_ranges(p for p, nd in self.tlb.items() if not nd),
            },
            "tb_pages": page_ranges(p for p, n in self.tb_count.items() if n),
            "kvm_log": kvm,
            "in_migration": bool(st.in_migration),
            "migration": migration,
            "xen": [list(x) for x in self.xen_log],
        }


# What a Machine holds, and how clone() and key() treat each attribute.
# tests/test_explore.py checks that this lists every attribute a machine has.
MACHINE_FIELDS = ("config", "ram_list", "tb_count", "tb_ever", "tlb", "kvm_log", "xen_log",
                  "migration_started", "migration_ram_pages", "stage")


def _copy(value: Any) -> Any:
    """A copy of one attribute of a machine, its RAM list or its stage, deep
    enough that running ops on the copy leaves the original as it was.  What
    they hold is at most one level deep: arrays, or lists and dicts of
    arrays, blocks and numbers.  RAM blocks are never changed in place, so
    they are shared."""
    kind = type(value)
    if kind is np.ndarray:
        return value.copy()
    if kind is list:
        return [x.copy() if type(x) is np.ndarray else x for x in value]
    if kind is dict:
        return {k: x.copy() if type(x) is np.ndarray else x for k, x in value.items()}
    if kind is set:
        return set(value)
    return value


def _key(value: Any) -> Any:
    """A hashable value equal for equal attributes: arrays by their bytes."""
    kind = type(value)
    if kind is np.ndarray:
        return value.tobytes()
    if kind is list or kind is tuple:
        return tuple(x.tobytes() if type(x) is np.ndarray else (x.offset, x.length) if isinstance(x, Block)
                     else x for x in value)
    if kind is dict:
        return tuple(sorted((k, x.tobytes() if type(x) is np.ndarray else x) for k, x in value.items()))
    if kind is set:
        return tuple(sorted(value))
    if isinstance(value, np.generic):
        return value.item()
    return value


def clone(machine: Machine) -> Machine:
    """An independent copy of a machine and its stage, without replaying anything."""
    new = object.__new__(Machine)
    new.__dict__.update({name: _copy(value) for name, value in vars(machine).items()})
    new.ram_list = object.__new__(RAMList)
    new.ram_list.__dict__.update({k: _copy(v) for k, v in vars(machine.ram_list).items()})
    st = object.__new__(type(machine.stage))
    st.__dict__.update({name: _copy(value) for name, value in vars(machine.stage).items()})
    st.machine, st.ram_list = new, new.ram_list
    new.stage = st
    return new


def key(machine: Machine) -> tuple:
    """Everything that decides what the machine does next, as a hashable
    value: two machines with equal keys (and the same stage class) answer
    every trace alike.  Left out: the config (fixed for a run), the Xen log
    (append-only output: compare what each op adds) and how many TBs a page
    holds (the machine only asks whether it holds any)."""
    return (
        tuple((name, _key(value)) for name, value in vars(machine.ram_list).items()),
        tuple(sorted(p for p, n in machine.tb_count.items() if n)),
        _key(machine.tb_ever),
        _key(machine.tlb),
        _key(machine.kvm_log),
        machine.migration_started,
        machine.migration_ram_pages,
        tuple((name, _key(value)) for name, value in vars(machine.stage).items()
              if name != "machine" and name != "ram_list"),
    )


def replay(stage_class: type, trace: Trace, on_op: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Run a validated trace on a stage: the ``dirty-trace-result/1`` object.
    ``on_op(i)``, when given, is called before op ``i`` runs (progress)."""
    machine = Machine(stage_class, trace.config)
    results = []
    for index, op in enumerate(trace.ops):
        if on_op is not None:
            on_op(index)
        results.append(machine.run_op(op))
    out = {"format": RESULT_FORMAT, "stage": stage_class.STAGE, "results": results, "state": machine.state()}
    return out


def first_difference(a: dict[str, Any], b: dict[str, Any], path: str = "") -> tuple[str, Any, Any] | None:
    """The first place two result objects differ: (path, value in a, value in b)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            if key == "stage" and not path:
                continue
            if key not in a or key not in b:
                return (f"{path}.{key}".lstrip("."), a.get(key), b.get(key))
            found = first_difference(a[key], b[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and path.endswith("results"):
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return (f"{path.lstrip('.')}[{i}]", x, y)
        if len(a) != len(b):
            return (path.lstrip("."), a, b)
        return None
    if a != b:
        return (path.lstrip("."), a, b)
    return None
