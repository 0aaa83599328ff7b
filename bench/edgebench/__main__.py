"""``python -m edgebench``: the same as ``bench/run``."""

from __future__ import annotations

import sys

from edgebench.cli import main

sys.exit(main())
