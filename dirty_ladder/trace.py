"""The ``dirty-trace/1`` format (docs/trace-format.md): parsing and validation.

A trace is checked whole before anything runs.  Every refusal is a
:class:`TraceError` whose message is one line naming the op's index (when the
fault is in an op) and the reason.  Validation replays only the RAM block
layout (where ``ram_alloc`` puts each block), which does not depend on the
stage, so a trace valid for one stage is valid for all forty.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TARGET_PAGE_BITS = 12
TARGET_PAGE_SIZE = 1 << TARGET_PAGE_BITS

FORMAT = "dirty-trace/1"
CALL_FORMAT = "dirty-call/1"      # an API-level reproducer (dirty_ladder/compare.py, parse_call)
RESULT_FORMAT = "dirty-trace-result/1"
CLIENTS = ("vga", "code", "migration")
HOST_PAGE_SIZES = (4096, 65536)
ACCELS = ("tcg", "kvm")
DEFAULT_CONFIG = {"host_page_size": 4096, "accel": "tcg", "xen": False}
# A bound on the RAM a trace may ask for, so a typo cannot ask numpy for
# terabytes: 1 TiB of guest RAM (2**28 target pages).
MAX_RAM = 1 << 40
RAM_ADDR_MAX = (1 << 64) - 1

# op name -> its fields, in the order docs/trace-format.md lists them
OPS: dict[str, tuple[str, ...]] = {
    "ram_alloc": ("size",),
    "ram_free": ("offset",),
    "tb_translate": ("addr",),
    "tlb_fill": ("addr",),
    "tcg_write": ("addr", "size"),
    "dma_write": ("addr", "len"),
    "stl_phys_notdirty": ("addr",),
    "kvm_write": ("addr",),
    "kvm_sync": (),
    "get_dirty": ("addr", "len", "client"),
    "set_dirty": ("addr", "len"),
    "test_and_clear_dirty": ("addr", "len", "client"),
    "reset_dirty": ("addr", "len", "client"),
    "is_clean": ("addr",),
    "log_global_start": (),
    "log_global_stop": (),
    "migration_setup": (),
    "migration_sync": (),
    "migration_next": ("block", "start"),
}


class TraceError(ValueError):
    """A trace that breaks the rules of docs/trace-format.md; ``str()`` is one line."""

    def __init__(self, reason: str, index: int | None = None):
        self.reason = reason
        self.index = index
        super().__init__(reason if index is None else f"op {index}: {reason}")


@dataclass(frozen=True)
class Config:
    host_page_size: int = 4096
    accel: str = "tcg"
    xen: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"host_page_size": self.host_page_size, "accel": self.accel, "xen": self.xen}


@dataclass
class Trace:
    config: Config
    ops: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "config": self.config.as_dict(), "ops": [dict(o) for o in self.ops]}


@dataclass
class Block:
    offset: int
    length: int

    @property
    def end(self) -> int:
        return self.offset + self.length


def find_ram_offset(blocks: list[Block], size: int) -> int:
    """exec.c's find_ram_offset: the smallest gap that fits, the first on ties.

    Gaps run from the end of each block (in list order) to the nearest block
    start after it; with no block, the offset is 0.
    """
    if not blocks:
        return 0
    offset, mingap = None, RAM_ADDR_MAX
    for block in blocks:
        end = block.end
        next_start = min((b.offset for b in blocks if b.offset >= end), default=RAM_ADDR_MAX)
        if next_start - end >= size and next_start - end < mingap:
            offset, mingap = end, next_start - end
    if offset is None:
        raise TraceError(f"no room for a block of {size} bytes in the RAM address space")
    return offset


def insert_block(blocks: list[Block], new: Block) -> None:
    """Keep the list sorted by length, largest first; a new block goes before
    the first strictly smaller one (exec.c's QTAILQ_INSERT_BEFORE)."""
    for i, block in enumerate(blocks):
        if block.length < new.length:
            blocks.insert(i, new)
            return
    blocks.append(new)


def last_ram_offset(blocks: list[Block]) -> int:
    return max((b.end for b in blocks), default=0)


def block_holding(blocks: list[Block], addr: int) -> Block | None:
    for block in blocks:
        if block.offset <= addr < block.end:
            return block
    return None


def page_align(size: int) -> int:
    return (size + TARGET_PAGE_SIZE - 1) & ~(TARGET_PAGE_SIZE - 1)


def _number(op: dict, name: str, index: int) -> int:
    value = op[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise TraceError(f"{op['op']}: field {name!r} must be a non-negative integer, not {value!r}", index)
    if value < 0:
        raise TraceError(f"{op['op']}: field {name!r} is negative ({value})", index)
    if value > RAM_ADDR_MAX:
        raise TraceError(f"{op['op']}: field {name!r} ({value}) does not fit in 64 bits", index)
    return value


def _config(raw: Any) -> Config:
    if raw is None:
        return Config()
    if not isinstance(raw, dict):
        raise TraceError(f"config must be an object, not {type(raw).__name__}")
    unknown = sorted(set(raw) - set(DEFAULT_CONFIG))
    if unknown:
        raise TraceError(f"config: unknown key {unknown[0]!r}")
    merged = {**DEFAULT_CONFIG, **raw}
    if isinstance(merged["host_page_size"], bool) or merged["host_page_size"] not in HOST_PAGE_SIZES:
        raise TraceError(f"config: host_page_size must be 4096 or 65536, not {merged['host_page_size']!r}")
    if merged["accel"] not in ACCELS:
        raise TraceError(f"config: accel must be 'tcg' or 'kvm', not {merged['accel']!r}")
    if not isinstance(merged["xen"], bool):
        raise TraceError(f"config: xen must be true or false, not {merged['xen']!r}")
    return Config(**merged)


def validate(raw: Any) -> Trace:
    """Check a decoded trace object against docs/trace-format.md and return it normalised."""
    if not isinstance(raw, dict):
        raise TraceError(f"a trace must be a JSON object, not {type(raw).__name__}")
    if "format" not in raw:
        raise TraceError(f"no 'format' field: a trace says \"format\": \"{FORMAT}\" (a call: \"{CALL_FORMAT}\")")
    if raw["format"] != FORMAT:
        raise TraceError(f"unknown format {json.dumps(raw['format'])}: a trace says \"format\": \"{FORMAT}\" "
                         f"(a call: \"{CALL_FORMAT}\")")
    unknown = sorted(set(raw) - {"format", "config", "ops"})
    if unknown:
        raise TraceError(f"unknown top-level field {unknown[0]!r}")
    config = _config(raw.get("config"))
    ops = raw.get("ops")
    if not isinstance(ops, list):
        raise TraceError("'ops' must be a list")
    blocks: list[Block] = []
    migrating = False
    checked = []
    for index, op in enumerate(ops):
        if not isinstance(op, dict):
            raise TraceError(f"an op must be an object, not {type(op).__name__}", index)
        name = op.get("op")
        if not isinstance(name, str) or name not in OPS:
            raise TraceError(f"unknown op {name!r}", index)
        fields = OPS[name]
        for extra in sorted(set(op) - set(fields) - {"op"}):
            raise TraceError(f"{name}: unknown field {extra!r}", index)
        for needed in fields:
            if needed not in op:
                raise TraceError(f"{name}: missing field {needed!r}", index)
        values = {f: (op[f] if f == "client" else _number(op, f, index)) for f in fields}
        if "client" in values and values["client"] not in CLIENTS:
            raise TraceError(f"{name}: client must be one of vga, code, migration, not {values['client']!r}", index)
        _check_op(name, values, blocks, config, migrating, index)
        if name == "migration_setup":
            migrating = True
        checked.append({"op": name, **values})
    return Trace(config, checked)


def _inside(blocks: list[Block], name: str, addr: int, length: int, index: int) -> Block:
    block = block_holding(blocks, addr)
    if block is None:
        raise TraceError(f"{name}: address {addr:#x} is outside every RAM block", index)
    if addr + length > block.end:
        raise TraceError(
            f"{name}: range [{addr:#x}, {addr + length:#x}) crosses the end of the block "
            f"at {block.offset:#x} (length {block.length:#x})", index)
    return block


def _check_op(name: str, v: dict, blocks: list[Block], config: Config, migrating: bool, index: int) -> None:
    if name == "ram_alloc":
        if migrating:
            raise TraceError("ram_alloc after migration_setup", index)
        if v["size"] == 0:
            raise TraceError("ram_alloc of size 0", index)
        size = page_align(v["size"])
        offset = find_ram_offset(blocks, size)
        if offset + size > MAX_RAM:
            raise TraceError(f"ram_alloc: RAM would end at {offset + size:#x}, past the 1 TiB this tool models", index)
        insert_block(blocks, Block(offset, size))
    elif name == "ram_free":
        if migrating:
            raise TraceError("ram_free after migration_setup", index)
        for i, block in enumerate(blocks):
            if block.offset == v["offset"]:
                del blocks[i]
                return
        raise TraceError(f"ram_free: {v['offset']:#x} is not the offset of a RAM block", index)
    elif name in ("tb_translate", "tlb_fill", "is_clean"):
        _inside(blocks, name, v["addr"], 0, index)
    elif name == "tcg_write":
        if v["size"] not in (1, 2, 4):
            raise TraceError(f"tcg_write: size must be 1, 2 or 4, not {v['size']}", index)
        _inside(blocks, name, v["addr"], v["size"], index)
        if v["addr"] >> TARGET_PAGE_BITS != (v["addr"] + v["size"] - 1) >> TARGET_PAGE_BITS:
            raise TraceError(f"tcg_write: {v['size']} bytes at {v['addr']:#x} cross a target page", index)
    elif name == "stl_phys_notdirty":
        _inside(blocks, name, v["addr"], 4, index)
    elif name in ("dma_write", "get_dirty", "set_dirty", "test_and_clear_dirty", "reset_dirty"):
        _inside(blocks, name, v["addr"], v["len"], index)
    elif name == "kvm_write":
        block = _inside(blocks, name, v["addr"], 0, index)
        hps = config.host_page_size
        host_page = (v["addr"] - block.offset) // hps
        if (host_page + 1) * hps > block.length:
            raise TraceError(
                f"kvm_write: the host page of {v['addr']:#x} is not wholly inside its block "
                f"(block length {block.length:#x}, host pages of {hps})", index)
    elif name in ("migration_sync", "migration_next") and not migrating:
        raise TraceError(f"{name} before migration_setup", index)
    if name == "migration_next" and not any(b.offset == v["block"] for b in blocks):
        raise TraceError(f"migration_next: {v['block']:#x} is not the offset of a RAM block", index)


def format_trace(obj: dict[str, Any]) -> str:
    """A trace as JSON with one op per line, easy to edit."""
    lines = ["{", f'  "format": {json.dumps(obj["format"])},', f'  "config": {json.dumps(obj["config"])},']
    ops = obj["ops"]
    if not ops:
        lines.append('  "ops": []')
    else:
        lines.append('  "ops": [')
        lines += [f"    {json.dumps(op)}" + ("," if i < len(ops) - 1 else "") for i, op in enumerate(ops)]
        lines.append("  ]")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refused when it names a key twice (json's default
    would keep the last value and say nothing)."""
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise TraceError(f"duplicate key {key!r} in a JSON object")
        obj[key] = value
    return obj


def decode(text: str) -> Any:
    """JSON text as Python values, as every reader of traces reads it: a
    syntax error or an object with a duplicate key is a one-line TraceError."""
    try:
        return json.loads(text, object_pairs_hook=_object)
    except TraceError:
        raise
    except json.JSONDecodeError as exc:
        raise TraceError(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise TraceError("not valid JSON: nested too deeply") from None
    except ValueError as exc:                      # e.g. an integer of more than 4300 digits
        raise TraceError(f"not valid JSON: {' '.join(str(exc).split())}") from None


def loads(text: str) -> Trace:
    """A trace from its JSON text, validated."""
    return validate(decode(text))


def load(path: str | Path) -> Trace:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise TraceError(f"cannot read {path}: {reason}") from None
    return loads(text)
