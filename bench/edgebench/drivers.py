"""
One load run each: wrk (HTTP), iperf3 (a TCP stream) and the WebSocket client,
pinned to the load core, each returning a ``Result``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgebench.processes import HOST, bench_environment, pinned

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
WRK_SCRIPT = CONFIGS / "wrk-summary.lua"
GRACE = 30.0
"""Seconds a load run may take beyond its duration before it is killed."""


@dataclass
class Result:
    """What a load generator measured in one run."""

    value: float
    requests: int | None = None
    mbytes_per_s: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: int = 0
    detail: dict[str, Any] = field(default_factory=dict)


def tagged_line(output: str) -> dict[str, Any] | None:
    """The first ``EDGEBENCH {json}`` line of a client's output, parsed."""
    for line in output.splitlines():
        if line.startswith("EDGEBENCH "):
            parsed: dict[str, Any] = json.loads(line[len("EDGEBENCH ") :])
            return parsed
    return None


def run_wrk(
    cpu: int,
    port: int,
    path: str,
    connections: int,
    seconds: int,
    close: bool = False,
    headers: Sequence[str] = (),
) -> Result:
    """``wrk -t1`` for ``seconds``; ``close`` sends ``Connection: close`` (one
    request per connection, so requests/s is new connections/s); ``headers``
    are more ``Name: value`` fields for every request."""
    argv = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "-s",
        str(WRK_SCRIPT),
    ]
    if close:
        argv += ["-H", "Connection: close"]
    for header in headers:
        argv += ["-H", header]
    argv.append(f"http://{HOST}:{port}{path}")
    done = subprocess.run(
        pinned(cpu, argv),
        capture_output=True,
        text=True,
        timeout=seconds + GRACE,
        check=False,
    )
    summary = tagged_line(done.stdout)
    if summary is None:
        raise RuntimeError(
            f"wrk exited with {done.returncode}: {done.stderr.strip()[-300:]}"
        )
    elapsed = summary["duration_us"] / 1e6
    latency = summary["latency_us"]
    errors = summary["errors"]
    # wrk counts non-2xx/3xx answers as "status" errors but still as requests.
    good = summary["requests"] - errors["status"]
    return Result(
        value=good / elapsed,
        requests=summary["requests"],
        mbytes_per_s=summary["bytes"] / elapsed / 1e6,
        p50_ms=latency["p50"] / 1000,
        p99_ms=latency["p99"] / 1000,
        errors=sum(errors.values()),
        detail={"wrk_errors": errors},
    )


def run_iperf(cpu: int, port: int, seconds: int) -> Result:
    """One iperf3 stream for ``seconds``; the value is received Gbit/s."""
    # Leave out the first second (slow start) when the run is long enough.
    omit = 1 if seconds >= 3 else 0
    argv = ["iperf3", "-c", HOST, "-p", str(port), "-t", str(seconds)]
    argv += ["-O", str(omit), "-J", "--connect-timeout", "3000"]
    done = subprocess.run(
        pinned(cpu, argv),
        capture_output=True,
        text=True,
        timeout=seconds + omit + GRACE,
        check=False,
    )
    try:
        report = json.loads(done.stdout)
    except ValueError:
        raise RuntimeError(
            f"iperf3 exited with {done.returncode}: {done.stderr.strip()[-300:]}"
        ) from None
    if "error" in report:
        raise RuntimeError(f"iperf3: {report['error']}")
    received = report["end"]["sum_received"]
    return Result(
        value=received["bits_per_second"] / 1e9,
        mbytes_per_s=received["bits_per_second"] / 8e6,
        detail={"retransmits": report["end"]["sum_sent"].get("retransmits")},
    )


def client_argv(python: str, *arguments: str) -> list[str]:
    """The command line of one of the clients in ``edgebench.clients``."""
    return [python, "-m", "edgebench.clients", *arguments]


def run_websocket(
    cpu: int, port: int, path: str, connections: int, seconds: int, size: int
) -> Result:
    """Echo round trips per second through ``connections`` WebSocket connections."""
    argv = client_argv(
        sys.executable, "ws", str(port), path, str(connections), str(seconds), str(size)
    )
    done = subprocess.run(
        pinned(cpu, argv),
        capture_output=True,
        text=True,
        timeout=seconds + GRACE,
        check=False,
        env=bench_environment(),
    )
    summary = tagged_line(done.stdout)
    if summary is None:
        raise RuntimeError(
            f"websocket client exited with {done.returncode}: "
            f"{done.stderr.strip()[-300:]}"
        )
    if summary["messages"] == 0:
        raise RuntimeError(f"no message came back: {summary['first_error']}")
    return Result(
        value=summary["messages"] / summary["seconds"],
        requests=summary["messages"],
        errors=summary["errors"],
        detail={"first_error": summary["first_error"]},
    )
