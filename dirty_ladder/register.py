"""The divergence register (``divergences.toml``): every way a stage behaves
differently from the one before it, with the reason.

Each entry names:

- ``rung`` (stage rung-1 -> rung) and ``override``: its behaviour change as
  code, a class of :mod:`.bridges` that makes exactly that change on stage
  rung-1;
- ``signatures``: every place the change shows, as ``level:place`` with an
  optional ``:k=v,...`` condition on the configs it shows in
  (:func:`parse_signature`); the rung checks demand that the override alone
  differs from stage rung-1 at these places and nowhere else;
- ``scope``: the smallest built-in scope of the exhaustive check
  (:mod:`.explore`) that reaches every one of those places;
- a shortest ``trace`` (machine and representation levels) or ``call`` (API
  level) that shows it, the explanation and a status (intended, fix, bug,
  benign);
- where the trace and call do not show every one of the signatures,
  ``more_traces`` and ``more_calls``: one more reproducer for each place
  they miss.  The random rung check replays all of an entry's reproducers
  before its generated cases (:mod:`.rungs`), so no entry is found by chance,
  and tests/test_register.py checks that together they show every signature.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources

from .trace import decode

STATUSES = ("intended", "fix", "bug", "benign")


@dataclass
class Divergence:
    id: str
    rung: int
    signatures: list[str]
    what: str
    explanation: str
    status: str                     # intended | fix | bug | benign
    override: str                   # its behaviour change as code: a class of bridges.py
    scope: str = "ci"               # the smallest built-in scope whose exhaustive check finds it
    fixed_upstream: str = ""
    trace: dict | None = None       # a shortest trace (machine and repr levels)
    call: dict | None = None        # a shortest call (api level), see compare.api_case()
    more_traces: list[dict] = field(default_factory=list)   # for the places trace and call miss
    more_calls: list[dict] = field(default_factory=list)

    @property
    def traces(self) -> list[dict]:
        """Every trace of the entry: its shortest one first, then the others."""
        return ([] if self.trace is None else [self.trace]) + self.more_traces

    @property
    def calls(self) -> list[dict]:
        """Every call of the entry: its shortest one first, then the others."""
        return ([] if self.call is None else [self.call]) + self.more_calls

    @property
    def levels(self) -> set[str]:
        return {parse_signature(sig)[0] for sig in self.signatures}


def parse_signature(signature: str) -> tuple[str, str, dict[str, str]]:
    """``level:place[:condition]`` -> (level, place, condition).  The place is
    ``results:OP`` or ``state.FIELD`` (machine), ``raw`` (repr),
    ``api:FUNCTION:FIELD`` (api); the condition, ``k=v,k=v``, names config
    values that every config showing the difference has."""
    parts = signature.split(":")
    condition = parts.pop() if "=" in parts[-1] else ""
    level = parts[0]
    place = ":".join(parts) if level == "api" else ":".join(parts[1:])
    return level, place, dict(kv.split("=", 1) for kv in condition.split(",") if kv)


def signature_matches(declared: str, level: str, place: str, configs) -> bool:
    """Does a register signature cover a difference seen at ``level`` and
    ``place`` in ``configs`` (config dicts): the same level and place, and
    every one of those configs meets the signature's condition?"""
    want_level, want_place, condition = parse_signature(declared)
    return (want_level == level and want_place == place
            and all(str(config[k]).lower() == v for config in configs for k, v in condition.items()))


def load_register() -> list[Divergence]:
    text = resources.files(__package__).joinpath("divergences.toml").read_text(encoding="utf-8")
    out = []
    for entry in tomllib.loads(text).get("divergence", []):
        out.append(Divergence(
            id=entry["id"], rung=entry["rung"], signatures=entry["signatures"], what=entry["what"],
            explanation=entry["explanation"], status=entry["status"], override=entry["override"],
            scope=entry.get("scope", "ci"),
            fixed_upstream=entry.get("fixed_upstream", ""),
            trace=decode(entry["trace"]) if "trace" in entry else None,
            call=decode(entry["call"]) if "call" in entry else None,
            more_traces=[decode(t) for t in entry.get("more_traces", [])],
            more_calls=[decode(c) for c in entry.get("more_calls", [])]))
    return out


def entries_of(rung: int, register: list[Divergence] | None = None) -> list[Divergence]:
    """The entries of one rung, in register order (the bridge's order)."""
    return [d for d in (load_register() if register is None else register) if d.rung == rung]
