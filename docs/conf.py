"""Sphinx configuration for the edgeproxy documentation."""

from __future__ import annotations

import sys
from pathlib import Path

_DOCS = Path(__file__).resolve().parent
# The extension lives beside this file; the reference it renders is read from
# the edgeproxy of this checkout, installed or not.
sys.path.insert(0, str(_DOCS / "_ext"))
sys.path.insert(1, str(_DOCS.parent))

project = "edgeproxy"
author = "the edgeproxy developers"
copyright = "2026, the edgeproxy developers"
extensions = ["config_keys"]
exclude_patterns = ["_build", "examples"]
html_theme = "alabaster"
highlight_language = "none"
nitpicky = False
