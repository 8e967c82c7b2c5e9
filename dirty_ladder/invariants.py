"""Invariants every stage must keep, checked on the machine of docs/trace-format.md.

Three properties, each a statement about one replay of a valid trace on one
stage.  They are the reasons the dirty API exists; the ladder checks that
each commit keeps what the one before did, these check what the code is
*for*.

``migration`` -- no lost migration write
    From ``migration_setup`` on, every *write* (below) to a page must be
    *reported* by migration after it: some ``migration_next`` later in the
    trace returns that page, or, at the end of the trace, one more
    ``migration_sync`` followed by a walk of every block (``migration_next``
    from start 0, again and again, until it returns an offset >= the block's
    length) returns it.  A page still pending in the migration bitmap when it
    is written is reported by that final walk (nothing but ``migration_next``
    clears a bit of the migration bitmap), so "unless it was already pending"
    needs no rule of its own.

``vga`` -- no lost VGA write
    Every write, from the first op of the trace, must be reported by the VGA
    client after it: a ``test_and_clear_dirty`` on the vga client that
    returns true over a range whose pages ([addr >> 12, TARGET_PAGE_ALIGN(addr
    + len) >> 12), the pages the stage's ``cpu_physical_memory_get_dirty``
    asks about) include the page, or, at the end of the trace,
    ``address_space_sync_dirty_bitmap`` (the KVM log sync that
    ``vga_sync_dirty_bitmap`` does under KVM) followed by
    ``test_and_clear_dirty(page, TARGET_PAGE_SIZE, vga)`` returning true.
    A write to a page of a block that ``ram_free`` later drops is forgotten.

``code`` -- CODE is clear on every page that holds a TB
    After every op, no page of the machine's ``tb_pages`` (pages holding a
    translated block now) is dirty for the code client; otherwise a guest
    write to it would not trap and the stale TB would run.

What counts as a write (the pages of every byte written):

- ``tcg_write`` (trapped or direct) when ``accel`` is "tcg": under KVM the
  guest writes through ``kvm_write``, and TCG's TLB is not what tracks it;
- ``kvm_write`` when ``accel`` is "kvm" (under "tcg" nothing syncs the KVM
  log, so no consumer could see it): the written page, ``addr >> 12``;
- ``dma_write`` of a non-zero length, under either accel: every page of
  ``[addr, addr + len)``;
- ``stl_phys_notdirty`` while logging (the stage's ``in_migration`` is true
  before the op), under either accel: the pages of ``[addr, addr + 4)``.
  Outside logging it is meant not to mark the page (it updates page-table
  A/D bits behind the guest's back), so it is no write here.

Ops that legitimately make a write invisible, and how each is handled:

- ``migration_next`` that returns a page sends it: the write is reported
  (accounted for, as above);
- ``test_and_clear_dirty`` on the vga client that returns true reports the
  pages of its range to VGA (accounted for);
- ``reset_dirty`` on the vga client discards VGA's pending pages, and
  ``reset_dirty`` / ``test_and_clear_dirty`` on the migration client discard
  migration's: the invariant traces (:func:`build_trace`) never contain them
  (``reset_dirty`` only on the code client, ``test_and_clear_dirty`` only on
  the vga and code clients).  Before migration_setup a migration-client reset
  would hide no write, but it can leave a dirty TLB entry behind that loses
  one later (stage 30's short TLB reset); that path is outside these traces
  and noted in the register;
- ``log_global_stop`` ends logging: its only effect on the machine is that
  ``stl_phys_notdirty`` stops marking, which the "while logging" rule above
  accounts for (a ``log_global_start`` later counts them again);
- ``ram_free`` drops a block with its pending VGA pages (there is no free
  after ``migration_setup``).

A break is named by a *signature*, ``invariant:op[:how]@accel,host_page_size``
(:func:`signature`), e.g. ``migration:kvm_write@kvm,65536`` or
``vga:tcg_write:direct-after-reset@tcg,4096``.  For a lost write, ``op`` is
the first write to the page that no consumer reported and ``how`` says how
it was done (:func:`_how`); for ``code``, ``op`` is the op after which a TB
page was first dirty for CODE.  ``xen`` is not part of it: it only makes
xen_modified_memory append to a log that no stage reads.
``dirty_ladder/invariants.toml`` records every break, with the signatures (their
config part a pattern: ``*``, ``tcg,*``, ``kvm,65536``), the stages it breaks
on, a minimal trace and why; tests/test_invariants.py checks that a run finds
exactly that, and ``python -m dirty_ladder.invariants`` prints it per stage.
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from collections.abc import Iterable
from typing import Any

from .generate import ADDRESS_OPS, Chooser, RandomChooser, _weighted, place_op, random_config
from .machine import Machine
from .trace import (
    CLIENTS, TARGET_PAGE_BITS, TARGET_PAGE_SIZE, Block, Config, Trace, block_holding, find_ram_offset,
    decode, insert_block, page_align, validate,
)
from .views import dirty_pages_of

INVARIANTS = {
    "migration": "no-lost-migration-write",
    "vga": "no-lost-vga-write",
    "code": "code-clear-on-tb-pages",
}

WRITE_OPS = ("tcg_write", "kvm_write", "dma_write", "stl_phys_notdirty")


@dataclass(frozen=True)
class Break:
    """One place one invariant fails in one replay."""
    invariant: str
    op: str               # the lost write, or the op that dirtied CODE on a TB page
    how: str              # see :func:`check`
    index: int            # that op's index in the trace
    page: int             # the page concerned
    detail: str = field(default="", compare=False)

    @property
    def key(self) -> str:
        """The break without its config: ``invariant:op[:how]``."""
        return f"{self.invariant}:{self.op}" + (f":{self.how}" if self.how else "")


def config_name(config: Config) -> str:
    """The config values an invariant can depend on.  ``xen`` is left out: it
    only makes xen_modified_memory append to a log that no stage reads."""
    return f"{config.accel},{config.host_page_size}"


CONFIG_NAMES = tuple(f"{a},{h}" for a in ("tcg", "kvm") for h in (4096, 65536))


def signature(b: Break, config: Config) -> str:
    """``invariant:op[:how]@accel,host_page_size``, e.g.
    ``migration:kvm_write@kvm,65536``."""
    return f"{b.key}@{config_name(config)}"


def _pages(addr: int, length: int) -> list[int]:
    if length <= 0:
        return []
    return list(range(addr >> TARGET_PAGE_BITS, ((addr + length - 1) >> TARGET_PAGE_BITS) + 1))


def written_pages(machine: Machine, op: dict[str, Any]) -> list[int]:
    """The pages ``op`` writes, by the rules of this module (asked before it runs)."""
    name, accel = op["op"], machine.config.accel
    if name == "tcg_write":
        return _pages(op["addr"], op["size"]) if accel == "tcg" else []
    if name == "kvm_write":
        return [op["addr"] >> TARGET_PAGE_BITS] if accel == "kvm" else []
    if name == "dma_write":
        return _pages(op["addr"], op["len"])
    if name == "stl_phys_notdirty":
        return _pages(op["addr"], 4) if machine.stage.in_migration else []
    return []


def _span(addr: int, length: int) -> range:
    """The pages cpu_physical_memory_get_dirty asks about for (addr, length)."""
    end = (addr + length + TARGET_PAGE_SIZE - 1) >> TARGET_PAGE_BITS
    return range(addr >> TARGET_PAGE_BITS, end)


def _code_on_tb_pages(machine: Machine) -> set[int]:
    tb = [p for p, n in machine.tb_count.items() if n]
    if not tb:
        return set()
    npages = machine.last_ram_offset() >> TARGET_PAGE_BITS
    code = dirty_pages_of(machine.stage, "code", npages)
    return {p for p in tb if p < npages and code[p]}


def _walk(machine: Machine) -> set[int]:
    """Every page a walk of every block from start 0 reports (migration_next
    again and again until it returns >= the block's length)."""
    reported: set[int] = set()
    for block in list(machine.ram_list.blocks):
        for _ in range((block.length >> TARGET_PAGE_BITS) + 2):     # a stuck walk stops
            offset = machine.run_op({"op": "migration_next", "block": block.offset, "start": 0})
            if offset >= block.length:
                break
            reported.add((block.offset + offset) >> TARGET_PAGE_BITS)
    return reported


# what cleared a page's bit for a consumer, as named in a signature
CLEARERS = {"migration_setup": "sync", "migration_sync": "sync",
            "reset_dirty": "reset", "test_and_clear_dirty": "reset"}


@dataclass
class _Write:
    index: int
    op: str
    how: str


class _Consumer:
    """The writes a consumer (migration or VGA) still has to be told of."""

    def __init__(self, client: str):
        self.client = client
        self.pending: dict[int, _Write] = {}     # page -> its first write not reported yet
        self.cleared_by: dict[int, str] = {}     # page -> the last op that cleared its bit
        self.bits = None

    def watch(self, machine: Machine, name: str) -> None:
        npages = machine.last_ram_offset() >> TARGET_PAGE_BITS
        bits = dirty_pages_of(machine.stage, self.client, npages)
        if self.bits is not None:
            n = min(len(bits), len(self.bits))
            for page in (self.bits[:n] & ~bits[:n]).nonzero()[0]:
                self.cleared_by[int(page)] = CLEARERS.get(name, name)
        self.bits = bits


def _how(name: str, page: int, first_page: int, result: Any, consumer: _Consumer) -> str:
    """How a write was done, for the signature of its loss: a tcg_write
    "direct" (through a dirty TLB entry) names what last cleared the page's
    bit for the consumer ("direct-after-sync", "direct-after-reset"); a
    ranged write says whether the page is its first or a later one."""
    if name == "tcg_write":
        if result == "direct":
            return "direct-after-" + consumer.cleared_by.get(page, "nothing")
        return "trapped"
    if name in ("dma_write", "stl_phys_notdirty"):
        return "first-page" if page == first_page else "later-page"
    return ""


def check(stage_class: type, trace: Trace, invariants: Iterable[str] = tuple(INVARIANTS)) -> list[Break]:
    """Replay ``trace`` on a stage and return every break of ``invariants``.

    A lost write's Break names the first write to the page that no consumer
    reported, how it was done (:func:`_how`) and its op index; a CODE break
    names the op after which a page holding a TB was first dirty for CODE."""
    wanted = set(invariants)
    machine = Machine(stage_class, trace.config)
    consumers = {c: _Consumer(c) for c in ("migration", "vga") if c in wanted}
    out: list[Break] = []
    bad_code: set[int] = set()
    for c in consumers.values():
        c.watch(machine, "")
    for index, op in enumerate(trace.ops):
        name = op["op"]
        pages = written_pages(machine, op)
        result = machine.run_op(op)
        for c in consumers.values():
            c.watch(machine, name)
        mig, vga = consumers.get("migration"), consumers.get("vga")
        if name == "migration_next" and mig:
            block = next(b for b in machine.ram_list.blocks if b.offset == op["block"])
            if result < block.length:
                mig.pending.pop((block.offset + result) >> TARGET_PAGE_BITS, None)
        elif name == "test_and_clear_dirty" and op["client"] == "vga" and result and vga:
            for page in _span(op["addr"], op["len"]):
                vga.pending.pop(page, None)
        elif name == "ram_free" and vga:
            for page in [p for p in vga.pending if block_holding(machine.ram_list.blocks, p << TARGET_PAGE_BITS) is None]:
                del vga.pending[page]
        for c in consumers.values():
            if c.client == "migration" and not machine.migration_started:
                continue
            for page in pages:
                c.pending.setdefault(page, _Write(index, name, _how(name, page, pages[0], result, c)))
        if "code" in wanted:
            now = _code_on_tb_pages(machine)
            for page in sorted(now - bad_code):
                out.append(Break("code", name, "", index, page,
                                 f"op {index} ({name}) leaves TB page {page} dirty for CODE"))
            bad_code = now
    mig, vga = consumers.get("migration"), consumers.get("vga")
    if mig and mig.pending:
        final = copy.deepcopy(machine) if vga and vga.pending else machine
        final.run_op({"op": "migration_sync"})
        reported = _walk(final)
        for page, w in sorted(mig.pending.items()):
            if page not in reported:
                out.append(Break("migration", w.op, w.how, w.index, page,
                                 f"op {w.index} ({w.op}) wrote page {page}; no migration walk after it reports it"))
    if vga and vga.pending:
        machine.address_space_sync_dirty_bitmap()
        client = machine.client_number("vga")
        for page, w in sorted(vga.pending.items()):
            block = machine.qemu_get_ram_block(page << TARGET_PAGE_BITS)
            if not machine.stage.memory_region_test_and_clear_dirty(
                    block.mr, (page << TARGET_PAGE_BITS) - block.offset, TARGET_PAGE_SIZE, client):
                out.append(Break("vga", w.op, w.how, w.index, page,
                                 f"op {w.index} ({w.op}) wrote page {page}; no vga test_and_clear_dirty after it reports it"))
    return out


def signatures(stage_class: type, trace: Trace, invariants: Iterable[str] = tuple(INVARIANTS)) -> dict[str, Break]:
    """The signatures of every break of ``trace`` on a stage, each with its first break."""
    out: dict[str, Break] = {}
    for b in check(stage_class, trace, invariants):
        out.setdefault(signature(b, trace.config), b)
    return out


def shows(stage_class: type, trace: Trace, key: str) -> bool:
    """Does ``trace`` break on the stage with the key ``invariant:op[:how]``?"""
    return any(b.key == key for b in check(stage_class, trace, [key.split(":")[0]]))


def minimize(stage_class: type, trace: Trace, key: str) -> Trace:
    """ddmin over the ops (dirty_ladder.rungs.minimize) keeping the break ``key``
    on the stage; config values go back to their defaults where it survives."""
    from .rungs import minimize as ddmin
    return ddmin(trace, lambda t: shows(stage_class, t, key))


# ---------------------------------------------------------------- traces
# op name -> weight; no vga reset_dirty at all, and no migration-client
# reset_dirty / test_and_clear_dirty after migration_setup (see above)
BEFORE_SETUP = {
    "ram_alloc": 3, "ram_free": 2, "tb_translate": 3, "tlb_fill": 4, "tcg_write": 8,
    "dma_write": 3, "stl_phys_notdirty": 2, "kvm_write": 5, "kvm_sync": 2,
    "get_dirty": 1, "set_dirty": 2, "test_and_clear_dirty": 4, "reset_dirty": 4,
    "is_clean": 1, "log_global_start": 2, "log_global_stop": 1, "migration_setup": 6,
}
AFTER_SETUP = {
    "tb_translate": 3, "tlb_fill": 3, "tcg_write": 10, "dma_write": 4, "stl_phys_notdirty": 3,
    "kvm_write": 6, "kvm_sync": 2, "get_dirty": 1, "set_dirty": 2, "test_and_clear_dirty": 4,
    "reset_dirty": 2, "is_clean": 1, "log_global_start": 1, "log_global_stop": 1,
    "migration_sync": 6, "migration_walk": 5,
}
# the kinds of op a trace may leave out (migration_setup and the walks stay)
SWARM = ("ram_alloc", "ram_free", "tb_translate", "tlb_fill", "tcg_write", "dma_write",
         "stl_phys_notdirty", "kvm_write", "kvm_sync", "get_dirty", "set_dirty",
         "test_and_clear_dirty", "reset_dirty", "is_clean", "log_global_start", "log_global_stop",
         "migration_sync")
# ops after which a guest write is made likely
CONSUMERS = ("test_and_clear_dirty", "reset_dirty", "migration_setup", "migration_sync", "migration_walk",
             "kvm_sync")
PAGE_COUNTS = (1, 2, 3, 15, 16, 17, 63, 64, 65)
MAX_BLOCKS = 3


def _addr(chooser: Chooser, block: Block, room: int = 0, first: bool = False) -> int:
    """An address in ``block`` with ``room`` bytes after it, most often in the
    block's first two pages (where the ops of a short trace must meet for a
    write to be lost), at or just off a page boundary; with ``first`` (the
    start of a range), most often in the first page, so that the range
    crosses into the second."""
    last = block.length - room
    kind = chooser.choice(("hot", "hot", "hot", "hot", "hot", "hot", "page", "byte", "end"))
    if kind == "hot":
        top = min(1, max(0, last - 1) // TARGET_PAGE_SIZE)
        page = (0 if first and chooser.integer(0, 2) else chooser.integer(0, top)) * TARGET_PAGE_SIZE
        offset = chooser.choice((0, 0, 1, 2048, TARGET_PAGE_SIZE - 2, TARGET_PAGE_SIZE - 1))
        return block.offset + min(page + offset, max(0, last - 1))
    if kind == "page":
        return block.offset + chooser.integer(0, max(0, last - 1) // TARGET_PAGE_SIZE) * TARGET_PAGE_SIZE
    if kind == "end":
        return block.offset + max(0, last - chooser.integer(1, 8))
    return block.offset + chooser.integer(0, max(0, last - 1))


def _range(chooser: Chooser, block: Block) -> tuple[int, int]:
    """A range inside ``block``: empty, a few bytes, a page, several pages or the rest."""
    addr = _addr(chooser, block, first=True)
    room = block.end - addr
    kind = chooser.choice(("zero", "small", "small", "page", "page", "page", "pages", "rest"))
    if kind == "zero":
        return addr, 0
    if kind == "small":
        return addr, chooser.integer(1, min(room, 64))
    if kind == "page":
        return addr, min(room, TARGET_PAGE_SIZE)
    if kind == "pages":
        return addr, chooser.integer(1, room)
    return addr, room


def _clients(op: str) -> tuple[str, ...]:
    """The clients an op may name: no vga reset_dirty, and no migration
    client for reset_dirty or test_and_clear_dirty (see the module docstring)."""
    if op == "reset_dirty":
        return ("code",)
    if op == "test_and_clear_dirty":
        return ("vga", "vga", "code")
    return CLIENTS


def build_trace(chooser: Chooser, n_ops: int, config: Config | None = None) -> Trace:
    """A valid trace for the invariants: like dirty_ladder.generate's, without the
    ops that legitimately hide a write (see the module docstring), and with
    walks of the migration bitmap (runs of ``migration_next``) so that pages
    are sent and their next writes matter."""
    config = config or random_config(chooser)
    blocks: list[Block] = []
    ops: list[dict[str, Any]] = []
    migrating = False

    def alloc() -> None:
        pages = chooser.choice(PAGE_COUNTS)
        size = pages * TARGET_PAGE_SIZE - chooser.choice((0, 0, 0, TARGET_PAGE_SIZE // 2))
        offset = find_ram_offset(blocks, page_align(size))
        insert_block(blocks, Block(offset, page_align(size)))
        ops.append({"op": "ram_alloc", "size": size})
        if chooser.integer(0, 2):
            # a guest that uses the block at once: TLB entries for its first
            # pages (dirty ones, since a new block is dirty for every client)
            for page in range(min(3, pages)):
                ops.append({"op": "tlb_fill", "addr": offset + page * TARGET_PAGE_SIZE})

    for _ in range(chooser.integer(1, 2)):
        alloc()
    # swarm testing: each trace uses only some kinds of op, so that the ops
    # which would rescue a lost write (a later set_dirty, DMA, KVM sync ...)
    # are often absent altogether
    kinds = {k for k in SWARM if chooser.integer(0, 2)}
    before = {k: w for k, w in BEFORE_SETUP.items() if k not in SWARM or k in kinds}
    after = {k: w for k, w in AFTER_SETUP.items() if k not in SWARM or k in kinds}
    def emit(name: str, block: Block) -> None:
        nonlocal migrating
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
                host = chooser.choice((0, 0, chooser.integer(0, host_pages - 1)))
                addr = block.offset + host * hps + chooser.choice((0, TARGET_PAGE_SIZE, chooser.integer(0, hps - 1)))
                ops.append({"op": name, "addr": min(addr, block.offset + (host + 1) * hps - 1)})
        elif name in ADDRESS_OPS:
            ops.append(place_op(chooser, name, block, _addr, _range, _clients(name)))
        elif name == "migration_walk":
            pages = block.length // TARGET_PAGE_SIZE
            for _ in range(chooser.choice((1, 2, 3, pages + 1))):
                ops.append({"op": "migration_next", "block": block.offset, "start": 0})
        else:
            ops.append({"op": name})
            if name == "migration_setup":
                migrating = True

    guest_write = "tcg_write" if config.accel == "tcg" else "kvm_write"
    for _ in range(n_ops):                  # steps: a walk is one step
        name = _weighted(chooser, after if migrating else before)
        # four ops in five on the first block of the list, so that they meet
        block = blocks[0] if chooser.integer(0, 4) else chooser.choice(blocks)
        emit(name, block)
        if name in CONSUMERS and chooser.integer(0, 1):
            # the guest runs on while a consumer reads: a write races with
            # it, often into the last page of the range just consumed
            last = ops[-1]
            if "len" in last and last["len"] and guest_write == "tcg_write" and chooser.integer(0, 1):
                page = (last["addr"] + last["len"] - 1) & ~(TARGET_PAGE_SIZE - 1)
                ops.append({"op": "tcg_write", "addr": page + chooser.choice((0, 8, 2048)), "size": 4})
            else:
                emit(chooser.choice((guest_write, guest_write, "stl_phys_notdirty", "dma_write")), block)
    return validate(Trace(config, ops).as_dict())


def random_trace(seed: int, n_ops: int = 30, config: Config | None = None) -> Trace:
    return build_trace(RandomChooser(seed), n_ops, config)


# ---------------------------------------------------------------- the register
@dataclass
class Entry:
    """One recorded break (dirty_ladder/invariants.toml)."""
    id: str
    signatures: list[str]        # "invariant:op[:how]@config-pattern"
    stages: list[int]
    config: str                  # the config it needs, in words
    status: str                  # "series" (a commit of the series made it) or "before" (QEMU had it already)
    fixed_upstream: str
    what: str
    why: str
    trace: dict

    @property
    def invariants(self) -> set[str]:
        return {s.split(":")[0] for s in self.signatures}

    def matches(self, sig: str) -> bool:
        return any(signature_matches(pattern, sig) for pattern in self.signatures)


def signature_matches(pattern: str, sig: str) -> bool:
    """``key@accel,hps`` against ``key@pattern``, where the pattern is ``*``
    (any config), ``tcg,*`` (any host page size) or an exact ``kvm,65536``."""
    pkey, pconf = pattern.split("@")
    key, conf = sig.split("@")
    if pkey != key:
        return False
    if pconf == "*":
        return True
    return all(p in ("*", c) for p, c in zip(pconf.split(","), conf.split(",")))


def _stage_list(spec: list) -> list[int]:
    out: list[int] = []
    for item in spec:
        if isinstance(item, list):
            out.extend(range(item[0], item[1] + 1))
        else:
            out.append(item)
    return sorted(set(out))


def load_register() -> list[Entry]:
    text = resources.files(__package__).joinpath("invariants.toml").read_text(encoding="utf-8")
    out = []
    for e in tomllib.loads(text).get("break", []):
        out.append(Entry(e["id"], e["signatures"], _stage_list(e["stages"]), e["config"], e["status"],
                         e["fixed_upstream"], e["what"], e["why"], decode(e["trace"])))
    return out


def judge(n: int, invariant: str, found: Iterable[str], register: list[Entry] | None = None
          ) -> tuple[list[str], list[Entry]]:
    """(signatures found on stage ``n`` for ``invariant`` that no entry
    records, entries recording a break of ``invariant`` on stage ``n`` that
    none of the signatures found matches)."""
    register = load_register() if register is None else register
    entries = [e for e in register if n in e.stages and invariant in e.invariants]
    found = [s for s in found if s.split(":")[0] == invariant]
    new = [s for s in found if not any(e.matches(s) for e in entries)]
    missing = [e for e in entries if not any(e.matches(s) for s in found)]
    return new, missing


def entry_stages(entry: Entry) -> list[int]:
    """The stages on which the entry's minimal trace shows one of its breaks."""
    from stages import LAST, stage
    trace = validate(entry.trace)
    return [n for n in range(LAST + 1)
            if any(entry.matches(s) for s in signatures(stage(n), trace, entry.invariants))]


# ---------------------------------------------------------------- command line
def explore(n: int, examples: int, seed: int = 0) -> dict[str, tuple[Trace, Break]]:
    """Signatures found on stage ``n`` in ``examples`` random invariant traces."""
    from stages import stage
    found: dict[str, tuple[Trace, Break]] = {}
    cls = stage(n)
    for i in range(examples):
        chooser = RandomChooser(seed * 1_000_003 + i)
        trace = build_trace(chooser, chooser.integer(5, 40))
        for sig, b in signatures(cls, trace).items():
            found.setdefault(sig, (trace, b))
    return found


def _ranges(numbers: Iterable[int]) -> str:
    out: list[list[int]] = []
    for x in sorted(numbers):
        if out and out[-1][1] == x - 1:
            out[-1][1] = x
        else:
            out.append([x, x])
    return ", ".join(f"{a:02d}-{b:02d}" if a != b else f"{a:02d}" for a, b in out)


def main(argv: list[str] | None = None) -> int:
    """``python -m dirty_ladder.invariants [--examples N] [--seed S] [--stages 0-39]``:
    explore every stage, print per stage the breaks found against the register."""
    from stages import LAST
    from .bench import parse_stages
    from .cli.common import Parser, parse_one_line, positive, seed_value
    p = Parser(prog="python -m dirty_ladder.invariants", description=main.__doc__)
    p.add_argument("--examples", type=positive, default=1000, help="random traces per stage (default 1000)")
    p.add_argument("--seed", type=seed_value, default=0, help="seed (default 0)")
    p.add_argument("--stages", type=parse_stages, default=list(range(LAST + 1)),
                   help=f"stages to explore, e.g. 0-{LAST} (default) or 0,19,37-39")
    args = parse_one_line(p, argv)
    register = load_register()
    bad = 0
    print(f"{'stage':5}  {'invariant':26}  result")
    for n in args.stages:
        found = explore(n, args.examples, args.seed)
        for inv, name in INVARIANTS.items():
            new, missing = judge(n, inv, found, register)
            ids = [e.id for e in register if n in e.stages and inv in e.invariants]
            verdict = ("holds" if not ids else "breaks as recorded: " + ", ".join(ids))
            if new or missing:
                bad += 1
                verdict = ("NEW " + ", ".join(new) + " " if new else "") + \
                          ("NOT FOUND " + ", ".join(e.id for e in missing) if missing else "")
            print(f"{n:5d}  {name:26}  {verdict}", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    from .streams import finish
    raise SystemExit(finish(main))
