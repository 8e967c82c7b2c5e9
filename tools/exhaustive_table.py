"""Turn the JSON of exhaustive checks into the README's results table.

    dirty-ladder check --all --exhaustive --scope ci --json > docs/exhaustive-ci.json
    dirty-ladder check --all --exhaustive --scope medium --json > docs/exhaustive-medium.json
    python tools/exhaustive_table.py docs/exhaustive-ci.json docs/exhaustive-medium.json
    python tools/exhaustive_table.py --bench docs/exhaustive-medium.json

prints one row per rung: what was shown, and for each scope the joint states
of the machine and representation levels, the depth, whether the reachable
set closed, the API states, and how long the rung took; with --bench, the
joint states and transitions per second of each rung (the benchmark of the
explorer: it is no timed test) and the whole run's time against its target.
"""

from __future__ import annotations

import json
import sys


def _level(run: dict) -> str:
    if run["level"] == "api":
        return f"{run['states']:,} st., {run['transitions']:,} calls"
    if run.get("truncated"):
        return f"stopped at {run['states']:,} st. (max_states), depth {run['depth']}"
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
        entries = ", ".join(e["id"] + (" (needs its own scope)" if all(r["entries"][k]["not_reached"] for r in rows)
                                       else "") for k, e in enumerate(rows[0]["entries"]))
        status = rows[0]["status"]
        shown = "same" if status == "same" else f"as registered: {entries}" if rows[0]["ok"] else status
        machine = [next((_level(x) for x in row["runs"] if x["level"] != "api"), "-") for row in rows]
        api = [next((_level(x) for x in rows[0]["runs"] if x["level"] == "api"), "-")]
        times = [f"{row['seconds']:.1f} s" if row.get("seconds") is not None else "-" for row in rows]
        lines.append("| " + " | ".join([f"{rung:02d}", shown] + machine + api + times) + " |")
    return "\n".join(lines)


def bench(report: dict) -> str:
    """Joint states and transitions per second, per rung, and the wall time
    of the whole run against the target (medium on all rungs: 10 minutes)."""
    lines = [f"scope {report['scope']}, {report.get('jobs', 1)} jobs: "
             f"{report.get('wall_seconds', 0) / 60:.1f} min for {len(report['rungs'])} rungs", "",
             "| rung | stages side by side | joint states | transitions | seconds | states/s | transitions/s |",
             "|---|---|---|---|---|---|---|"]
    for row in report["rungs"]:
        run = next((x for x in row["runs"] if x["level"] != "api"), None)
        if run is None:
            continue
        n = 2 + len(row["entries"]) + (1 if len(row["entries"]) > 1 else 0)
        rate = run["states"] / run["seconds"] if run["seconds"] else 0
        trate = run["transitions"] / run["seconds"] if run["seconds"] else 0
        lines.append(f"| {row['rung']:02d} | {n} | {run['states']:,} | {run['transitions']:,} | "
                     f"{run['seconds']:.1f} | {rate:,.0f} | {trate:,.0f} |")
    if report["scope"] == "medium":
        minutes = report.get("wall_seconds", 0) / 60
        lines += ["", f"target: the medium scope on all 39 rungs in under 10 minutes: "
                      f"{'met' if minutes < 10 else 'missed'} ({minutes:.1f} min)"]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--bench"]:
        for path in argv[1:]:
            print(bench(json.load(open(path, encoding="utf-8"))))
        return 0
    reports = [json.load(open(path, encoding="utf-8")) for path in argv]
    print(table(reports))
    return 0


if __name__ == "__main__":
    from dirty_ladder.streams import finish
    sys.exit(finish(lambda: main(sys.argv[1:])))
