"""The ladder: QEMU's 2013 dirty-bitmap series, one Python module per stage.

``stage(n)`` returns the ``Stage`` class of stage ``n`` (0 to 39); ``MODULES``
lists the module names in ladder order.  Stage 00 is the dirty API before the
series; stage ``n`` is the code after the n-th patch of the v2 posting.
"""

from __future__ import annotations

import importlib

MODULES = [
    "s00_before_the_series",
    "s01_move_prototypes_to_memory_h",
    "s02_set_dirty_flags_result_unused",
    "s03_set_dirty_range_return_void",
    "s04_accessor_for_is_dirty",
    "s05_set_single_dirty_bit",
    "s06_get_single_dirty_bit",
    "s07_is_dirty_returns_bool",
    "s08_simplify_notdirty_mem_write",
    "s09_get_dirty_single_flag",
    "s10_set_single_dirty_flags",
    "s11_set_dirty_range_all_flags",
    "s12_mask_dirty_range_single_flag",
    "s13_dirty_memory_clients",
    "s14_bit_2_for_migration",
    "s15_client_inside_range",
    "s16_resize_only_when_growing",
    "s17_clear_dirty_flag_result_unused",
    "s18_bitmap_zero_extend",
    "s19_split_dirty_bitmap",
    "s20_unfold_clear_dirty_flag",
    "s21_unfold_set_dirty",
    "s22_unfold_set_dirty_flag",
    "s23_get_dirty_main_function",
    "s24_get_dirty_returns_bool",
    "s25_rename_mask_to_clear",
    "s26_find_next_bit",
    "s27_set_dirty_range_bitmap_ops",
    "s28_clear_dirty_range_bitmap_ops",
    "s29_is_dirty_to_is_clean",
    "s30_reset_dirty_takes_length",
    "s31_set_dirty_tracking_void",
    "s32_memory_physical_header",
    "s33_unfold_test_and_clear",
    "s34_kvm_uses_cpu_physical_memory_api",
    "s35_kvm_start_address",
    "s36_set_dirty_lebitmap",
    "s37_lebitmap_word_at_a_time",
    "s38_migration_bitmap_sync_range",
    "s39_sync_64_bits_at_a_time",
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
