"""The files the package writes and reads for its user, in one place.

Every file the package writes goes through here, so that none is lost or
left half written:

- :func:`write_atomic` -- a file written whole or not at all: the text goes
  to a temporary file in the same directory, which then replaces the target
  (``os.replace``).  A file that exists is refused, named, unless ``force``;
  a file replaced keeps its mode.
- :func:`staged` -- the same in two steps, for a command that writes two
  files and must write neither when the second fails (``exercise``: the
  starter and the progress file).
- :func:`write_new` / :func:`write_unique` -- a file created where no file
  is, never over one (``os.link`` of the finished temporary file), and a name
  taken from a numbered series until one is free (the reproducers).
- :func:`produce` -- a file another library writes (matplotlib's plot): it
  writes a temporary path with the same suffix, which then replaces the target.
- :func:`check_writable` -- before a long run: would its file be refused?
- :func:`read_limited` -- a small file read with a size limit, refused when
  it is not a regular file (a FIFO never opens, /dev/zero never ends).

Every refusal is a :class:`FileRefused` with a one-line message naming the
file.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

FORCE_HINT = "--force to overwrite it"


class FileRefused(Exception):
    """A file not written or not read: one line naming it."""


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def check_writable(path: str | os.PathLike, force: bool = False, hint: str = FORCE_HINT) -> Path:
    """``path`` as a Path, or a FileRefused when writing it would be refused:
    it is a directory, it exists and ``force`` is false, or its directory is
    missing."""
    path = Path(path)
    if str(path) in ("", "."):
        raise FileRefused("no file name given")
    if path.is_dir():
        raise FileRefused(f"{path} is a directory")
    if path.exists() and not force:
        raise FileRefused(f"{path} exists: {hint}")
    parent = path.parent
    if not parent.is_dir():
        raise FileRefused(f"cannot write {path}: {parent} is not a directory" if parent.exists()
                          else f"cannot write {path}: no directory {parent}")
    return path


class Staged:
    """A file written to a temporary place beside its target, not yet in
    place: :meth:`commit` moves it there, :meth:`discard` drops it."""

    def __init__(self, path: Path, temporary: Path, exclusive: bool):
        self.path, self.temporary, self.exclusive = path, temporary, exclusive

    def commit(self) -> Path:
        try:
            if self.exclusive:
                os.link(self.temporary, self.path)      # fails if the name was taken meanwhile
                os.unlink(self.temporary)
            else:
                os.replace(self.temporary, self.path)
        except FileExistsError:
            self.discard()
            raise
        except OSError as exc:
            self.discard()
            raise FileRefused(f"cannot write {self.path}: {_why(exc)}") from None
        return self.path

    def discard(self) -> None:
        try:
            os.unlink(self.temporary)
        except FileNotFoundError:
            pass


def _temporary(path: Path) -> tuple[int, Path]:
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise FileRefused(f"cannot write {path}: {_why(exc)}") from None
    return fd, Path(name)


def staged(path: str | os.PathLike, data: str | bytes, force: bool = False, hint: str = FORCE_HINT,
           exclusive: bool = False) -> Staged:
    """``data`` written beside ``path``, ready to replace it (see :class:`Staged`)."""
    path = check_writable(path, force or exclusive, hint)
    try:
        mode = stat.S_IMODE(path.stat().st_mode) if path.exists() and not exclusive else _default_mode()
    except OSError:
        mode = _default_mode()
    fd, temporary = _temporary(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(temporary, mode)
    except OSError as exc:
        Staged(path, temporary, exclusive).discard()
        raise FileRefused(f"cannot write {path}: {_why(exc)}") from None
    return Staged(path, temporary, exclusive)


def write_atomic(path: str | os.PathLike, data: str | bytes, force: bool = False, hint: str = FORCE_HINT) -> Path:
    """Write ``data`` to ``path`` whole or not at all; an existing file is
    refused unless ``force``."""
    return staged(path, data, force, hint).commit()


def write_new(path: str | os.PathLike, data: str | bytes) -> bool:
    """Create ``path`` holding ``data``; False (nothing written) when a file
    of that name exists."""
    if Path(path).exists():
        return False
    try:
        staged(path, data, exclusive=True).commit()
    except FileExistsError:
        return False
    return True


def write_unique(directory: str | os.PathLike, stem: str, suffix: str, data: str | bytes,
                 first: int = 1) -> Path:
    """Write ``data`` to the first free name ``STEM-K{suffix}`` (K = first,
    first + 1, ...) in ``directory``; the path written."""
    k = first
    while True:
        path = Path(directory) / f"{stem}-{k}{suffix}"
        if write_new(path, data):
            return path
        k += 1


def produce(path: str | os.PathLike, write: Callable[[str], None], force: bool = False,
            hint: str = FORCE_HINT) -> Path:
    """A file another library writes: ``write(temporary)`` writes a path beside
    ``path`` with the same suffix (matplotlib picks the format from it), which
    then replaces ``path``."""
    path = check_writable(path, force, hint)
    fd, temporary = _temporary(path)
    os.close(fd)
    target = temporary.with_name(temporary.stem + path.suffix)
    try:
        os.replace(temporary, target)
        write(str(target))
        os.chmod(target, _default_mode())
        os.replace(target, path)
    except OSError as exc:
        for leftover in (temporary, target):
            try:
                os.unlink(leftover)
            except FileNotFoundError:
                pass
        raise FileRefused(f"cannot write {path}: {_why(exc)}") from None
    except BaseException:
        for leftover in (temporary, target):
            try:
                os.unlink(leftover)
            except FileNotFoundError:
                pass
        raise
    return path


def read_limited(path: str | os.PathLike, limit: int) -> bytes | None:
    """The bytes of the regular file ``path`` (None when it does not exist);
    a FileRefused when it is something else (a FIFO, a device, a directory),
    is larger than ``limit`` bytes, or cannot be read."""
    path = Path(path)
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):     # no such file (a parent is not a directory)
        return None
    except OSError as exc:
        raise FileRefused(f"{path}: cannot read: {_why(exc)}") from None
    if not stat.S_ISREG(info.st_mode):
        raise FileRefused(f"{path}: not a regular file")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise FileRefused(f"{path}: cannot read: {_why(exc)}") from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):      # replaced since the stat above
            raise FileRefused(f"{path}: not a regular file")
        try:
            data = fh.read(limit + 1)
        except OSError as exc:
            raise FileRefused(f"{path}: cannot read: {_why(exc)}") from None
    if len(data) > limit:
        raise FileRefused(f"{path}: larger than {limit:,} bytes")
    return data


# ------------------------------------------------------------------ a directory of files (the book)
DIRECTORY_FORMAT = "dirty-ladder-directory/1"


def _entries(directory: Path) -> dict[str, str]:
    """Everything under ``directory``, relative: "file", "dir" or "other"."""
    found = {}
    for root, dirs, names in os.walk(directory):
        for name in dirs + names:
            path = Path(root) / name
            rel = str(path.relative_to(directory))
            found[rel] = ("dir" if path.is_dir() and not path.is_symlink()
                          else "file" if path.is_file() and not path.is_symlink() else "other")
    return found


def _marked(directory: Path, marker: str, what: str) -> set[str]:
    """The files the marker says an earlier run wrote (none when there is no
    marker, or it is not one of ours)."""
    import json
    try:
        raw = read_limited(directory / marker, 1 << 22)
        data = json.loads(raw.decode("utf-8")) if raw is not None else None
    except (FileRefused, ValueError):
        return set()
    if not isinstance(data, dict) or data.get("format") != DIRECTORY_FORMAT or data.get("what") != what:
        return set()
    listed = data.get("files")
    return {f for f in listed if isinstance(f, str)} if isinstance(listed, list) else set()


def _remove(path: Path) -> None:
    import shutil
    shutil.rmtree(path, ignore_errors=True)


def write_directory(out: str | os.PathLike, build: Callable[[Path], object], marker: str, what: str,
                    force: bool = False):
    """Fill the directory ``out`` with what ``build(temporary)`` writes into
    a temporary directory inside it, then move each file into place; the
    value ``build`` returns.

    ``out`` must be new, empty, or hold only what an earlier run wrote (the
    files its ``marker`` file lists); anything else is the user's, and is
    refused unless ``force`` (the files are then written among the user's,
    and none of the user's is removed).  Files of the earlier run that this
    one does not write are removed.  Nothing is left behind when the build
    fails or a file cannot go where it belongs (a page's name taken by a
    directory): every refusal is a FileRefused, one line."""
    if str(out) == "":
        raise FileRefused(f"no directory given for the {what}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileRefused(f"{out} is not a directory")
    earlier: set[str] = set()
    if out.is_dir():
        earlier = _marked(out, marker, what)
        ours = {marker} | earlier | {str(p) for f in earlier for p in Path(f).parents if str(p) != "."}
        entries = _entries(out)
        foreign = sorted(rel for rel, kind in entries.items()
                         if rel not in ours or (rel in earlier and kind != "file"))
        if foreign and not force:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise FileRefused(f"{out} holds files this tool did not write ({shown}): choose a new or empty "
                              f"directory, or --force to write the {what} among them")
    created = None                                  # the topmost directory made here, removed on failure
    if not out.exists():
        created = out
        while not created.parent.exists():
            created = created.parent
        try:
            out.mkdir(parents=True)
        except OSError as exc:
            raise FileRefused(f"cannot create {out}: {_why(exc)}") from None
    try:
        temporary = Path(tempfile.mkdtemp(prefix=".building-", dir=out))
    except OSError as exc:
        if created is not None:
            _remove(created)
        raise FileRefused(f"cannot write into {out}: {_why(exc)}") from None
    try:
        try:
            result = build(temporary)
        except OSError as exc:
            raise FileRefused(f"cannot write the {what} into {out}: {_why(exc)}") from None
        written = sorted(rel for rel, kind in _entries(temporary).items() if kind == "file")
        for rel in written:
            target = out / rel
            if target.is_dir() and not target.is_symlink():
                raise FileRefused(f"{target} is a directory: the {what} cannot write its file there")
            for parent in Path(rel).parents:
                if str(parent) != "." and (out / parent).exists() and not (out / parent).is_dir():
                    raise FileRefused(f"{out / parent} is not a directory: the {what} cannot write {rel} there")
        import json
        listing = json.dumps({"format": DIRECTORY_FORMAT, "what": what, "files": written}, indent=1) + "\n"
        staged_marker = staged(out / marker, listing, force=True)
    except BaseException:
        _remove(temporary)
        if created is not None:
            _remove(created)
        raise
    try:
        for rel in written:
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(temporary / rel, out / rel)
        for rel in sorted(earlier - set(written)):
            stale = out / rel
            if stale.is_file() and not stale.is_symlink():
                stale.unlink()
        staged_marker.commit()
    except OSError as exc:
        staged_marker.discard()
        raise FileRefused(f"cannot write the {what} into {out}: {_why(exc)}") from None
    finally:
        _remove(temporary)
    return result
