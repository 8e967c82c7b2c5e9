"""A progress line on stderr for long replays (``dirty-ladder replay``).

A background thread draws it, so that it moves on even while one op runs
for minutes (a page walk over a huge guest).  On a terminal the line is
rewritten in place from the first second on and erased at the end;
elsewhere (a log, a pipe) a line is written only once the replay has run
for LOG_AFTER seconds, then every LOG_EVERY seconds.  Standard output is
never touched, so ``--json`` stays clean.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

TTY_AFTER, TTY_EVERY = 1.0, 0.5          # seconds
LOG_AFTER, LOG_EVERY = 15.0, 15.0


class ReplayProgress:
    """Where a replay is: which stage (of how many) and which op."""

    def __init__(self, ops: list[dict[str, Any]], stages: list[int], stream=None):
        self.ops, self.stages = ops, stages
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.after, self.every = (TTY_AFTER, TTY_EVERY) if self.tty else (LOG_AFTER, LOG_EVERY)
        self.stage: int | None = None
        self.position = 0
        self.index = 0
        self.drawn = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="replay-progress", daemon=True)
        self._t0 = time.monotonic()

    # called by the replay, in the main thread
    def at_stage(self, n: int) -> None:
        self.stage, self.index = n, 0
        self.position += 1

    def at_op(self, index: int) -> None:
        self.index = index

    def __enter__(self) -> ReplayProgress:
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        if self.tty and self.drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()

    # the thread
    def line(self, elapsed: float) -> str:
        where = "starting" if self.stage is None else f"stage {self.stage:02d}"
        if len(self.stages) > 1 and self.stage is not None:
            where += f" ({self.position}/{len(self.stages)})"
        op = ""
        if self.ops and self.stage is not None:
            op = f", op {self.index + 1:,}/{len(self.ops):,} ({self.ops[self.index]['op']})"
        return f"replay: {where}{op}, {elapsed:.0f} s"

    def _run(self) -> None:
        while True:
            elapsed = time.monotonic() - self._t0
            if elapsed >= self.after:
                self._draw(self.line(elapsed))
            if self._stop.wait(self.every):
                return

    def _draw(self, text: str) -> None:
        try:
            self.stream.write(f"\r{text}\033[K" if self.tty else text + "\n")
            self.stream.flush()
            self.drawn = True
        except (OSError, ValueError):       # stderr closed: no progress, the replay goes on
            pass
