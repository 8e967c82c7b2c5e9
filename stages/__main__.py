"""``python -m stages``: the ``dirty-ladder`` command (stages/cli.py)."""

import sys

from .cli import main

sys.exit(main(prog="python -m stages"))
