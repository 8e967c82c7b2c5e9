"""The bench (dirty_ladder/bench/) on a tiny configuration: the shape of what it
reports, never its speeds (those are the bench's own output, not tests)."""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stages import LAST, stage
from dirty_ladder import bench
from dirty_ladder.views import raw_state

ROOT = Path(__file__).resolve().parent.parent
# 512-page curve; walks measured on 256 and 64 pages; targets on 1024 pages
TINY = ["--size", "2M", "--walk-size", "1M", "--target-size", "4M", "--peak-size", "4M",
        "--reps", "1", "--quiet"]


@pytest.fixture(scope="module")
def tiny_json():
    """One tiny run, scaled on purpose (--full-budget 0: every operation that
    can be scaled is measured on the walk guests), as JSON."""
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(TINY + ["--json", "--full-budget", "0"])
    import contextlib
    import io
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = bench.run(args)
    assert status == 0
    return json.loads(out.getvalue())


def test_json_has_a_record_per_stage(tiny_json):
    recs = tiny_json["stages"]
    assert [r["stage"] for r in recs] == list(range(LAST + 1))
    for r in recs:
        for key in ("sync_ns_per_page", "setup_ns_per_page", "set_range_ns_per_page",
                    "clear_range_ns_per_page", "get_dirty_ns_per_page", "bytes_per_page"):
            assert isinstance(r[key], float) and r[key] > 0, (r["stage"], key)
        assert r["title"] == stage(r["stage"]).TITLE
        assert set(r["measured"]) == set(bench.OPS)
    assert recs[0]["sync_ratio_to_00"] == 1.0


def test_bytes_per_page_follow_the_representation(tiny_json):
    for r in tiny_json["stages"]:
        assert r["bytes_per_page"] == (1.0 if r["stage"] < 19 else 3 / 8), r["stage"]
        assert r["representation"] == ("bytes" if r["stage"] < 19 else "bitmaps")
        assert r["clear_function"].endswith("mask_dirty_range" if r["stage"] < 25 else "clear_dirty_range")


def test_reference_and_scaling_are_reported(tiny_json):
    ref = tiny_json["reference"]
    assert ref["sync_ns_per_page"] > 0 and ref["pages"] == 512
    scaled = [m for r in tiny_json["stages"] for m in r["measured"].values() if m["scaled"]]
    assert scaled, "with --full-budget 0 the walks are scaled"
    for m in scaled:
        lin = m["linearity"]
        assert lin["pages"] == [64, 256] and lin["ratio"] > 0
    assert tiny_json["linearity"]["checked"] == len(scaled)


def test_every_measured_call_did_its_work(tiny_json):
    """Each sync counted exactly the pages of the KVM log, each setup returned
    the guest's pages, each get_dirty found the dirty last page."""
    assert tiny_json["problems"] == []


def test_targets_and_setup_model_are_reported(tiny_json):
    names = [t["name"] for t in tiny_json["targets"]]
    assert names == ["stage39_sync_vs_reference", "sync_fold_00_to_39", "stage39_setup_peak_memory"]
    for t in tiny_json["targets"]:
        assert isinstance(t["pass"], bool) and t["value"] > 0
    assert set(tiny_json["targets"][0]["values"]) == {"0%", "5%", "100%"}
    model = tiny_json["setup_model"]
    assert [(m["guest_gib"], m["seed_before_ms"], m["seed_after_ms"]) for m in model] == [
        (256, 6912, 296), (512, 14062, 1171)]
    for m in model:
        assert m["stage00_ms"] > 0 and m["stage39_ms"] > 0 and "scaled" in m["stage00_how"]
    peak = tiny_json["peak"]
    assert peak["pages"] == 1024 and peak["peak_bytes"] > 0
    assert peak["bitmaps_bytes"] == peak["dirty_bitmaps_bytes"] + peak["migration_bitmap_bytes"] + peak["kvm_log_bytes"]


def test_text_table_and_progress(capsys):
    status = bench.main(TINY[:-1] + ["--no-targets", "--stages", "0,38-39", "--clock", "cpu"])
    out, err = capsys.readouterr()
    assert status == 0
    assert "sync" in out and "B/page" in out and "ref " in out
    assert [line[:2] for line in out.splitlines() if line[:2] in ("00", "38", "39")] == ["00", "38", "39"]
    assert "targets:" not in out and "CPU time" in out
    assert "bench" in err                                  # the progress line


def test_pc_layout_runs():
    result = bench.bench(bench.Plan(main_bytes=1 << 20, walk_bytes=1 << 20, density=0.05, reps=1,
                                    stages=[0, 39], layout="pc", seed=0, targets=False,
                                    target_bytes=1 << 20, peak_bytes=1 << 20),
                         bench.Progress(False))
    extra = sum(size for _, size in bench.PC_EXTRA) >> 12
    assert result["stages"][0]["pages"] == 256 + extra
    assert result["problems"] == []


@pytest.mark.parametrize("n", [0, 18, 26, 39])
@pytest.mark.parametrize("layout", ["single", "pc"])
def test_direct_build_is_the_stages_allocation(n, layout):
    """The big guest of a stage whose allocation walks is filled directly; it
    must be the state the stage's own qemu_ram_alloc_from_ptr leaves."""
    small = bench.Guest(stage(n), 256 << 10, layout)
    direct = bench.Guest.direct(stage(n), 1 << 20, layout, small)
    real = bench.Guest(stage(n), 1 << 20, layout)
    assert raw_state(direct.st) == raw_state(real.st)
    assert [[b.offset, b.length] for b in direct.blocks()] == [[b.offset, b.length] for b in real.blocks()]


@pytest.mark.parametrize("density", [0.0, 0.05, 1.0])
def test_density_words(density):
    words = bench.density_words(1000, density, np.random.default_rng(1))
    count = int(np.bitwise_count(words).sum())
    assert words.size == 16 and int(words[-1]) >> (1000 % 64) == 0
    assert count == {0.0: 0, 1.0: 1000}.get(density, count)
    if density == 0.05:
        assert 20 < count < 90


@pytest.mark.parametrize("argv", [["--size", "1000"], ["--size", "4X"], ["--density", "101"],
                                  ["--stages", "40"], ["--reps", "0"]])
def test_bad_options_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(argv)
    assert e.value.code == 2
    assert "error" in capsys.readouterr().err


def test_plot_without_matplotlib_says_so(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)      # import matplotlib -> ImportError
    status = bench.main(TINY + ["--no-targets", "--plot", str(tmp_path / "b.png")])
    err = capsys.readouterr().err
    assert status == 2
    assert "matplotlib" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "b.png").exists()


def test_plot(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "b.png"
    assert bench.main(TINY + ["--no-targets", "--stages", "0,26-28,39", "--plot", str(path)]) == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_module_runs_on_its_own():
    proc = subprocess.run([sys.executable, "-m", "dirty_ladder.bench", "--help"], cwd=ROOT, check=False,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    for option in ("--size", "--density", "--json", "--plot", "--walk-size", "--target-size", "--peak-size"):
        assert option in proc.stdout
