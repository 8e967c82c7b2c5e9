"""``python -m dirty_ladder``: the ``dirty-ladder`` command (dirty_ladder/cli/)."""

import sys

from .cli import main

sys.exit(main(prog="python -m dirty_ladder"))
