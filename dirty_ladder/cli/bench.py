"""``bench``: the cost curve of the series.  Its options and its run are
the bench's own (dirty_ladder/bench/), shared with ``python -m
dirty_ladder.bench``; this adds them as a subcommand of ``dirty-ladder``."""

from __future__ import annotations

from .common import add_command


def add_bench(sub, prog: str) -> None:
    from .. import bench
    sp = add_command(sub, "bench", "the cost per page of the operations the series changed, at every stage",
                     f"{prog} bench                       # 4 GiB guest, 5% dirty, about a minute\n"
                     f"{prog} bench --size 1G --json\n{prog} bench --plot bench.png   # needs '.[plot]'",
                     description=bench.__doc__.split("\n\n")[0])
    bench.add_arguments(sp)
    sp.set_defaults(func=bench.run)


PARSERS = {"bench": add_bench}
