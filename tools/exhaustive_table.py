"""Turn the JSON of exhaustive checks into the README's results table.

    dirty-ladder check --all --exhaustive --scope ci --json > docs/exhaustive-ci.json
    dirty-ladder check --all --exhaustive --scope medium --json > docs/exhaustive-medium.json
    python tools/exhaustive_table.py docs/exhaustive-ci.json docs/exhaustive-medium.json

prints one row per rung: what was shown, and for each scope the joint states
of the machine and representation levels, the depth, whether the reachable
set closed, the API states, and how long the rung took.
"""

from __future__ import annotations

import json
import sys


def _level(run: dict) -> str:
    if run["level"] == "api":
        return f"{run['states']:,} st., {run['transitions']:,} calls"
    how = "closed" if run["closed"] else "bounded"
    return f"{run['states']:,} st., depth {run['depth']} {how}"


def table(reports: list[dict]) -> str:
    scopes = [r["scope"] for r in reports]
    by_rung = [{row["rung"]: row for row in r["rungs"]} for r in reports]
    head = ["rung", "shown"] + [f"{s}: machine + repr" for s in scopes] + [f"{s}: api" for s in scopes[:1]] \
        + [f"{s}: time" for s in scopes]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rung in sorted(by_rung[0]):
        rows = [b[rung] for b in by_rung]
        entries = ", ".join(e["id"] for e in rows[0]["entries"])
        status = rows[0]["status"]
        shown = "same" if status == "same" else f"as registered: {entries}" if rows[0]["ok"] else status
        machine = [next((_level(x) for x in row["runs"] if x["level"] != "api"), "-") for row in rows]
        api = [next((_level(x) for x in rows[0]["runs"] if x["level"] == "api"), "-")]
        times = [f"{row['seconds']:.1f} s" if row.get("seconds") is not None else "-" for row in rows]
        lines.append("| " + " | ".join([f"{rung:02d}", shown] + machine + api + times) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    reports = [json.load(open(path, encoding="utf-8")) for path in argv]
    print(table(reports))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
