"""The exhaustive check (dirty_ladder/explore.py) and the bridges.

- Every rung, explored within the ci scope (dirty_ladder/scopes/ci.toml) at
  the machine, representation and API levels: the bridge and stage N are
  exactly equal, each register entry's override differs from stage N-1 only
  where the entry says, and every entry whose scope is ci is found.
- Planted mistakes: stage 27 telling Xen ``length + 1``, and a second
  mistake at every other diverging rung, each at a place where the rung
  already differs, turn the rung red at once, without any conformance vector.
- The explorer's own machinery: scopes, shortest traces, closure, copies.

Run one rung with ``pytest tests/test_explore.py -k rung30``.  A larger
scope for the per-rung test: ``DIRTY_LADDER_SCOPE=medium python -m pytest
tests/test_explore.py -k exhaustive`` (a name or a scope file).
"""

import functools
import os

import pytest

from stages import LAST, stage
from dirty_ladder.bridges import OVERRIDES, bridge
from dirty_ladder.compare import problems, rung_classes
from dirty_ladder.explore import ScopeError, builtin_scopes, check_rung, explore, load_scope, parse_scope
from dirty_ladder.machine import MACHINE_FIELDS, Machine, clone, key
from dirty_ladder.register import load_register
from dirty_ladder.trace import Config

CI = load_scope("ci")
SCOPE = load_scope(os.environ.get("DIRTY_LADDER_SCOPE", "ci"))
REGISTER = load_register()
RUNGS = [pytest.param(r, id=f"rung{r:02d}") for r in range(1, LAST + 1)]
DIVERGING = sorted({d.rung for d in REGISTER})


@pytest.mark.parametrize("rung", RUNGS)
def test_exhaustive(rung):
    result = check_rung(rung, SCOPE)
    assert result.ok, f"rung {rung}, scope {SCOPE.name}, {result.status}:\n" + "\n".join(problems(result))


# ---------------------------------------------------------------- planted mistakes
def _xen_length_plus_one(self, start, length):
    from stages.bitmap import bitmap_set
    from stages.common import TARGET_PAGE_ALIGN, TARGET_PAGE_BITS
    end = TARGET_PAGE_ALIGN(start + length) >> TARGET_PAGE_BITS
    page = start >> TARGET_PAGE_BITS
    for client in (self.DIRTY_MEMORY_MIGRATION, self.DIRTY_MEMORY_VGA, self.DIRTY_MEMORY_CODE):
        bitmap_set(self.ram_list.dirty_memory[client], page, end - page)
    self.machine.xen_modified_memory(start, length + 1)


def _or_flags(st, addr, flags):
    st.ram_list.phys_dirty[addr >> 12] |= flags


# rung -> (function of stage N, what the planted version does after the real one)
PLANTS = {
    2: ("cpu_physical_memory_set_dirty_flags",            # also sets the CODE flag
        lambda self, r, addr, flags: _or_flags(self, addr, self.CODE_DIRTY_FLAG)),
    7: ("cpu_physical_memory_is_dirty",                   # forgets the migration flag
        lambda self, r, addr: self.cpu_physical_memory_get_dirty_flag(addr, self.VGA_DIRTY_FLAG)
        and self.cpu_physical_memory_get_dirty_flag(addr, self.CODE_DIRTY_FLAG)),
    9: ("cpu_physical_memory_get_dirty", lambda self, r, *args: 2 if r else 0),
    11: ("cpu_physical_memory_set_dirty",                 # sets a spare bit again
         lambda self, r, addr: self.cpu_physical_memory_set_dirty_flag(addr, 0x10)),
    14: ("cpu_physical_memory_set_dirty_flag",            # also sets the old migration bit
         lambda self, r, addr, client: _or_flags(self, addr, 0x08) if client == 2 else None),
    16: ("qemu_ram_alloc_from_ptr",                       # sets a spare bit of the block's first page
         lambda self, r, size: _or_flags(self, r, 0x10)),
    17: ("cpu_physical_memory_clear_dirty_flag", lambda self, r, *args: 0),
    24: ("cpu_physical_memory_get_dirty", lambda self, r, start, length, client: r or length == 0),
    30: ("tlb_reset_dirty_range_all",                     # also re-protects the page after the range
         lambda self, r, start, length: self.machine.cpu_tlb_reset_dirty_all((start + length) & ~0xfff, 1)),
    31: ("cpu_physical_memory_set_dirty_tracking", lambda self, r, enable: False),
    37: ("cpu_physical_memory_set_dirty_lebitmap",        # tells Xen once more
         lambda self, r, bitmap, start, pages: self.machine.xen_modified_memory(start, pages)),
    39: ("migration_bitmap_sync_range",                   # counts one page too many
         lambda self, r, start, length: setattr(self, "migration_dirty_pages",
                                                self.migration_dirty_pages + (start == 0))),
}


def _plant(rung):
    """(function name, replacement) for a second mistake in stage ``rung``, at
    a place where the rung already differs from the stage before."""
    if rung == 27:
        return "cpu_physical_memory_set_dirty_range", _xen_length_plus_one
    name, change = PLANTS[rung]
    original = getattr(stage(rung), name)

    @functools.wraps(original)                  # keeps its parameters, which the API level reads
    def planted(self, *args):
        return change(self, original(self, *args), *args)
    return name, planted


@pytest.mark.parametrize("rung", [pytest.param(r, id=f"rung{r:02d}") for r in DIVERGING])
def test_a_second_mistake_where_the_rung_already_differs_is_found(rung, monkeypatch):
    name, planted = _plant(rung)
    monkeypatch.setattr(stage(rung), name, planted)
    result = check_rung(rung, CI)
    assert result.new, f"rung {rung}: the planted mistake in {name} was not found ({result.status})"
    assert result.status == "NEW DIFFERENCE"


def test_plants_cover_every_diverging_rung():
    assert DIVERGING == [2, 7, 9, 11, 14, 16, 17, 24, 27, 30, 31, 37, 39]


def test_stage_27_telling_xen_length_plus_one_is_a_new_difference_with_a_one_op_trace(monkeypatch):
    monkeypatch.setattr(stage(27), "cpu_physical_memory_set_dirty_range", _xen_length_plus_one)
    result = check_rung(27, CI, levels=("machine",))
    xen = [d for d in result.new if d.place == "state.xen"]
    assert xen, problems(result)
    # a single ram_alloc under Xen already tells it the block's range
    assert [op["op"] for op in xen[0].trace.ops] == ["ram_alloc"]


# ---------------------------------------------------------------- bridges and overrides
def test_every_entry_names_an_override_and_every_override_is_used():
    assert {d.override for d in REGISTER} == set(OVERRIDES)


@pytest.mark.parametrize("rung", [pytest.param(r, id=f"rung{r:02d}") for r in DIVERGING])
def test_an_override_alone_is_not_the_bridge_where_a_rung_has_two_entries(rung):
    classes, exact, entry_pairs = rung_classes(rung, REGISTER)
    assert classes[0] is stage(rung - 1) and classes[-1] is stage(rung)
    assert classes[exact[0]] is bridge(rung, REGISTER)
    assert len(entry_pairs) == len([d for d in REGISTER if d.rung == rung])


def test_a_rung_without_entries_compares_its_two_stages():
    classes, exact, entry_pairs = rung_classes(5, REGISTER)
    assert classes == [stage(4), stage(5)] and exact == (0, 1) and entry_pairs == []


# ---------------------------------------------------------------- the explorer itself
TINY = {"depth": 40, "host_page_size": [4096], "accel": ["tcg"], "xen": [True], "block_pages": [1],
        "max_blocks": 1, "addresses": ["first", "unaligned"], "lengths": ["0", "rest"],
        "ops": ["ram_alloc", "tlb_fill", "tcg_write", "reset_dirty", "is_clean", "log_global_start"]}


def test_a_small_scope_closes_and_says_so():
    run = explore([stage(28), stage(29)], [(0, 1)], parse_scope(TINY))
    assert run.closed and not run.truncated
    assert run.verdict == f"closed at depth {run.depth}"
    assert not run.differences
    # the same scope cut short is only bounded
    short = explore([stage(28), stage(29)], [(0, 1)], parse_scope({**TINY, "depth": 2}))
    assert not short.closed and short.verdict == "bounded at depth 2"


def test_breadth_first_gives_a_shortest_trace():
    # stage 29 -> 30: a zero-length reset at an unaligned address no longer
    # clears the page; two ops are needed (a block, then the reset)
    run = explore([stage(29), stage(30)], [(0, 1)], parse_scope(TINY))
    dirty = run.differences[((0, 1), "machine:state.dirty")]
    assert [op["op"] for op in dirty.trace.ops] == ["ram_alloc", "reset_dirty"]
    assert dirty.trace.ops[1]["len"] == 0 and dirty.trace.ops[1]["addr"] % 4096 != 0


@pytest.mark.parametrize("bad, message", [
    ({**TINY, "depth": 0}, "depth"),
    ({**TINY, "accel": ["xen"]}, "accel"),
    ({**TINY, "addresses": ["middle"]}, "addresses"),
    ({**TINY, "colour": 1}, "unknown key 'colour'"),
    ({**TINY, "block_pages": [0]}, "block_pages"),
])
def test_a_bad_scope_is_one_precise_error(bad, message):
    with pytest.raises(ScopeError) as err:
        parse_scope(bad)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_unknown_scope_name_lists_the_built_in_ones():
    with pytest.raises(ScopeError, match="built-in scopes are ci, large, medium"):
        load_scope("huge")


def test_the_larger_built_in_scopes_contain_the_ci_alphabet():
    small = load_scope("ci")
    for name in ("medium", "large"):
        big = load_scope(name)
        assert big.depth >= small.depth and set(big.configs) >= set(small.configs)
        for field in ("block_pages", "addresses", "lengths", "clients", "ops", "write_sizes", "starts"):
            assert set(getattr(big, field)) >= set(getattr(small, field)), (name, field)
        assert big.max_blocks >= small.max_blocks


def test_machine_fields_are_all_copied_and_keyed():
    m = Machine(stage(39), Config())
    assert set(vars(m)) == set(MACHINE_FIELDS)


@pytest.mark.parametrize("n", [0, 18, 19, 39])
def test_a_clone_is_independent_and_keys_equal_states_alike(n):
    m = Machine(stage(n), Config(accel="tcg"))
    for op in ({"op": "ram_alloc", "size": 8192}, {"op": "tb_translate", "addr": 0},
               {"op": "tlb_fill", "addr": 4096}, {"op": "migration_setup"}):
        m.run_op(op)
    copy = clone(m)
    assert key(copy) == key(m) and copy.state() == m.state()
    copy.run_op({"op": "tcg_write", "addr": 4096, "size": 1})
    copy.run_op({"op": "reset_dirty", "addr": 0, "len": 4096, "client": "vga"})
    assert key(copy) != key(m) and copy.state() != m.state()
    assert m.state() == clone(m).state()


@pytest.mark.parametrize("n", range(LAST + 1), ids=lambda n: f"stage{n:02d}")
def test_read_only_ops_change_nothing(n):
    m = Machine(stage(n), Config(xen=True))
    m.run_op({"op": "ram_alloc", "size": 8192})
    before = key(m)
    for op in ({"op": "get_dirty", "addr": 2048, "len": 4096, "client": "code"}, {"op": "is_clean", "addr": 4096}):
        m.run_op(op)
        assert key(m) == before


# ---------------------------------------------------------------- every entry, in its scope
TARGETED = sorted({d.scope for d in REGISTER} - {"ci", "medium", "large"})


@pytest.mark.parametrize("name", TARGETED)
def test_each_targeted_scope_finds_its_entries_and_the_bridge_holds(name):
    scope = load_scope(name)
    rungs = sorted({d.rung for d in REGISTER if d.scope == name})
    for rung in rungs:
        result = check_rung(rung, scope)
        assert result.ok, f"rung {rung}, scope {name}, {result.status}:\n" + "\n".join(problems(result))
        mine = [e for e in result.entries if e.entry.scope == name]
        assert mine and all(e.required and not e.missing for e in mine)


def test_every_entry_names_a_scope_that_exists():
    names = set(builtin_scopes())
    assert {d.scope for d in REGISTER} <= names


def test_the_api_level_also_runs_on_states_the_machine_reaches():
    from dirty_ladder.explore import api_states, explore_api
    raw = {**TINY, "depth": 1, "api": {"layouts": [[1]], "patterns": ["", "vga"], "tlb": ["dirty"],
                                       "in_migration": [False], "addresses": ["first"], "lengths": ["0"],
                                       "machine_depth": 1}}
    scope = parse_scope(raw)
    wheres = [where for where, _ in api_states(scope, [stage(16), stage(17)])]
    assert len([w for w in wheres if "state" in w]) == 2                       # two patterns
    # from the empty machine, TINY's alphabet allows two ops: a block, or logging on
    assert [w["trace"] for w in wheres if "trace" in w] == [[{"op": "ram_alloc", "size": 4096}],
                                                            [{"op": "log_global_start"}]]
    run = explore_api([stage(16), stage(17)], [(0, 1)], scope)
    assert run.states == 4 and ((0, 1), "api:cpu_physical_memory_clear_dirty_flag:result") in run.differences


def test_the_api_level_compares_a_range_given_by_its_end_or_by_its_length():
    # rung 30 (a2f4d5bef): reset_dirty(start, end, client) -> (start, length,
    # client) and tlb_reset_dirty_range_all(start, end, length) -> (start,
    # length): the same range either way, so both are called.  Rung 11
    # (75218e7f2) dropped set_dirty_range's dirty_flags: no longer the same
    # call, so it is compared through its callers only.
    from dirty_ladder.compare import api_functions
    at_30 = api_functions(stage(29), stage(30))
    assert {"cpu_physical_memory_reset_dirty", "tlb_reset_dirty_range_all"} <= set(at_30)
    assert "cpu_physical_memory_set_dirty_range" not in api_functions(stage(10), stage(11))
    assert "cpu_physical_memory_set_dirty_range" in api_functions(stage(11), stage(12))
