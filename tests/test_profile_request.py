"""bench/edgebench/profile_request.py, the per-request cost meter, still runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_in_memory_run_reports_calls_garbage_and_cpu() -> None:
    """A short in-memory run proxies real requests and prints its three figures."""
    path = os.pathsep.join([str(REPO), str(REPO / "bench")])
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgebench.profile_request",
            "--requests",
            "50",
            "--repeat",
            "1",
            "--top",
            "40",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": path},
        timeout=120,
        check=True,
    )
    calls = re.search(r"python calls/request: +([\d.]+)", done.stdout)
    assert calls is not None, done.stdout
    assert 50 < float(calls.group(1)) < 2000
    assert re.search(r"cyclic garbage/request: +[\d.]+ objects", done.stdout)
    assert re.search(r"CPU us/request: +[\d.]+", done.stdout)
    assert "edgeproxy/http/" in done.stdout  # the hot spots name our functions
