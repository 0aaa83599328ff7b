"""bench/run, the benchmark suite, works end to end (no figure is judged here)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUN = REPO / "bench" / "run"


def _missing_tools() -> list[str]:
    """The programs the benchmark needs that this machine lacks."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return [
        tool
        for tool in ("wrk", "nginx", "taskset")
        if not shutil.which(tool, path=path)
    ]


MISSING = _missing_tools()


@pytest.mark.integration
@pytest.mark.skipif(
    bool(MISSING),
    reason=f"the benchmark needs {', '.join(MISSING)}: run bench/setup to install",
)
def test_quick_run_writes_a_requests_per_second_row(tmp_path: Path) -> None:
    """A one-second run against edgeproxy and the origin saves a positive req/s row."""
    done = subprocess.run(
        [
            str(RUN),
            "--quick",
            "--scenarios=http-128-c50",
            "--targets=edgeproxy",
            "--duration=1",
            "--no-plot",
            f"--out={tmp_path}",
        ],
        env=dict(os.environ, EDGEBENCH_PYTHON=sys.executable),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "latest" / "results.json").read_text())
    rows = {(row["scenario"], row["target"]): row for row in results["rows"]}
    assert rows["http-128-c50", "edgeproxy"]["median"] > 0
    assert rows["http-128-c50", "direct"]["median"] > 0
    assert "| http-128-c50 | edgeproxy |" in done.stdout
