"""``python -m dirty_ladder.cli``: the same command as ``python -m dirty_ladder``."""

import sys

from . import main

sys.exit(main())
