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
- ``length-overflow``: a length of 2**64, and ``start + length`` past 2**64
  with each of them below it;
- ``length-past-end``: a range that starts inside the dirty state and ends past it;
- ``client-out-of-range``: a client the stage cannot hold: from stage 15 on,
  where C asserts ``client < DIRTY_MEMORY_NUM``, 3 and -1 (an unsigned huge
  number in C); at stages 13-14, where the client is shifted into the flag byte,
  8 and -1; before stage 13, where memory.c shifts ``1 << client`` into a flag
  for the byte, the same;
- ``client-and-address``: such a client and an address past the end (or
  negative) together.  The C meets the client first (its assertion, or its
  shift, comes before the memory it would touch), so the client's error is
  expected.

Each call must raise: AssertionError with the C condition where the C
asserts, otherwise ValueError or IndexError whose message names the argument
(for the dirty API itself: cpu_physical_memory_*, memory_region_*_dirty,
migration_bitmap_*, kvm_get_dirty_pages_log_range), and nothing may have
changed: the representation (dirty_ladder.views.raw_state), the migration bitmap
and its counter, the TLB and the Xen log are compared before and after.  The
message starts with the name of the function called, as the stage names it.

The exec.c and cputlb.c callers (notdirty_mem_write, invalidate_and_set_dirty,
stl_phys_notdirty, tlb_protect_code, tlb_unprotect_code_phys, tlb_set_page)
and the one-line accessors built on the flag accessors (is_dirty, is_clean,
set_dirty) are called with bad addresses too; they pass the address on and
fail in the dirty API they call, so their message names that function (one
the stage has) and its address argument (an ``addr`` or ``start``).  So does
cpu_physical_memory_reset_dirty from stage 30 on, which hands its start,
length and client unchanged to cpu_physical_memory_clear_dirty_range.

A client with an empty range (an aligned address, a length of 0) is checked
apart, in test_client_with_an_empty_range: the C meets the client there only
where it shifts it at the call (memory.c, stages 00-12) or asserts it at the
top of a function (stage 20 and 23 on).

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
PASS_ON = CALLERS + ("cpu_physical_memory_is_dirty", "cpu_physical_memory_is_clean",
                     "cpu_physical_memory_set_dirty")
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
    elif case in ("client-out-of-range", "client-and-address"):
        names = ["client"]
    else:
        names = [p for p in params if p in LENGTH] or ["section"]
    if "section" in params:
        return "section"
    return names[0]


def _cases(n, case):
    """(function, args, expected exception, name the message must hold)."""
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
            # each fits in 64 bits, their sum does not: C's start + length wraps round
            out.append((name, dict(addr=8192, length=(1 << 64) - 4096), ValueError, wrong))
        elif case == "length-past-end" and has_length:
            out.append((name, dict(addr=END - 4 * 4096, length=8 * 4096), IndexError, wrong))
        elif case == "client-out-of-range" and has_client:
            for client, expected, named in _bad_clients(n):
                out.append((name, dict(client=client), expected, named))
        elif case == "client-and-address" and has_client:
            for client, expected, named in _bad_clients(n):
                for addr in (END, FAR, -4096):
                    out.append((name, dict(client=client, addr=addr), expected, named))
    return out


def _bad_clients(n):
    """(client, exception, what the message holds): from stage 15 C's
    assertion; before, a client past the flag byte (this model's choice)."""
    if n >= 15:
        return [(client, AssertionError, "assert(client < DIRTY_MEMORY_NUM)") for client in (3, -1)]
    return [(client, ValueError, "client") for client in (8, -1)]


CASES = ("addr-past-end", "negative-addr", "negative-length", "length-overflow", "length-past-end",
         "client-out-of-range", "client-and-address")


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
            where = message.split(":", 1)[0]
            if (name in PASS_ON and case in ("addr-past-end", "negative-addr")
                    or name == "cpu_physical_memory_reset_dirty" and n >= 30):
                if not hasattr(m.stage, where):
                    problems.append(f"{call}: the message names {where!r}, which stage {n} does not have")
            elif where != name:
                problems.append(f"{call}: the message names {where!r}, not the function called: {message}")
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


def _meets_client_on_an_empty_range(n, name):
    """Where the C meets a client when the range is empty (an aligned
    address, a length of 0), read off the upstream commits: the name of the
    function whose shift or assertion it meets, or None (C does nothing).

    - stages 00-12: memory.c shifts ``1 << client`` at the call, whatever the
      range;
    - 13-22: the shift (and from 15 the assertion) is in the flag accessors,
      met once per page: an empty walk meets none;
    - from 20 (86a49582d) cpu_physical_memory_mask_dirty_range, renamed
      _clear_dirty_range at 25, asserts on entry; from 23 (9f2c43e41) so does
      cpu_physical_memory_get_dirty, which memory_region_get_dirty and
      memory_region_test_and_clear_dirty call first;
    - cpu_physical_memory_reset_dirty returns before anything for a length of
      0, so memory_region_reset_dirty never meets it from stage 13 on."""
    if name.startswith("memory_region_") and n <= 12:
        return name
    if name in ("cpu_physical_memory_mask_dirty_range", "cpu_physical_memory_clear_dirty_range") and n >= 20:
        return name
    if name in ("cpu_physical_memory_get_dirty", "memory_region_get_dirty",
                "memory_region_test_and_clear_dirty") and n >= 23:
        return "cpu_physical_memory_get_dirty"
    return None


@pytest.mark.parametrize("n", [pytest.param(n, id=f"stage{n:02d}") for n in range(LAST + 1)])
def test_client_with_an_empty_range(n):
    problems, checked = [], 0
    for name, params in functions(n):
        if "client" not in params or not set(params) & LENGTH:
            continue
        where = _meets_client_on_an_empty_range(n, name)
        for client, expected, named in _bad_clients(n):
            checked += 1
            m = _machine(n)
            args = _call_args(m, name, params, addr=4096, length=0, client=client)
            before = _snapshot(m)
            call = f"{name}(addr=4096, length=0, client={client})"
            try:
                getattr(m.stage, name)(*args)
            except expected as exc:
                if where is None:
                    problems.append(f"{call}: raised {exc!r}, but C does nothing with the client here")
                elif not str(exc).startswith(where + ":") or named not in str(exc):
                    problems.append(f"{call}: {exc!r} should name {where} and {named!r}")
            except Exception as exc:       # noqa: BLE001 - report the wrong kind of failure
                problems.append(f"{call}: raised {type(exc).__name__}({exc})")
            else:
                if where is not None:
                    problems.append(f"{call}: returned, but C meets the client in {where}")
            if _snapshot(m) != before:
                problems.append(f"{call}: changed the state")
    assert checked, "every stage has a function with a client and a range"
    assert not problems, f"stage {n}:\n" + "\n".join(problems)
