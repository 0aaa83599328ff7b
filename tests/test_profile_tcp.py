"""bench/edgebench/profile_tcp.py, the TCP listener's cost meter, still runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_a_short_run_reports_cpu_per_mib_and_per_connection() -> None:
    """A short run through a real listener prints CPU per MiB and per connection."""
    path = os.pathsep.join([str(REPO), str(REPO / "bench")])
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgebench.profile_tcp",
            "--megabytes",
            # Enough bytes for tens of milliseconds of CPU: getrusage counts
            # in clock ticks (4 ms on many kernels), and the write-through splice
            # spends so little user time per MiB that 64 MiB once showed 0.
            "512",
            "--connections",
            "50",
            "--concurrency",
            "5",
            "--repeat",
            "1",
            "--top",
            "20",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": path},
        timeout=120,
        check=True,
    )
    stream = re.search(r"stream: ([\d.]+) us CPU/MiB \(([\d.]+) user", done.stdout)
    connrate = re.search(r"connrate: ([\d.]+) us CPU/connection", done.stdout)
    assert stream is not None and connrate is not None, done.stdout
    assert float(stream.group(1)) >= float(stream.group(2)) > 0
    assert float(connrate.group(1)) > 0
    calls = re.search(r"connrate: ([\d.]+) python calls/connection", done.stdout)
    assert calls is not None and 100 < float(calls.group(1)) < 5000, done.stdout
    assert "edgeproxy/tunnel.py" in done.stdout  # the hot spots name our functions
