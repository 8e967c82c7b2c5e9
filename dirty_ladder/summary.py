"""``dirty-ladder replay --summary``: a result object in short, for traces
too long to read op by op (``dirty_ladder.cli`` prints it)."""

from __future__ import annotations

import json
from typing import Any

from .trace import Trace


def page_count(ranges: list[list[int]]) -> dict[str, int]:
    return {"pages": sum(end - first for first, end in ranges), "ranges": len(ranges)}


def short_state(state: dict[str, Any]) -> dict[str, Any]:
    """The final state in short: counts instead of lists."""
    migration = state["migration"]
    return {
        "blocks": {"blocks": len(state["blocks"]), "bytes": sum(length for _, length in state["blocks"])},
        "dirty": {client: page_count(r) for client, r in state["dirty"].items()},
        "tlb": {kind: page_count(r) for kind, r in state["tlb"].items()},
        "tb_pages": page_count(state["tb_pages"]),
        "kvm_log": {"blocks": len(state["kvm_log"]),
                    "host_pages": sum(page_count(r)["pages"] for _, r in state["kvm_log"])},
        "in_migration": state["in_migration"],
        "migration": None if migration is None else {**page_count(migration["bitmap"]),
                                                     "dirty_pages": migration["dirty_pages"]},
        "xen": {"calls": len(state["xen"])},
    }


def summarize(trace: Trace, result: dict[str, Any]) -> dict[str, Any]:
    """How many times each op gave each result, and the state in short."""
    by_op: dict[str, dict[str, int]] = {}
    for op, value in zip(trace.ops, result["results"]):
        counts = by_op.setdefault(op["op"], {})
        key = json.dumps(value)
        counts[key] = counts.get(key, 0) + 1
    return {
        "stage": result["stage"], "ops": len(trace.ops),
        "results_by_op": {op: {"count": sum(c.values()),
                               "results": dict(sorted(c.items(), key=lambda kv: -kv[1]))}
                          for op, c in sorted(by_op.items(), key=lambda kv: -sum(kv[1].values()))},
        "state": short_state(result["state"]),
    }
