"""Sphinx configuration for the edgeproxy documentation."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "edgeproxy"
author = "the edgeproxy developers"
copyright = "2026, the edgeproxy developers"
extensions = ["config_keys"]
exclude_patterns = ["_build"]
html_theme = "alabaster"
nitpicky = False
