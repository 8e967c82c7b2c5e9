"""The ladder: QEMU's 2013 dirty-bitmap series, one Python module per stage.

``stage(n)`` returns the ``Stage`` class of stage ``n`` (0 to 39); ``MODULES``
lists the module names in ladder order.  Stage 00 is the dirty API before the
series; stage ``n`` is the code after the n-th patch of the v2 posting.
"""

from __future__ import annotations

import importlib

MODULES = [
    "s00_before_the_series",
]

LAST = len(MODULES) - 1


class UnknownStage(LookupError):
    pass


def stage(n: int):
    """The Stage class of stage ``n``."""
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= LAST:
        raise UnknownStage(f"unknown stage {n!r}: stages are 0 to {LAST}")
    return importlib.import_module(f"{__name__}.{MODULES[n]}").Stage


def all_stages():
    return [stage(n) for n in range(LAST + 1)]
