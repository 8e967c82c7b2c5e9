"""Standard output that goes away: ``| head``, ``> /dev/full``.

Every command of the package (``dirty-ladder``, ``python -m
dirty_ladder.invariants``, ``python -m dirty_ladder.bench``) ends through
:func:`finish`, so that a reader closing the pipe early ends the command
quietly and an output that cannot be written (a full disk) ends it with one
line on stderr, never with a traceback, neither in the command nor when the
interpreter flushes stdout on its way out.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable

# The exit status when stdout cannot be written (not a user mistake: 1).
WRITE_FAILED = 1


class OutputError(Exception):
    """Standard output could not be written (other than a closed pipe)."""


class _Stdout:
    """sys.stdout as ``finish`` runs a command: the same stream, but a write
    or flush that fails says so (OutputError), so that the failure is told
    apart from any other OSError."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputError(exc.strerror or str(exc)) from None

    def flush(self) -> None:
        try:
            self.stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputError(exc.strerror or str(exc)) from None

    def __getattr__(self, name: str):        # fileno, isatty, encoding, ...
        return getattr(self.stream, name)


def _drop_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush of
    what is still buffered cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):   # no file behind stdout
        pass


def finish(main: Callable[[], int]) -> int:
    """Run ``main`` and flush stdout; the exit status.

    A reader that went away (BrokenPipeError) ends the command quietly, with
    ``main``'s status if it had returned, else 0; a write to stdout that
    fails otherwise (``ENOSPC``, ``EIO``) is one line on stderr and status 1.
    """
    status = 0
    original = sys.stdout
    sys.stdout = _Stdout(original)
    try:
        status = main()
        sys.stdout.flush()
    except BrokenPipeError:
        _drop_stdout()
    except OutputError as exc:
        _drop_stdout()
        print(f"error: cannot write the output: {exc}", file=sys.stderr)
        status = WRITE_FAILED
    finally:
        sys.stdout = original
    return status
