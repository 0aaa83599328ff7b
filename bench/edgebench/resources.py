"""
The memory scenario, on a freshly started instance of each proxy: resident
memory at rest, holding 10,000 idle keep-alive client connections (each has
made one request), and at its peak during a 1 GiB upload.
"""

from __future__ import annotations

import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from edgebench.drivers import GRACE, client_argv, tagged_line
from edgebench.machine import resident_bytes
from edgebench.processes import bench_environment, pinned
from edgebench.stack import Target

MB = 1e6


@dataclass
class ResourceResult:
    """What one proxy used; memory in MB (10^6 bytes)."""

    target: str
    rest_mb: float
    idle_connections: int
    idle_open: int
    idle_closed_by_server: int | None
    idle_mb: float
    idle_mb_per_1k: float
    upload_bytes: int
    upload_status: str
    upload_mb_per_s: float
    upload_peak_mb: float

    def as_dict(self) -> dict[str, Any]:
        """The result as JSON-ready values."""
        return dict(vars(self))


def _read_line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    if not ready:
        raise RuntimeError(f"no answer from the client within {timeout:.0f} s")
    return process.stdout.readline()


def hold_idle(
    cpu: int, target: Target, connections: int, settle: float = 1.0
) -> tuple[int, int | None, float]:
    """Hold ``connections`` idle connections to ``target``; RSS meanwhile.

    Returns (connections open, of them closed by the server before release,
    RSS in bytes while held).
    """
    argv = client_argv(sys.executable, "idle", str(target.http_port), "/small")
    process = subprocess.Popen(
        pinned(cpu, [*argv, str(connections)]),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=bench_environment(),
    )
    assert process.stdin is not None
    try:
        opened = tagged_line(_read_line(process, 120.0))
        if opened is None:
            raise RuntimeError("the idle client failed before it reported")
        # Let the proxy finish its work for the last batch before reading RSS.
        time.sleep(settle)
        rss = resident_bytes(target.pids)
        process.stdin.write("release\n")
        process.stdin.flush()
        closed = tagged_line(_read_line(process, 60.0))
        process.wait(GRACE)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdin.close()
        if process.stdout is not None:
            process.stdout.close()
    return (
        int(opened["open"]),
        None if closed is None else int(closed["closed_by_server"]),
        rss,
    )


def upload_peak(cpu: int, target: Target, size: int) -> tuple[dict[str, Any], int]:
    """POST ``size`` bytes through ``target``; the client's report and peak RSS."""
    peak = [resident_bytes(target.pids)]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], resident_bytes(target.pids))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        argv = client_argv(sys.executable, "upload", str(target.upload_port))
        finished = subprocess.run(
            pinned(cpu, [*argv, "/upload", str(size)]),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env=bench_environment(),
        )
    finally:
        done.set()
        sampler.join()
    report = tagged_line(finished.stdout)
    if report is None:
        raise RuntimeError(
            f"the upload client exited with {finished.returncode}: "
            f"{finished.stderr.strip()[-300:]}"
        )
    return report, peak[0]


def measure_resources(
    cpu: int, target: Target, connections: int, upload_size: int
) -> ResourceResult:
    """The three memory figures of a freshly started ``target``."""
    time.sleep(0.5)
    rest = resident_bytes(target.pids)
    opened, closed, idle = hold_idle(cpu, target, connections)
    report, peak = upload_peak(cpu, target, upload_size)
    return ResourceResult(
        target=target.name,
        rest_mb=rest / MB,
        idle_connections=connections,
        idle_open=opened,
        idle_closed_by_server=closed,
        idle_mb=idle / MB,
        idle_mb_per_1k=(idle - rest) / MB / max(opened, 1) * 1000,
        upload_bytes=upload_size,
        upload_status=str(report["status"]),
        upload_mb_per_s=upload_size / report["seconds"] / MB,
        upload_peak_mb=peak / MB,
    )
