"""Stage 18: bitmap: Add bitmap_zero_extend operation

Upstream: 164590a60 (include/qemu/bitmap.h).

Kind: new helper (no caller yet).

``bitmap_zero_extend(old, old_nbits, new_nbits)`` reallocates a bitmap to
``BITS_TO_LONGS(new_nbits)`` words and clears bits ``[old_nbits,
new_nbits)``.  Nothing calls it until stage 19, so behaviour is unchanged.
Like the C, it clears only the named range: bits past ``new_nbits`` in the
last word keep whatever the reallocation kept.
"""

import numpy as np

from . import s17_clear_dirty_flag_result_unused as parent
from .bitmap import BITS_TO_LONGS, bitmap_clear
from .s00_before_the_series import _g_realloc


def bitmap_zero_extend(old: np.ndarray, old_nbits: int, new_nbits: int) -> np.ndarray:
    new_len = BITS_TO_LONGS(new_nbits)
    new = _g_realloc(old, new_len)
    bitmap_clear(new, old_nbits, new_nbits - old_nbits)
    return new


class Stage(parent.Stage):
    STAGE = 18
    TITLE = "bitmap: Add bitmap_zero_extend operation"
    UPSTREAM = "164590a60"
    KIND = "new helper"

    DECLARED_IN = {**parent.Stage.DECLARED_IN, "bitmap_zero_extend": "include/qemu/bitmap.h"}

    bitmap_zero_extend = staticmethod(bitmap_zero_extend)
