"""Nothing a user owns is lost.

Every command that writes a file writes only what the user asked for: a
file that exists is refused, named, unless --force; the book goes into a
new or empty directory or one holding a book it wrote before; reproducers
never take a name that is taken; the progress file is read with a size
limit, checked against its schema, keeps the keys the tool does not know,
and nothing is written when the command fails.  Each case of the issue is
a test here, run on the code before the fix and seen red.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from dirty_ladder import cli

ROOT = Path(__file__).resolve().parent.parent


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = cli.main(list(argv))
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def refused(result: tuple[int, str, str], *needles: str) -> str:
    """Exit 2, one line on stderr (no traceback) holding every needle."""
    rc, out, err = result
    assert rc == 2, (rc, out, err)
    assert "Traceback" not in out + err
    lines = err.splitlines()
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def listing(directory: Path) -> dict[str, bytes | None]:
    """Every file and directory under ``directory``, with the files' bytes."""
    return {str(p.relative_to(directory)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(directory.rglob("*"))}


def subprocess_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIRTY_LADDER_")}
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    env.update(extra)
    return env


def limited_memory():
    """A child that reads without a limit is stopped at 1 GiB, not by the OOM killer."""
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def run_subprocess(tmp_path: Path, *argv: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dirty_ladder", *argv], cwd=tmp_path, capture_output=True,
                          text=True, timeout=timeout, env=subprocess_env(tmp_path, **env),
                          preexec_fn=limited_memory)


@pytest.fixture(autouse=True)
def progress_file(tmp_path, monkeypatch):
    path = tmp_path / "state" / "progress.json"
    monkeypatch.setenv("DIRTY_LADDER_PROGRESS", str(path))
    return path


# ------------------------------------------------------------------ the book
PAGES = {"index.html": "<h1>the book</h1>", "style.css": "body {}", "stage-00.html": "<h1>Stage 0</h1>"}


@pytest.fixture
def fake_book(monkeypatch):
    """book.build replaced by one that writes PAGES (what the guard does is
    the same whatever the pages hold; the real build is tested once below)."""
    from dirty_ladder import book
    calls = []

    def build(out):
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        report = book.Report(out)
        for name, text in PAGES.items():
            (out / name).write_text(text, encoding="utf-8")
            report.pages.append(name)
        calls.append(out)
        return report

    monkeypatch.setattr(book, "build", build)
    return calls


def test_book_refuses_a_directory_holding_the_users_files(capsys, tmp_path, fake_book):
    site = tmp_path / "mysite"
    site.mkdir()
    (site / "index.html").write_text("my own index")
    (site / "style.css").write_text("my own style")
    before = listing(site)
    line = refused(run(capsys, "book", str(site)), str(site), "--force")
    assert "did not write" in line or "not a book" in line, line
    assert listing(site) == before


def test_book_refuses_an_empty_name(capsys, tmp_path, fake_book, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.txt").write_text("mine")
    before = listing(tmp_path)
    refused(run(capsys, "book", ""), "OUT")
    assert listing(tmp_path) == before


def test_book_writes_a_new_or_empty_directory_and_rewrites_its_own_book(capsys, tmp_path, fake_book):
    new = tmp_path / "a" / "new"
    rc, _, err = run(capsys, "book", str(new))
    assert rc == 0, err
    assert {p.name for p in new.iterdir()} >= set(PAGES)
    empty = tmp_path / "empty"
    empty.mkdir()
    rc, _, err = run(capsys, "book", str(empty))
    assert rc == 0, err
    # a book it wrote before is recognised and written again
    (new / "stage-00.html").write_text("an older page")
    rc, _, err = run(capsys, "book", str(new))
    assert rc == 0, err
    assert (new / "stage-00.html").read_text() == PAGES["stage-00.html"]
    # but a file the user added to it is theirs: refused, then kept with --force
    (new / "notes.txt").write_text("my notes")
    before = listing(new)
    refused(run(capsys, "book", str(new)), str(new), "notes.txt", "--force")
    assert listing(new) == before
    rc, _, err = run(capsys, "book", str(new), "--force")
    assert rc == 0, err
    assert (new / "notes.txt").read_text() == "my notes"


def test_book_drops_the_pages_of_its_last_book_that_it_no_longer_writes(capsys, tmp_path, fake_book):
    site = tmp_path / "site"
    PAGES["old-page.html"] = "gone next time"
    try:
        assert run(capsys, "book", str(site))[0] == 0
    finally:
        del PAGES["old-page.html"]
    assert (site / "old-page.html").exists()
    assert run(capsys, "book", str(site))[0] == 0
    assert not (site / "old-page.html").exists()


@pytest.fixture
def read_only(tmp_path):
    """A directory no one may write into (chmod for a user, chattr +i for root)."""
    path = tmp_path / "read-only"
    path.mkdir()
    (path / "kept.txt").write_text("kept")
    if os.geteuid() != 0:
        path.chmod(0o555)
        undo = lambda: path.chmod(0o755)          # noqa: E731
    else:
        chattr = shutil.which("chattr")
        if not chattr or subprocess.run([chattr, "+i", str(path)], capture_output=True).returncode:
            pytest.skip("running as root where chattr +i is not available: no directory is read-only")
        undo = lambda: subprocess.run([chattr, "-i", str(path)], check=True)   # noqa: E731
    try:
        yield path
    finally:
        undo()


def test_book_into_a_read_only_directory_is_one_line_and_leaves_nothing(capsys, tmp_path, fake_book, read_only):
    before = listing(tmp_path)
    refused(run(capsys, "book", str(read_only / "site")), str(read_only))
    refused(run(capsys, "book", str(read_only), "--force"), str(read_only))
    assert listing(tmp_path) == before


def test_book_where_a_page_name_is_a_directory_is_one_line_and_leaves_nothing(capsys, tmp_path, fake_book):
    site = tmp_path / "site"
    (site / "index.html").mkdir(parents=True)
    (site / "index.html" / "mine.txt").write_text("mine")
    before = listing(tmp_path)
    refused(run(capsys, "book", str(site)), str(site))                        # not a book of ours
    refused(run(capsys, "book", str(site), "--force"), "index.html", "directory")
    assert listing(tmp_path) == before


def test_book_that_fails_while_writing_leaves_nothing(capsys, tmp_path, monkeypatch):
    from dirty_ladder import book

    def build(out):
        (Path(out) / "index.html").write_text("half a book")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(book, "build", build)
    site = tmp_path / "site"
    refused(run(capsys, "book", str(site)), "No space left on device")
    assert not site.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    refused(run(capsys, "book", str(empty)), "No space left on device")
    assert listing(empty) == {}


def test_the_real_book_is_marked_and_written_again(tmp_path):
    """One real build: the marker names every file written, so a second run
    recognises the book (and refuses once the user has added a file)."""
    pytest.importorskip("jinja2", reason="the book extra is not installed (pip install -e '.[book]')")
    from dirty_ladder.cli.teaching import BOOK_MARKER
    site = tmp_path / "site"
    proc = run_subprocess(tmp_path, "book", str(site), timeout=300)
    assert proc.returncode == 0, proc.stderr
    marker = json.loads((site / BOOK_MARKER).read_text())
    written = {str(p.relative_to(site)) for p in site.rglob("*") if p.is_file()} - {BOOK_MARKER}
    assert set(marker["files"]) == written and "index.html" in written
    (site / "mine.html").write_text("mine")
    proc = run_subprocess(tmp_path, "book", str(site))
    assert proc.returncode == 2 and "mine.html" in proc.stderr and len(proc.stderr.splitlines()) == 1


# ------------------------------------------------------------------ trace -o, exercise -o, bench
def test_trace_random_refuses_to_overwrite_without_force(capsys, tmp_path):
    mine = tmp_path / "mine.json"
    mine.write_text("my own trace")
    refused(run(capsys, "trace", "random", "--seed", "1", "-o", str(mine)), str(mine), "--force")
    assert mine.read_text() == "my own trace"
    rc, _, err = run(capsys, "trace", "random", "--seed", "1", "-o", str(mine), "--force")
    assert rc == 0, err
    assert json.loads(mine.read_text())["format"] == "dirty-trace/1"
    refused(run(capsys, "trace", "random", "--seed", "1", "-o", str(tmp_path)), str(tmp_path))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []     # no temporary file left


def test_exercise_refuses_to_overwrite_without_force(capsys, tmp_path):
    mine = tmp_path / "mine.py"
    mine.write_text("my own work")
    refused(run(capsys, "exercise", "27", "-o", str(mine)), str(mine), "--force")
    assert mine.read_text() == "my own work"


BENCH_TINY = ("bench", "--size", "2M", "--walk-size", "1M", "--target-size", "4M", "--peak-size", "4M",
              "--no-targets", "--stages", "0,39", "--reps", "1", "--quiet")


def test_bench_refuses_to_overwrite_its_files_before_measuring(capsys, tmp_path):
    mine = tmp_path / "mine.json"
    mine.write_text("my results")
    picture = tmp_path / "mine.png"
    picture.write_bytes(b"my picture")
    refused(run(capsys, *BENCH_TINY, "--json-file", str(mine)), str(mine), "--force")
    refused(run(capsys, *BENCH_TINY, "--plot", str(picture)), str(picture), "--force")
    assert mine.read_text() == "my results" and picture.read_bytes() == b"my picture"
    # a run refused for its second file creates nothing for the first
    new = tmp_path / "new.json"
    refused(run(capsys, *BENCH_TINY, "--json-file", str(new), "--plot", str(tmp_path / "no" / "x.png")),
            "x.png")
    assert not new.exists()


def test_bench_json_file_with_force_is_replaced_whole(capsys, tmp_path):
    mine = tmp_path / "mine.json"
    mine.write_text("my results")
    rc, _, err = run(capsys, *BENCH_TINY, "--json-file", str(mine), "--force")
    assert rc == 0, err
    assert json.loads(mine.read_text())["stages"][0]["stage"] == 0


# ------------------------------------------------------------------ reproducers
def _untouched_starter(capsys, tmp_path: Path) -> Path:
    """Exercise 27's starter, unchanged: it keeps stage 26's Xen call, which
    rung 27's bridge does not, so every check of it finds a new difference."""
    path = tmp_path / "e27.py"
    rc, _, err = run(capsys, "exercise", "27", "-o", str(path))
    assert rc == 0, err
    return path


def test_reproducers_never_take_a_name_that_is_taken(capsys, tmp_path, monkeypatch):
    e27 = _untouched_starter(capsys, tmp_path)
    out_dir = tmp_path / "found"
    out_dir.mkdir()
    taken = out_dir / "new-difference-rung27-machine-1.json"
    taken.write_text("my own file")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    scope = tmp_path / "tiny.toml"          # one page, traces of one op: rung 27's Xen call shows in a second
    scope.write_text((ROOT / "dirty_ladder" / "scopes" / "one-page.toml").read_text().replace("depth = 50",
                                                                                             "depth = 1"))
    rc, out, err = run(capsys, "check", "27", "--exhaustive", "--scope", str(scope), "--level", "machine",
                       "--stage-file", str(e27), "--out-dir", str(out_dir), "--json")
    assert rc == 1, err
    (row,) = json.loads(out)["rungs"]
    files = [Path(f) for f in row["files"]]
    assert files and all(f.parent == out_dir and f.exists() for f in files)
    assert taken.read_text() == "my own file" and taken not in files
    assert list(cwd.iterdir()) == []
    # the same check again writes new files beside the first ones
    rc, out, _ = run(capsys, "check", "27", "--exhaustive", "--scope", str(scope), "--level", "machine",
                     "--stage-file", str(e27), "--out-dir", str(out_dir), "--json")
    again = [Path(f) for f in json.loads(out)["rungs"][0]["files"]]
    assert len(again) == len(files) and not set(again) & set(files)
    assert all(json.loads(f.read_text())["format"] == "dirty-trace/1" for f in files + again)


def test_reproducers_default_to_the_current_directory(capsys, tmp_path, monkeypatch):
    e27 = _untouched_starter(capsys, tmp_path)
    monkeypatch.chdir(tmp_path)
    taken = tmp_path / "new-difference-rung27-machine-1.json"
    taken.write_text("mine")
    rc, out, _ = run(capsys, "check", "27", "--examples", "20", "--level", "machine", "--stage-file", str(e27),
                     "--json")
    assert rc == 1
    files = json.loads(out)["rungs"][0]["files"]
    assert files and all(re.fullmatch(r"new-difference-rung27-machine-\d+\.json", f) for f in files)
    assert taken.read_text() == "mine" and "new-difference-rung27-machine-1.json" not in files


def test_reproducers_directory_must_exist_before_the_check_runs(capsys, tmp_path):
    refused(run(capsys, "check", "27", "--examples", "5", "--out-dir", str(tmp_path / "missing")),
            f"--out-dir {tmp_path / 'missing'}: no such directory")
    plain = tmp_path / "file"
    plain.write_text("")
    refused(run(capsys, "check", "27", "--examples", "5", "--out-dir", str(plain)), f"{plain}: not a directory")


# ------------------------------------------------------------------ the progress file
def test_the_progress_file_is_not_read_forever(tmp_path):
    """/dev/full and /dev/zero never end; a FIFO with no writer never opens.
    Each is refused in one line, and no starter is written."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for special in ("/dev/full", "/dev/zero", str(fifo)):
        proc = run_subprocess(tmp_path, "exercise", "11", timeout=30, DIRTY_LADDER_PROGRESS=special)
        assert proc.returncode == 2, (special, proc.stderr[-500:])
        assert len(proc.stderr.splitlines()) == 1 and special in proc.stderr, proc.stderr
        assert "regular file" in proc.stderr
        assert not (tmp_path / "exercise_11.py").exists()


def test_a_progress_file_too_large_is_refused(capsys, tmp_path, progress_file):
    progress_file.parent.mkdir(parents=True)
    document = {"format": "dirty-ladder-progress/1", "exercises": {}, "padding": "x" * (2 << 20)}
    progress_file.write_text(json.dumps(document))
    refused(run(capsys, "exercise", "11", "-o", str(tmp_path / "e.py")), str(progress_file), "bytes")
    assert not (tmp_path / "e.py").exists()


BAD_PROGRESS = {
    "not-json": ("{", "JSON"),
    "list": ("[]", "object"),
    "wrong-format": ('{"format": "something-else/1"}', "dirty-ladder-progress/1"),
    "exercises-a-list": ('{"format": "dirty-ladder-progress/1", "exercises": []}', "exercises"),
    "key-not-a-number": ('{"format": "dirty-ladder-progress/1", "exercises": {"x": {}}}', "'x'"),
    "key-out-of-range": ('{"format": "dirty-ladder-progress/1", "exercises": {"40": {}}}', "'40'"),
    "entry-a-string": ('{"format": "dirty-ladder-progress/1", "exercises": {"27": "done"}}', "27"),
    "entry-a-list": ('{"format": "dirty-ladder-progress/1", "exercises": {"27": []}}', "27"),
    "field-not-a-string": ('{"format": "dirty-ladder-progress/1", "exercises": {"27": {"done": 1}}}', "done"),
    "not-utf-8": (b"\xff\xfe{}", "UTF-8"),
}


@pytest.mark.parametrize("name", BAD_PROGRESS)
def test_a_bad_progress_file_is_one_line_and_nothing_is_written(capsys, tmp_path, progress_file, name):
    content, needle = BAD_PROGRESS[name]
    progress_file.parent.mkdir(parents=True)
    (progress_file.write_bytes if isinstance(content, bytes) else progress_file.write_text)(content)
    before = listing(tmp_path)
    starter = tmp_path / "e.py"
    refused(run(capsys, "exercise", "27", "-o", str(starter)), str(progress_file), needle)
    refused(run(capsys, "exercise", "--progress"), str(progress_file), needle)
    assert listing(tmp_path) == before                      # no starter, progress file untouched


def test_an_unwritable_progress_file_writes_no_starter(capsys, tmp_path, monkeypatch):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the progress directory would be")
    monkeypatch.setenv("DIRTY_LADDER_PROGRESS", str(blocker / "progress.json"))
    starter = tmp_path / "e.py"
    refused(run(capsys, "exercise", "27", "-o", str(starter)), "progress")
    assert not starter.exists()
    rc, _, err = run(capsys, "exercise", "27", "-o", str(starter))        # and a rerun does not say "exists"
    assert "exists" not in err


def test_the_progress_file_keeps_what_the_tool_does_not_know(capsys, tmp_path, progress_file):
    from dirty_ladder import exercises
    progress_file.parent.mkdir(parents=True)
    progress_file.write_text(json.dumps({
        "format": "dirty-ladder-progress/1", "owner": "me",
        "exercises": {"5": {"started": "2024-01-01T00:00:00+00:00", "note": "hard one"}}}))
    rc, _, err = run(capsys, "exercise", "27", "-o", str(tmp_path / "e.py"))
    assert rc == 0, err
    exercises.record_done(5)
    data = json.loads(progress_file.read_text())
    assert data["owner"] == "me"
    assert data["exercises"]["5"]["note"] == "hard one" and "done" in data["exercises"]["5"]
    assert "started" in data["exercises"]["27"]
    assert [p.name for p in progress_file.parent.iterdir()] == ["progress.json"]     # no temporary file left


# ------------------------------------------------------------------ writes are atomic
def test_a_write_that_fails_leaves_the_old_file_whole_and_no_temporary(tmp_path, monkeypatch):
    from dirty_ladder import files
    target = tmp_path / "out.json"
    target.write_text("the old content")

    def fail(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "replace", fail)
    with pytest.raises(files.FileRefused, match="No space left on device"):
        files.write_atomic(target, "the new content", force=True)
    assert target.read_text() == "the old content"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_atomic_writes_keep_the_mode_of_the_file_they_replace(tmp_path):
    from dirty_ladder import files
    target = tmp_path / "script.py"
    target.write_text("old")
    target.chmod(0o754)
    files.write_atomic(target, "new", force=True)
    assert target.read_text() == "new" and stat.S_IMODE(target.stat().st_mode) == 0o754
    fresh = tmp_path / "fresh.txt"
    files.write_atomic(fresh, "x")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~umask


def test_every_write_of_the_package_goes_through_the_one_helper():
    """No module of dirty_ladder/ opens a file for writing but files.py (the
    bench's plot and the book's pages are drawn into a temporary place the
    helper then moves)."""
    pattern = re.compile(r"""open\([^)]*["'][wax]b?\+?["']|\.write_text\(|\.write_bytes\(|savefig\(|copyfile\(""")
    offenders = []
    for path in sorted((ROOT / "dirty_ladder").rglob("*.py")):
        if path.name == "files.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    # these draw or write into the temporary place the helper gives them (the book's directory, the plot's file)
    allowed = {"dirty_ladder/book.py", "dirty_ladder/pictures.py", "dirty_ladder/bench/report.py"}
    assert [o for o in offenders if o.split(":")[0] not in allowed] == []
