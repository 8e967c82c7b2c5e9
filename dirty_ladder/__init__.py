"""The tooling around the ladder of stages (the package ``stages``).

- the machine every stage runs in: :mod:`.trace` (the trace format),
  :mod:`.machine`, :mod:`.views` (how an observer reads a stage's dirty
  state), :mod:`.generate` (random valid traces);
- the checks that compare stages: :mod:`.rungs` (each rung, stage N-1 against
  stage N, and the divergence register ``divergences.toml``),
  :mod:`.invariants` (what every stage should keep, ``invariants.toml``);
- :mod:`.bench`, the cost of the operations the series changed;
- :mod:`.cli`, the ``dirty-ladder`` command.
"""
