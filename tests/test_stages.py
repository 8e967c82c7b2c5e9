"""The ladder's shape: 40 stage modules, named, titled and documented as the
series is, each building on the one before, and a CHANGELOG in step."""

import importlib
import inspect
import re
from pathlib import Path

import pytest

from stages import LAST, MODULES, UnknownStage, stage

ROOT = Path(__file__).resolve().parent.parent
SERIES = (Path(__file__).parent / "data" / "series.md").read_text()
ROWS = {int(m.group(1)): (m.group(2).strip(), m.group(3).strip())
        for m in re.finditer(r"^\| (\d\d) \| (.+?) \| (.+?) \|", SERIES, re.M)}
STAGES = [pytest.param(n, id=f"stage{n:02d}") for n in range(LAST + 1)]


def test_forty_modules_in_order():
    assert LAST == 39 and len(MODULES) == 40
    files = sorted(p.stem for p in (ROOT / "stages").glob("s[0-9][0-9]_*.py"))
    assert files == MODULES
    assert [int(m[1:3]) for m in MODULES] == list(range(40))


@pytest.mark.parametrize("n", STAGES)
def test_stage_matches_series_md(n):
    S = stage(n)
    assert S.STAGE == n
    if n == 0:
        assert S.UPSTREAM == "c2d30667"
        return
    title, upstream = ROWS[n]
    assert S.TITLE == title
    hash_in_table = re.match(r"[0-9a-f]{9}", upstream)
    if hash_in_table:
        assert S.UPSTREAM.split()[0] == hash_in_table.group(0)
    else:
        assert S.UPSTREAM is None          # stage 01: not merged as such


@pytest.mark.parametrize("n", STAGES)
def test_docstring_names_title_hash_and_kind(n):
    S = stage(n)
    doc = inspect.getdoc(importlib.import_module(S.__module__))
    assert doc.splitlines()[0] == f"Stage {n:02d}: {S.TITLE}" or n == 0
    assert "Upstream:" in doc and "Kind:" in doc
    if S.UPSTREAM:
        assert S.UPSTREAM.split()[0] in doc
    if n:
        assert ("kept" in doc) or ("NOT kept" in doc), "say why behaviour is kept, or that it is not"


@pytest.mark.parametrize("n", [pytest.param(n, id=f"stage{n:02d}") for n in range(1, LAST + 1)])
def test_each_stage_builds_on_the_one_before(n):
    assert stage(n).__mro__[1] is stage(n - 1)


def test_changelog_in_step_with_stages():
    text = (ROOT / "CHANGELOG.md").read_text()
    entries = re.findall(r"^## Stage (\d\d): (.+)\n\n- Upstream: (.+)\n- Kind: (.+)\n- Module: `stages/(\w+)\.py`",
                         text, re.M)
    assert len(entries) == 40
    for n, title, upstream, kind, module in entries:
        S = stage(int(n))
        assert (title, kind, module) == (S.TITLE, S.KIND, MODULES[int(n)])
        assert upstream == (S.UPSTREAM or upstream) and (S.UPSTREAM or "not merged") in upstream


REMOVED = {
    9: "cpu_physical_memory_get_dirty_flags",
    11: "cpu_physical_memory_set_dirty_flags",
    12: "cpu_physical_memory_clear_dirty_flags",
    13: "MIGRATION_DIRTY_FLAG",
    20: "cpu_physical_memory_clear_dirty_flag",
    21: "cpu_physical_memory_set_dirty",
    25: "cpu_physical_memory_mask_dirty_range",
    29: "cpu_physical_memory_is_dirty",
}


@pytest.mark.parametrize("n,name", [pytest.param(n, f, id=f"stage{n:02d}-{f}") for n, f in REMOVED.items()])
def test_removed_functions_raise_attribute_error(n, name):
    assert hasattr(stage(n - 1), name)
    for later in range(n, LAST + 1):
        assert not hasattr(stage(later), name)
        with pytest.raises(AttributeError, match=f"removed at stage {n:02d}"):
            getattr(stage(later), name)


def test_unknown_stage_is_refused():
    for bad in (-1, 40, "3", True):
        with pytest.raises(UnknownStage):
            stage(bad)


def test_representation_changes_at_19_only():
    from dirty_ladder.machine import Machine
    from dirty_ladder.views import representation
    kinds = [representation(Machine(stage(n)).stage) for n in range(LAST + 1)]
    assert kinds == ["bytes"] * 19 + ["bitmaps"] * 21


@pytest.mark.parametrize("n", STAGES)
def test_declared_in_lists_exactly_what_exists(n):
    S = stage(n)
    for name in S.DECLARED_IN:
        assert hasattr(S, name) or name in ("CPUWriteMemoryFunc", "CPUReadMemoryFunc"), \
            f"stage {n} declares {name}, which it no longer has"


def test_user_facing_text_names_no_tracker_issue():
    """Help text, docstrings and the README speak to users, who do not see
    the project's issue tracker: no "issue 4" in them."""
    files = [ROOT / "README.md", ROOT / "CHANGELOG.md", *ROOT.glob("docs/*.md"),
             *ROOT.glob("stages/*.py"), *ROOT.glob("dirty_ladder/**/*.py"), *ROOT.glob("dirty_ladder/*.toml"),
             *ROOT.glob("tests/*.py")]
    pattern = re.compile(r"\bissues? #?\d+")
    found = [f"{p.relative_to(ROOT)}:{i}: {line.strip()}" for p in files if p.name != "test_stages.py"
             for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not found, "\n".join(found)
