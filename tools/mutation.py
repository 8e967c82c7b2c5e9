"""Mutation testing of the stage modules, with the ladder's own checks as the killer.

    python tools/mutation.py [--stages 0-39] [--examples 150] [--outside] [--json FILE]

Each stage module is parsed; inside its functions, one small change at a
time is made (a mutant), the mutated module and every later stage module are
re-imported in this process, and the checks run until one fails (the mutant
is killed) or all pass (it survives):

1. the conformance vectors (dirty_ladder/data/conformance.jsonl) on the mutated
   stage, then on every later stage (they inherit what they do not override);
2. the register's minimal traces and calls;
3. the direct API tests of the mutated stage (tests/test_stage_api.py,
   tests/test_guards.py and tests/test_misuse.py), run with pytest in this
   process;
4. for the rung of the mutated stage and the next one: the exhaustive check
   within the ci scope (dirty_ladder.explore.check_rung), then the random
   check (dirty_ladder.rungs.check_rung, machine, api and repr levels,
   ``--examples`` cases each).  A mutant that makes a rung differ in an
   unregistered way is killed; so is one that loses a registered difference
   the ci scope must find.  The random check only notes the entries its
   cases do not reach: requiring them is the exhaustive check's part.

Before the mutants of a stage, the same checks run on the unmutated ladder;
if they fail, the run stops (a kill would mean nothing).

``--outside`` leaves out 2 and 4, the checks that compare a stage with its
neighbour, to see what the checks that look outside the ladder catch alone
(README, "What adjacent checking cannot see").

Mutation operators: comparison swaps (< <=, > >=, == !=), arithmetic swaps
(+ -, << >>, & |), integer constants +1, ``not`` dropped, and/or swapped,
an expression statement (a call) deleted, a DIRTY_MEMORY_* or *_DIRTY_FLAG
name replaced by another client's.

The run takes tens of minutes; it is not part of the test suite.  Results:
a score per stage module and the list of survivors, each to be judged
equivalent (with a reason) or answered by a new test.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import importlib
import json
import os
import resource
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import stages  # noqa: E402
from stages import MODULES  # noqa: E402

CLIENT_NAMES = ["DIRTY_MEMORY_VGA", "DIRTY_MEMORY_CODE", "DIRTY_MEMORY_MIGRATION"]
FLAG_NAMES = ["VGA_DIRTY_FLAG", "CODE_DIRTY_FLAG", "MIGRATION_DIRTY_FLAG"]
SWAPS = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
         ast.NotEq: ast.Eq, ast.Add: ast.Sub, ast.Sub: ast.Add, ast.LShift: ast.RShift,
         ast.RShift: ast.LShift, ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd, ast.And: ast.Or,
         ast.Or: ast.And}


def _in_functions(tree: ast.Module):
    """Every node inside a function body (not docstrings, not class constants)."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef,)):
            for stmt in node.body:
                if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                    continue                      # docstring
                yield from ast.walk(stmt)


def mutants(source: str):
    """(description, mutated source) pairs."""
    tree = ast.parse(source)
    nodes = list(_in_functions(tree))
    for index, node in enumerate(nodes):
        for desc, apply in _operators(node):
            new_tree = copy.deepcopy(tree)
            target = list(_in_functions(new_tree))[index]
            if apply(target, new_tree):
                yield f"line {node.lineno}: {desc}", ast.unparse(new_tree)


def _operators(node):
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in SWAPS:
        new = SWAPS[type(node.ops[0])]
        yield f"{type(node.ops[0]).__name__} -> {new.__name__}", lambda t, _: _set(t, "ops", [new()])
    if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in SWAPS:
        new = SWAPS[type(node.op)]
        yield f"{type(node.op).__name__} -> {new.__name__}", lambda t, _: _set(t, "op", new())
    if isinstance(node, ast.BoolOp) and type(node.op) in SWAPS:
        new = SWAPS[type(node.op)]
        yield f"{type(node.op).__name__} -> {new.__name__}", lambda t, _: _set(t, "op", new())
    if isinstance(node, ast.Constant) and type(node.value) is int:
        yield f"constant {node.value} -> {node.value + 1}", lambda t, _: _set(t, "value", t.value + 1)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        yield "not dropped", lambda t, tree: _replace(tree, t, t.operand)
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        yield "call deleted", lambda t, tree: _replace(tree, t, ast.Pass())
    if isinstance(node, ast.Attribute) and node.attr in CLIENT_NAMES + FLAG_NAMES:
        names = CLIENT_NAMES if node.attr in CLIENT_NAMES else FLAG_NAMES
        other = names[(names.index(node.attr) + 1) % 3]
        yield f"{node.attr} -> {other}", lambda t, _: _set(t, "attr", other)


def _set(node, field, value):
    setattr(node, field, value)
    return True


def _replace(tree, old, new):
    for parent in ast.walk(tree):
        for field, value in ast.iter_fields(parent):
            if isinstance(value, list) and old in value:
                value[value.index(old)] = new
                return True
            if value is old:
                setattr(parent, field, new)
                return True
    return False


# ------------------------------------------------------------------ killing
def _load(n: int, source: str | None) -> None:
    """Re-import stage modules n..39, module n from ``source`` when given."""
    for m in MODULES[n:]:
        sys.modules.pop(f"stages.{m}", None)
        if hasattr(stages, m):              # `from . import sNN` reads the package attribute
            delattr(stages, m)
    if source is not None:
        name = f"stages.{MODULES[n]}"
        module = importlib.util.module_from_spec(importlib.util.spec_from_loader(name, loader=None))
        module.__file__ = str(ROOT / "stages" / f"{MODULES[n]}.py")
        module.__package__ = "stages"
        sys.modules[name] = module
        setattr(stages, MODULES[n], module)
        exec(compile(source, module.__file__, "exec"), module.__dict__)


class MutantTimeout(Exception):
    pass


class HarnessError(RuntimeError):
    """The checks themselves could not run: stop, never count a kill."""


def _alarm(signum, frame):
    raise MutantTimeout()


def _api_tests_fail(n: int) -> bool:
    import pytest
    files = [str(ROOT / "tests" / f) for f in ("test_stage_api.py", "test_guards.py", "test_misuse.py")
             if (ROOT / "tests" / f).exists()]
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        code = pytest.main(files + ["-q", "-x", "-p", "no:cacheprovider", "-k", f"stage{n:02d}"])
    if code not in (0, 1, 5):         # 1: a test failed (killed); 5: no test selected
        raise HarnessError(f"pytest could not run the API tests (exit {code})")
    return code == 1


def killed_by(n: int, vectors, examples: int, outside: bool = False) -> str | None:
    from dirty_ladder.bridges import bridge
    from dirty_ladder.compare import api_case, compare_case, follow
    from dirty_ladder.explore import check_rung as explore_rung, load_scope
    from dirty_ladder.machine import replay
    from dirty_ladder.register import load_register
    from dirty_ladder.rungs import check_rung
    from dirty_ladder.trace import validate

    def conformance(stage_n, sample):
        for v in sample:
            expected = next(g["result"] for g in v["outputs"] if g["stages"][0] <= stage_n <= g["stages"][1])
            got = replay(stages.stage(stage_n), validate(v["trace"]))
            got.pop("stage")
            if got != expected:
                return v["id"]
        return None

    try:
        hit = conformance(n, vectors)
        if hit:
            return f"conformance {hit}-stage{n:02d}"
        for later in range(n + 1, stages.LAST + 1):
            hit = conformance(later, vectors[:40])
            if hit:
                return f"conformance {hit}-stage{later:02d}"
        for d in [] if outside else load_register():   # each entry's reproducer: the bridge still equals its stage
            if d.rung in (n, n + 1):
                pair = [bridge(d.rung), stages.stage(d.rung)]
                if d.trace and follow(pair, [(0, 1)], validate(d.trace)):
                    return f"register {d.id}"
                if d.call and compare_case(pair, [(0, 1)], api_case(d.call)):
                    return f"register {d.id}"
        if _api_tests_fail(n):
            return "tests/test_stage_api.py, tests/test_guards.py or tests/test_misuse.py"
        for rung in () if outside else (n, n + 1):
            if 1 <= rung <= stages.LAST:
                result = explore_rung(rung, load_scope("ci"))
                if not result.ok:
                    return f"rung{rung:02d} exhaustive ({result.status})"
                # entries the random cases do not reach are only noted: requiring
                # them is the exhaustive check's part (150 cases miss some entries
                # of rungs 07, 16, 30 and 37 on the unmutated ladder)
                result = check_rung(rung, examples, require_found=False)
                if not result.ok:
                    return f"rung{rung:02d} random ({result.status})"
    except MutantTimeout:
        return "timeout"
    except HarnessError:
        raise
    except (Exception, MemoryError) as exc:       # a crash on valid input kills too
        return f"exception {type(exc).__name__}"
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stages", default="0-39", help="a stage or a range, e.g. 19 or 26-39")
    parser.add_argument("--examples", type=int, default=150, help="cases per rung check (default 150)")
    parser.add_argument("--outside", action="store_true",
                        help="only the checks that look outside the ladder: no register, no rung checks")
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--timeout", type=int, default=60,
                        help="seconds before a mutant counts as killed by a hang (default 60)")
    args = parser.parse_args(argv)
    # a mutant may loop for ever or ask for terabytes: both count as killed
    signal.signal(signal.SIGALRM, _alarm)
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
    first, _, last = args.stages.partition("-")
    wanted = range(int(first), int(last or first) + 1)
    from dirty_ladder.conformance import vectors as conformance_vectors
    vectors = list(conformance_vectors())
    results = {}
    for n in wanted:
        path = ROOT / "stages" / f"{MODULES[n]}.py"
        source = path.read_text()
        killed, survivors, total, kills = 0, [], 0, []
        start = time.time()
        _load(n, None)
        signal.alarm(args.timeout)
        try:                # the unmutated ladder must pass, or every kill would be false
            by = killed_by(n, vectors, args.examples, args.outside)
        finally:
            signal.alarm(0)
        if by:
            raise HarnessError(f"the unmutated ladder fails the checks of stage {n:02d}: {by}")
        for desc, mutated in mutants(source):
            total += 1
            _load(n, mutated)
            signal.alarm(args.timeout)
            try:
                by = killed_by(n, vectors, args.examples, args.outside)
            finally:
                signal.alarm(0)
            if by:
                killed += 1
                kills.append([desc, by])        # a description may repeat on a line
            else:
                survivors.append(desc)
            _load(n, None)
        score = killed / total if total else 1.0
        results[MODULES[n]] = {"mutants": total, "killed": killed, "score": score, "survivors": survivors,
                               "seconds": round(time.time() - start), "killed_by": kills}
        print(f"{MODULES[n]:45s} {killed:4d}/{total:<4d} {100 * score:5.1f}%  ({time.time() - start:.0f}s)",
              flush=True)
        for s in survivors:
            print(f"    survived: {s}", flush=True)
    total = sum(r["mutants"] for r in results.values())
    killed = sum(r["killed"] for r in results.values())
    print(f"{'total':45s} {killed:4d}/{total:<4d} {100 * killed / max(total, 1):5.1f}%")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
