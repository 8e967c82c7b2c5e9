"""``python -m dirty_ladder.bench``: the bench alone (``dirty-ladder bench`` runs the same)."""

import sys

from ..streams import finish
from . import main

sys.exit(finish(main))
