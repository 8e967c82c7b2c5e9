"""Plant a mistake in each shared function and see its oracle test go red.

The code every stage shares (stages/bitmap.py, stages/common.py, and stage
00's functions that no later commit rewrites) is checked by
tests/test_bitmap.py, tests/test_common.py and tests/test_unrewritten.py,
not by the rung checks.  This plants one mistake at a time in a copy of the
repository (the checkout is never touched), runs the test file that guards
the function, and prints a Markdown table: the plant, and the first test
that failed (or CAUGHT BY NOTHING, exit status 1).

    python tools/plant_shared.py            # every plant (about 40 minutes measured under load)
    python tools/plant_shared.py find_next check_  # only the plants whose id contains one of these
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BITMAP, COMMON, S00 = "stages/bitmap.py", "stages/common.py", "stages/s00_before_the_series.py"
T_BITMAP, T_COMMON, T_S00 = "tests/test_bitmap.py", "tests/test_common.py", "tests/test_unrewritten.py"

# id, file, the text replaced (once), its replacement, the test file that guards it
PLANTS = [
    ("BIT_WORD: one bit late", BITMAP, "return nr // BITS_PER_LONG", "return (nr + 1) // BITS_PER_LONG", T_BITMAP),
    ("BIT_MASK: modulo 63", BITMAP, "return 1 << (nr % BITS_PER_LONG)", "return 1 << (nr % 63)", T_BITMAP),
    ("BITS_TO_LONGS: a word too many when whole", BITMAP, "return (nr + BITS_PER_LONG - 1) // BITS_PER_LONG",
     "return nr // BITS_PER_LONG + 1", T_BITMAP),
    ("bitmap_new: rounds down", BITMAP, "return np.zeros(BITS_TO_LONGS(nbits), dtype=np.uint64)",
     "return np.zeros(nbits // BITS_PER_LONG, dtype=np.uint64)", T_BITMAP),
    ("_check_bit: accepts the bit one past the end", BITMAP, "if nr < 0 or nr >= addr.size * BITS_PER_LONG:",
     "if nr < 0 or nr > addr.size * BITS_PER_LONG:", T_BITMAP),
    ("test_bit: reads bit nr % 63", BITMAP, "return bool((int(addr[nr >> 6]) >> (nr & 63)) & 1)",
     "return bool((int(addr[nr >> 6]) >> (nr % 63)) & 1)", T_BITMAP),
    ("set_bit: 32-bit shift", BITMAP, "addr[nr >> 6] |= np.uint64(1 << (nr & 63))",
     "addr[nr >> 6] |= np.uint64(1 << (nr & 31))", T_BITMAP),
    ("clear_bit: also clears bit 63", BITMAP, "addr[nr >> 6] &= np.uint64(WORD_MASK ^ (1 << (nr & 63)))",
     "addr[nr >> 6] &= np.uint64((WORD_MASK >> 1) & ~(1 << (nr & 63)))", T_BITMAP),
    ("test_and_set_bit: returns the new bit", BITMAP, "    old = test_bit(nr, addr)\n    set_bit(nr, addr)",
     "    set_bit(nr, addr)\n    old = test_bit(nr, addr)", T_BITMAP),
    ("ctpopl: misses bit 0", BITMAP, "return int(word).bit_count()", "return (int(word) >> 1).bit_count()", T_BITMAP),
    ("ctzl: ffsl, not ffsl - 1", BITMAP, "return (word & -word).bit_length() - 1",
     "return (word & -word).bit_length()", T_BITMAP),
    ("_first_word_mask: one bit late", BITMAP, "return (WORD_MASK << (start % BITS_PER_LONG)) & WORD_MASK",
     "return (WORD_MASK << (start % BITS_PER_LONG + 1)) & WORD_MASK", T_BITMAP),
    ("_last_word_mask: nothing of a whole last word", BITMAP, "return WORD_MASK if rem == 0 else (1 << rem) - 1",
     "return 0 if rem == 0 else (1 << rem) - 1", T_BITMAP),
    ("bitmap_set: middle words one short", BITMAP, "map[first + 1:last] = ALL_ONES",
     "map[first + 1:last - 1] = ALL_ONES", T_BITMAP),
    ("bitmap_clear: clears the whole last word", BITMAP, "map[first + 1:last] = 0\n",
     "map[first + 1:last + 1] = 0\n", T_BITMAP),
    ("bitmap_clear: single word keeps the range", BITMAP,
     "map[first] &= np.uint64(WORD_MASK ^ (_first_word_mask(start) & _last_word_mask(end)))",
     "map[first] &= np.uint64(WORD_MASK ^ (_first_word_mask(start) | _last_word_mask(end)))", T_BITMAP),
    ("find_next_bit: multi-word path searches past size (held out)", BITMAP,
     "    rest = np.flatnonzero(addr[word + 1:BITS_TO_LONGS(size)])\n    if rest.size == 0:\n        return size\n"
     "    k = word + 1 + int(rest[0])\n    return min(k * BITS_PER_LONG + ctzl(int(addr[k])), size)",
     "    rest = np.flatnonzero(addr[word + 1:])\n    if rest.size == 0:\n        return size\n"
     "    k = word + 1 + int(rest[0])\n    return k * BITS_PER_LONG + ctzl(int(addr[k]))", T_BITMAP),
    ("find_next_bit: first word not clamped to size", BITMAP,
     "return min(word * BITS_PER_LONG + ctzl(first), size)", "return word * BITS_PER_LONG + ctzl(first)", T_BITMAP),
    ("find_next_bit: negative offset accepted", BITMAP, "if offset < 0 or size < 0:", "if size < 0:", T_BITMAP),
    ("each_set_bit_le: walks from the top bit (held out)", BITMAP, "j = ctzl(c)                    # ffsl(c) - 1",
     "j = c.bit_length() - 1", T_BITMAP),
    ("each_set_bit_le: one word too many", BITMAP, "for i in range(nwords):", "for i in range(min(nwords + 1, len(bitmap))):",
     T_BITMAP),
    ("bits_of: big-endian bits", BITMAP, 'return np.unpackbits(as_bytes, bitorder="little")[:nbits].astype(bool)',
     'return np.unpackbits(as_bytes, bitorder="big")[:nbits].astype(bool)', T_BITMAP),
    ("words_from_bits: big-endian bits", BITMAP, 'return np.packbits(padded, bitorder="little")',
     'return np.packbits(padded, bitorder="big")', T_BITMAP),
    ("TARGET_PAGE_ALIGN: an aligned address goes up a page", COMMON,
     "return (addr + TARGET_PAGE_SIZE - 1) & TARGET_PAGE_MASK", "return (addr + TARGET_PAGE_SIZE) & TARGET_PAGE_MASK",
     T_COMMON),
    ("removed: names the stage before", COMMON, 'self.stage = getattr(owner, "STAGE", None)',
     'self.stage = getattr(owner, "STAGE", 1) - 1', T_COMMON),
    ("dirty_pages: 63 pages a word", COMMON, "return ram_list.dirty_memory[0].size * 64",
     "return ram_list.dirty_memory[0].size * 63", T_COMMON),
    ("check_unsigned: accepts 2**64", COMMON, "if value > RAM_ADDR_MAX:", "if value > RAM_ADDR_MAX + 1:", T_COMMON),
    ("check_addr: accepts the page at the end", COMMON, "if page >= npages:", "if page > npages:", T_COMMON),
    ("check_page: one page of slack", COMMON, "return check_addr(len(array), addr, what, name)",
     "return check_addr(len(array) + 1, addr, what, name)", T_COMMON),
    ("check_range: refuses start + length == 2**64", COMMON,
     "if start + length > RAM_ADDR_MAX + 1:\n        raise ValueError(f\"{what}: {start_name}",
     "if start + length > RAM_ADDR_MAX:\n        raise ValueError(f\"{what}: {start_name}", T_COMMON),
    ("check_range: client checked on a zero length", COMMON,
     "if check_client is not None and length and not 0 <= client < ANY_STAGE_CLIENTS:",
     "if check_client is not None and not 0 <= client < ANY_STAGE_CLIENTS:", T_COMMON),
    ("_check_walk: an empty walk at the end refused", COMMON, "if first < end and end > npages:",
     "if end > npages:", T_COMMON),
    ("check_end: end == start refused", COMMON, "if end < start:", "if end <= start:", T_COMMON),
    ("check_region: start wrapping to 2**64 accepted", COMMON, "if start > RAM_ADDR_MAX:",
     "if start > RAM_ADDR_MAX + 1:", T_COMMON),
    ("check_section: words for pages rounded down", COMMON,
     "if bitmap is not None and len(bitmap) < (pages + 63) // 64:",
     "if bitmap is not None and len(bitmap) < pages // 64:", T_COMMON),
    ("check_lebitmap: host pages taken as target pages", COMMON,
     "length = pages * hpratio * TARGET_PAGE_SIZE", "length = pages * TARGET_PAGE_SIZE", T_COMMON),
    ("check_client: a negative client accepted", COMMON, "if not 0 <= client < num:", "if not client < num:",
     T_COMMON),
    ("check_flag_client: bit 7 refused", COMMON, "if not 0 <= client < 8:", "if not 0 <= client < 7:", T_COMMON),
    ("find_and_reset: forgets its counter (held out)", S00,
     "            clear_bit(next_, self.migration_bitmap)\n            self.migration_dirty_pages -= 1\n",
     "            clear_bit(next_, self.migration_bitmap)\n", T_S00),
    ("find_and_reset: searches from the page after start", S00,
     "next_ = find_next_bit(self.migration_bitmap, size, nr)",
     "next_ = find_next_bit(self.migration_bitmap, size, nr + 1)", T_S00),
    ("find_and_reset: a region's size not rounded up", S00, "mr_size = TARGET_PAGE_ALIGN(mr.size)",
     "mr_size = mr.size & TARGET_PAGE_MASK", T_S00),
    ("find_and_reset: bulk stage searches", S00, "if self.ram_bulk_stage and nr > base:",
     "if self.ram_bulk_stage and nr > base + 1:", T_S00),
    ("ram_save_setup: last page not set", S00, "bitmap_set(self.migration_bitmap, 0, ram_pages)",
     "bitmap_set(self.migration_bitmap, 0, ram_pages - 1)", T_S00),
    ("ram_save_setup: counter starts at 0", S00, "self.migration_dirty_pages = ram_pages\n        self.core",
     "self.migration_dirty_pages = 0\n        self.core", T_S00),
    ("ram_save_setup: dirty logging not started", S00,
     "        self.core_log_global_start()             # memory_global_dirty_log_start()\n", "", T_S00),
    ("ram_save_setup: no sync", S00, "        self.migration_bitmap_sync()\n        return ram_pages",
     "        return ram_pages", T_S00),
]


def copy_of_checkout() -> Path:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    dest = Path(tempfile.mkdtemp(prefix="plant-shared-"))
    for name in files:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, dest / name)
    # the working copy of the files the plants and their tests use, committed or not
    for name in (T_BITMAP, T_COMMON, T_S00, "tests/oracle.py", BITMAP, COMMON, S00):
        shutil.copy2(ROOT / name, dest / name)
    return dest


def run_tests(copy: Path, test_file: str) -> tuple[bool, str]:
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, "-m", "pytest", test_file, "-x", "-q", "-p", "no:randomly",
                           "-p", "no:cacheprovider"], cwd=copy, env=env, capture_output=True, text=True)
    failed = re.findall(r"^FAILED (\S+)", proc.stdout, re.MULTILINE)
    return proc.returncode == 0, (failed[0].split("::", 1)[1] if failed else proc.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    only = argv or [""]
    copy = copy_of_checkout()
    env = {**os.environ, "PYTHONPATH": str(copy)}
    where = subprocess.run([sys.executable, "-c", "import stages; print(stages.__file__)"], cwd=copy, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert where.startswith(str(copy)), f"the copy's stages are not the ones imported: {where}"
    missed = 0
    print("| plant | file | first failing test |\n|---|---|---|")
    try:
        for plant_id, path, old, new, test_file in PLANTS:
            if not any(word in plant_id for word in only):
                continue
            target = copy / path
            original = target.read_text()
            assert original.count(old) == 1, f"{plant_id}: the text to replace is not in {path} exactly once"
            target.write_text(original.replace(old, new))
            try:
                green, what = run_tests(copy, test_file)
            finally:
                target.write_text(original)
            missed += green
            print(f"| {plant_id} | {path} | {'CAUGHT BY NOTHING' if green else f'{test_file}::{what}'} |", flush=True)
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
