"""Misuse of each stage's API: arguments C would have taken and then read or
written out of bounds (or shifted out of a byte) must make Python raise, never
fail silently.

Every public function of a stage that takes an address, a length or a client
is called on a machine with one block of 64 pages (so 64 pages of dirty state
in both representations: 64 flag bytes, or one 64-bit word per bitmap), with
arguments that are wrong in one way:

- ``addr-past-end``: an address at the end of the dirty state, and one far past it;
- ``negative-addr``: an address of -4096 (numpy would index the last page);
- ``negative-length``: a length of -4096 (or, before stage 30, an ``end``
  before ``start``; a count of -1 pages for the KVM log);
- ``length-overflow``: ``start + length`` past 2**64;
- ``length-past-end``: a range that starts inside the dirty state and ends past it;
- ``client-out-of-range``: a client the stage cannot hold: from stage 15 on,
  where C asserts ``client < DIRTY_MEMORY_NUM``, 3 and -1 (an unsigned huge
  number in C); at stages 13-14, where the client is shifted into the flag byte,
  8 and -1; before stage 13, where memory.c shifts ``1 << client`` into a flag
  for the byte, the same.

Each call must raise: AssertionError with the C condition where the C
asserts, otherwise ValueError or IndexError whose message names the argument
(for the dirty API itself: cpu_physical_memory_*, memory_region_*_dirty,
migration_bitmap_*, kvm_get_dirty_pages_log_range), and nothing may have
changed: the representation (dirty_ladder.views.raw_state), the migration bitmap
and its counter, the TLB and the Xen log are compared before and after.

The exec.c and cputlb.c callers (notdirty_mem_write, invalidate_and_set_dirty,
stl_phys_notdirty, tlb_protect_code, tlb_unprotect_code_phys, tlb_set_page)
are called with bad addresses too; they fail in the dirty API they call, so
their message names that function's address argument (an ``addr`` or
``start``), not theirs.

What C defines is not misuse: ``migration_bitmap_find_and_reset_dirty`` with
a ``start`` past its block finds nothing and says so; clients 3-7 at stage 14
name spare bits of the byte.
"""

import inspect
import re

import numpy as np
import pytest

from stages import LAST, stage
from stages.bitmap import BITS_TO_LONGS
from dirty_ladder.machine import Machine, MemoryRegionSection
from dirty_ladder.views import CLIENTS, load_dirty, raw_state

PAGES = 64
END = PAGES * 4096
FAR = 1 << 40

ADDRESS = {"addr", "ram_addr", "addr1", "start", "offset"}
LENGTH = {"length", "size", "pages", "end"}
DIRTY_API = ("cpu_physical_memory_", "memory_region_", "migration_bitmap_", "kvm_get_dirty_pages_log_range")
CALLERS = ("notdirty_mem_write", "invalidate_and_set_dirty", "stl_phys_notdirty", "tlb_protect_code",
           "tlb_unprotect_code_phys", "tlb_set_page")
SKIP = {"migration_bitmap_sync", "cpu_physical_memory_set_dirty_tracking"}


def functions(n):
    """(name, parameter names) of every public function of stage n with an
    address, length or client parameter."""
    S = stage(n)
    out = []
    for name in sorted(dir(S)):
        if name in SKIP or not (name.startswith(DIRTY_API) or name in CALLERS):
            continue
        try:
            fn = getattr(S, name)
        except AttributeError:
            continue
        params = list(inspect.signature(fn).parameters)[1:]
        if set(params) & (ADDRESS | LENGTH | {"client", "section"}):
            out.append((name, params))
    return out


def _machine(n):
    m = Machine(stage(n))
    st = m.stage
    st.qemu_ram_alloc_from_ptr(END)
    st.ram_save_setup()
    rng = np.random.default_rng(n)
    pages = {c: rng.integers(0, 2, PAGES).astype(bool) for c in CLIENTS}
    for c in CLIENTS:                        # a wrapped index would touch the last page
        pages[c][-1] = c != "code"
    load_dirty(st, pages, rng.integers(0, 2, PAGES).astype(bool))
    st.migration_bitmap[:] = 0
    st.migration_dirty_pages = 0
    for page in range(PAGES):
        m.tlb[page] = bool(page % 2)
    m.xen_log.clear()
    return m


def _snapshot(m):
    st = m.stage
    return (raw_state(st), st.migration_bitmap.tobytes(), int(st.migration_dirty_pages),
            sorted(m.tlb.items()), [list(x) for x in m.xen_log], bool(st.in_migration))


def _client_arg(st, param, client="vga"):
    name = client.upper()
    if param == "client":
        return getattr(st, "DIRTY_MEMORY_" + name)
    flag = getattr(st, name + "_DIRTY_FLAG", None)
    return flag if flag is not None else 1 << getattr(st, "DIRTY_MEMORY_" + name)


def _call_args(m, name, params, addr=0, length=4096, client=None):
    """Arguments for ``name``: ``addr`` and ``length`` as asked, every other
    parameter valid.  ``end`` (before stage 30) is ``addr + length``; a page
    count is ``length`` host pages; a section covers [addr, addr + length)."""
    st = m.stage
    block = m.ram_list.blocks[0]
    args = []
    for p in params:
        if p == "mr":
            args.append(block.mr)
        elif p in ADDRESS:
            args.append(addr)
        elif p == "end":
            args.append(addr + length)
        elif p == "pages":
            args.append(length // 4096 if length >= 0 else -1)
        elif p in ("length", "size"):
            args.append(length if name != "notdirty_mem_write" else 4)
        elif p in ("client", "dirty_flag", "dirty_flags"):
            args.append(_client_arg(st, p) if client is None or p != "client" else client)
        elif p == "section":
            args.append(MemoryRegionSection(block.mr, addr, length))
        elif p == "bitmap":
            # a KVM log with its first and last host page dirty
            hps = 4096 if name == "cpu_physical_memory_set_dirty_lebitmap" else m.getpagesize()
            hpages = min(max(0, length) // hps, 1 << 16)
            log = np.zeros(max(1, BITS_TO_LONGS(hpages)), dtype=np.uint64)
            for bit in {0, max(0, hpages - 1)}:
                log[bit // 64] |= np.uint64(1 << (bit % 64))
            args.append(log)
        else:
            raise AssertionError(f"{name}: no argument for {p}")
    return args


def _argument(params, case):
    """The parameter a case makes wrong."""
    if case in ("addr-past-end", "negative-addr"):
        names = [p for p in params if p in ADDRESS] or ["section"]
    elif case == "client-out-of-range":
        names = ["client"]
    else:
        names = [p for p in params if p in LENGTH] or ["section"]
    if "section" in params:
        return "section"
    return names[0]


def _cases(n, case):
    """(function, args, expected exception, name the message must hold)."""
    m = _machine(n)
    out = []
    for name, params in functions(n):
        has_length = (bool(set(params) & LENGTH) or "section" in params) and name != "notdirty_mem_write"
        has_client = "client" in params
        wrong = _argument(params, case)
        if case == "addr-past-end":
            if name == "migration_bitmap_find_and_reset_dirty":
                continue                 # C: a start past the block finds nothing; not misuse
            for addr in (END, FAR):
                out.append((name, dict(addr=addr), IndexError, wrong))
        elif case == "negative-addr":
            out.append((name, dict(addr=-4096), ValueError, wrong))
        elif case == "negative-length" and has_length:
            if "end" in params:
                out.append((name, dict(addr=8192, length=-4096), ValueError, "end"))
            else:
                out.append((name, dict(length=-4096), ValueError, wrong))
        elif case == "length-overflow" and has_length:
            out.append((name, dict(addr=4096, length=1 << 64), ValueError, wrong))
        elif case == "length-past-end" and has_length:
            out.append((name, dict(addr=END - 4 * 4096, length=8 * 4096), IndexError, wrong))
        elif case == "client-out-of-range" and has_client:
            if hasattr(m.stage, "DIRTY_MEMORY_NUM") and n >= 15:
                for client in (3, -1):
                    out.append((name, dict(client=client), AssertionError, "assert(client < DIRTY_MEMORY_NUM)"))
            else:
                for client in (8, -1):
                    out.append((name, dict(client=client), ValueError, "client"))
    return out


CASES = ("addr-past-end", "negative-addr", "negative-length", "length-overflow", "length-past-end",
         "client-out-of-range")


@pytest.mark.parametrize("n, case", [pytest.param(n, c, id=f"stage{n:02d}-{c}")
                                     for n in range(LAST + 1) for c in CASES])
def test_misuse_raises_and_changes_nothing(n, case):
    problems = []
    cases = _cases(n, case)
    for name, bad, expected, named in cases:
        m = _machine(n)
        params = dict(functions(n))[name]
        args = _call_args(m, name, params, **bad)
        before = _snapshot(m)
        call = f"{name}({', '.join(f'{p}={a!r}' for p, a in zip(params, args) if p not in ('mr', 'bitmap'))})"
        try:
            getattr(m.stage, name)(*args)
        except expected as exc:
            message = str(exc)
            if name in CALLERS and case in ("addr-past-end", "negative-addr"):
                if not re.search(r"\b(addr|start)\b", message):
                    problems.append(f"{call}: {expected.__name__} does not name the address: {message}")
            elif not (named in message if named.startswith("assert") else re.search(rf"\b{named}\b", message)):
                problems.append(f"{call}: {expected.__name__} does not name {named!r}: {message}")
        except Exception as exc:       # noqa: BLE001 - report the wrong kind of failure
            problems.append(f"{call}: raised {type(exc).__name__}({exc}) instead of {expected.__name__}")
        else:
            problems.append(f"{call}: returned silently, {expected.__name__} expected")
        if _snapshot(m) != before:
            problems.append(f"{call}: changed the state before failing")
    assert cases, "every stage has functions this case applies to"
    assert not problems, f"stage {n}, {case}:\n" + "\n".join(problems)


@pytest.mark.parametrize("n", [pytest.param(n, id=f"stage{n:02d}") for n in range(LAST + 1)])
def test_valid_arguments_still_work(n):
    # the checks refuse only what is out of bounds: the first and last page,
    # a whole-RAM range and an empty range at the end all pass
    for name, params in functions(n):
        for addr, length in ((0, 4096), (END - 4096, 4096), (0, END), (END, 0)):
            if name == "cpu_physical_memory_set_dirty_lebitmap" and length == END:
                continue
            if not (set(params) & LENGTH) and addr == END:
                continue
            m = _machine(n)
            args = _call_args(m, name, params, addr=addr, length=length)
            if name in CALLERS and addr == END:
                continue
            if name == "notdirty_mem_write":
                continue            # TB code below it; covered by the conformance vectors
            getattr(m.stage, name)(*args)
