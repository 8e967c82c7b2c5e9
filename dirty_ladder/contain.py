"""A user's stage module, run contained.

``verify FILE`` and every ``--stage-file FILE`` import a module the user
wrote and run its code.  That code may print, loop forever, call
``sys.exit`` or ``os._exit``, crash the interpreter, or change the ladder's
own classes and functions (the very code that judges it).  So it runs in a
child process (:func:`run`):

- with a time limit: at ``timeout`` seconds the child is killed and the run
  fails in one line;
- with its output captured: the child's standard output and error (file
  descriptors 1 and 2, so ``print``, ``os.write`` and C code alike) go to a
  log file (:func:`log_path`); the tool's own output goes through the
  streams :func:`tool_streams` gives, which hand it to the parent to write,
  so a verdict or ``--json`` holds only what the tool wrote;
- ended by SystemExit, ``os._exit``, a signal or a crash: the run fails,
  naming what happened (:class:`Ended`);
- with the ladder checked unchanged: the stage modules' classes and the
  modules of ``stages`` and ``dirty_ladder`` are fingerprinted before the
  user's module is loaded, and compared after it is loaded
  (:func:`check_ladder`) and when the run ends; a change fails the run,
  naming what was changed;
- stopped by Ctrl-C: the parent kills the child (which ignores SIGINT)
  and raises KeyboardInterrupt.

The child sends what it reports on the way (:func:`report`) and its result
to the parent through a pipe; the result must pickle.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import pickle
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEFAULT_TIMEOUT = 300.0                 # seconds; --timeout
KILL_GRACE = 2.0                        # seconds to wait for a child that sent its result to exit

_connection = None                      # in the child: the pipe to the parent
_streams: tuple[Any, Any] | None = None     # in the child: the tool's stdout and stderr
_ladder: dict | None = None             # in the child: the ladder's fingerprint before the user's code ran
_file = ""                              # in the child: the user's file, for messages


class Ended(Exception):
    """The user's code did not let the run finish: it timed out, exited, was
    killed or crashed, or changed the ladder.  One line."""


# ------------------------------------------------------------------ in the child
def inside() -> bool:
    """Is this the child process of :func:`run`?"""
    return _connection is not None


def report(event: Any) -> None:
    """In the child: send ``event`` to the parent's ``on_event``."""
    if _connection is not None:
        _connection.send(("event", event))


def tool_streams() -> tuple[Any, Any]:
    """Where the tool writes (stdout, stderr): the process's own streams, or in
    the child the parent's, while the user's output goes to the log."""
    return _streams if _streams is not None else (sys.stdout, sys.stderr)


LADDER_PACKAGES = ("stages", "dirty_ladder")


def _ours(name: str) -> bool:
    from .model import USER_MODULE_PREFIX
    return (any(name == p or name.startswith(p + ".") for p in LADDER_PACKAGES)
            and USER_MODULE_PREFIX not in name and name != __name__)


def _fingerprint() -> dict[str, dict[str, int]]:
    """Every name of the ladder's modules, and every attribute of the classes
    they define, with the identity of its value."""
    found: dict[str, dict[str, int]] = {}
    for name, module in list(sys.modules.items()):
        if module is None or not _ours(name):
            continue
        names = dict(vars(module))
        found[name] = {k: id(v) for k, v in names.items()}
        for k, v in names.items():
            if isinstance(v, type) and getattr(v, "__module__", None) == name:
                found[f"{name}.{k}"] = {a: id(x) for a, x in vars(v).items()}
    return found


LAZY = {"__slotnames__"}                 # what Python itself adds to a class (pickle caches it there)


def _changes(before: dict[str, dict[str, int]]) -> list[str]:
    after = _fingerprint()
    changed = []
    for owner, names in before.items():
        now = after.get(owner)
        if now is None:
            continue
        is_class = owner not in sys.modules
        for k, ident in names.items():
            if now.get(k) != ident:
                changed.append(f"{owner}.{k}")
        if is_class:                              # a class gains no attribute either (a new override)
            changed += [f"{owner}.{k}" for k in now.keys() - names.keys() - LAZY]
    return sorted(changed)


def _load_the_ladder() -> None:
    """Import what the checks use, so that its fingerprint is taken before the
    user's module can touch it."""
    import importlib

    from stages import LAST, stage
    for n in range(LAST + 1):
        stage(n)
    for name in ("bitmap", "common"):
        importlib.import_module(f"stages.{name}")
    for name in ("bridges", "check", "compare", "conformance", "explore", "exercises", "machine", "model",
                 "register", "rungs", "trace", "verify", "views"):
        importlib.import_module(f"dirty_ladder.{name}")


def check_ladder() -> None:
    """In the child: an :class:`Ended` if the user's code has changed the
    ladder since the child started (nothing outside the child)."""
    if _ladder is None:
        return
    changed = _changes(_ladder)
    if changed:
        more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
        raise Ended(f"{_file} changes the ladder's own code ({changed[0]}{more}): a stage module may define "
                    f"its class Stage and its own names, and change nothing of the ladder's")


def _send_outcome(kind: str, payload: Any) -> None:
    try:
        _connection.send((kind, payload))
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        _connection.send(("error", f"its result could not be sent back ({type(exc).__name__})"))


def _describe(exc: BaseException) -> str:
    from .model import exception_text
    return exception_text(exc)


class _ToParent(io.TextIOBase):
    """In the child: a stream of the tool's whose text the parent writes to
    its own stream of the same name (so that it lands wherever that one
    goes, a terminal, a pipe, pytest's capture)."""

    def __init__(self, name: str, tty: bool):
        super().__init__()
        self.name, self.tty, self.buffer_text = name, tty, ""

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> int:
        self.buffer_text += text
        if "\n" in text:
            self.flush()
        return len(text)

    def flush(self) -> None:
        if self.buffer_text and _connection is not None:
            text, self.buffer_text = self.buffer_text, ""
            _connection.send(("write", (self.name, text)))


def _child(fn: Callable, args: tuple, kwargs: dict, log: Path, ttys: tuple[bool, bool]) -> None:
    """The child's whole life: output to the log, the ladder fingerprinted,
    ``fn`` run, its outcome sent."""
    global _streams, _ladder
    signal.signal(signal.SIGINT, signal.SIG_IGN)            # Ctrl-C is the parent's to handle
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    user = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", errors="replace",
                            write_through=True)
    sys.stdout = sys.stderr = user
    tool_out, tool_err = _ToParent("stdout", ttys[0]), _ToParent("stderr", ttys[1])
    _streams = (tool_out, tool_err)
    try:
        _load_the_ladder()
        _ladder = _fingerprint()
        value = fn(*args, **kwargs)
        check_ladder()
        _flush(tool_out, tool_err)
        _send_outcome("result", value)
    except SystemExit as exc:
        _flush(tool_out, tool_err)
        _send_outcome("exit", exc.code if isinstance(exc.code, (int, str, type(None))) else repr(exc.code))
    except Ended as exc:
        _flush(tool_out, tool_err)
        _send_outcome("error", str(exc).removeprefix(f"{_file} "))
    except BaseException as exc:            # noqa: BLE001 -- sent to the parent, raised there or told in one line
        _flush(tool_out, tool_err)
        try:
            home = type(exc).__module__
            if _ours(home) or home == "builtins":
                pickle.loads(pickle.dumps(exc))
                _send_outcome("raise", exc)
            else:
                _send_outcome("error", f"raised {_describe(exc)}")
        except Exception:                   # noqa: BLE001 -- not picklable: its text
            _send_outcome("error", f"raised {_describe(exc)}")


def _flush(*streams) -> None:
    for s in streams:
        try:
            s.flush()
        except Exception:                   # noqa: BLE001 -- a reader gone: the parent says so
            pass


# ------------------------------------------------------------------ in the parent
def state_directory() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state) / "dirty-ladder"


def log_path(file: str | os.PathLike) -> Path:
    """Where the output of the user's module ``file`` is kept: the ladder's
    state directory, ``stage-output/NAME.log`` (replaced on each run)."""
    return state_directory() / "stage-output" / f"{Path(file).stem or 'stage'}.log"


def new_log() -> Path:
    """An empty file for a child's output (in the temporary directory until
    :func:`keep_log` knows whether there is anything to keep)."""
    fd, name = tempfile.mkstemp(prefix="dirty-ladder-stage-output-", suffix=".log")
    os.close(fd)
    return Path(name)


def keep_log(log: Path, file: str | os.PathLike) -> Path | None:
    """The child's output moved to :func:`log_path` (left where it is if that
    cannot be written), or None, and the file removed, when there is none."""
    import shutil
    try:
        if log.stat().st_size == 0:
            log.unlink()
            return None
    except FileNotFoundError:
        return None
    target = log_path(file)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(log, target)
    except OSError:
        return log
    return target


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _kill(pid: int) -> int:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return os.waitpid(pid, 0)[1]


def run(fn: Callable, *args: Any, file: str, timeout: float = DEFAULT_TIMEOUT, log: Path,
        on_event: Callable[[Any], None] | None = None, what: str = "run", **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` in a child process, contained (see the module's
    docstring); its value.  An exception it raises is raised here when it
    pickles and is the ladder's or Python's own; what the user's code does
    to end the run is an :class:`Ended` naming ``file``."""
    global _connection, _file
    reader, writer = multiprocessing.get_context("fork").Pipe(duplex=False)
    ttys = tuple(bool(getattr(s, "isatty", lambda: False)()) for s in (sys.stdout, sys.stderr))
    for stream in (sys.stdout, sys.stderr):
        _flush(stream)
    pid = os.fork()
    if pid == 0:                                            # the child
        status = 0
        try:
            reader.close()
            _connection, _file = writer, str(file)
            _child(fn, args, kwargs, log, ttys)
        except BaseException:                               # noqa: BLE001 -- nothing may escape a child
            status = 70
        finally:
            os._exit(status)
    writer.close()
    deadline = time.monotonic() + timeout
    outcome: tuple[str, Any] | None = None
    status = None
    try:
        while outcome is None:
            left = deadline - time.monotonic()
            if left <= 0:
                status = _kill(pid)
                raise Ended(f"{file}: stopped after {timeout:g} s (--timeout {timeout:g}): {what} did not "
                            f"finish in time (an endless loop?); raise the limit with --timeout SECONDS")
            try:
                ready = reader.poll(min(left, 0.25))
            except (EOFError, OSError):
                ready = True
            if not ready:
                done, wait_status = os.waitpid(pid, os.WNOHANG)
                if done:                                    # ended, the pipe held open by its children
                    status = wait_status
                    break
                continue
            try:
                kind, payload = reader.recv()
            except (EOFError, OSError):
                break
            if kind == "write":
                name, text = payload
                stream = getattr(sys, name)
                stream.write(text)
                stream.flush()
            elif kind == "event":
                if on_event is not None:
                    on_event(payload)
            else:
                outcome = (kind, payload)
    except BaseException:                                   # Ctrl-C, an on_event that fails: stop the child
        if status is None:
            status = _kill(pid)
        raise
    finally:
        reader.close()
        if status is None:
            status = _reap(pid)
    if outcome is None:
        code = os.waitstatus_to_exitcode(status)
        if code < 0:
            how = (f"was killed by {_signal_name(-code)}"
                   + (" (a crash)" if -code in (signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE,
                                                signal.SIGABRT) else ""))
        else:
            how = f"ended with exit status {code} (os._exit?)"
        raise Ended(f"{file}: the process running your module {how} before {what} finished")
    kind, payload = outcome
    if kind == "result":
        return payload
    if kind == "raise":
        raise payload
    if kind == "exit":
        raise Ended(f"{file}: your module raised SystemExit({payload!r}) before {what} finished")
    raise Ended(f"{file}: {payload}")


def _reap(pid: int) -> int:
    """The exit status of a child that has sent its outcome (killed if it
    does not exit within KILL_GRACE seconds)."""
    deadline = time.monotonic() + KILL_GRACE
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.01)
    return _kill(pid)
