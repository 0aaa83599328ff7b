"""Health-check results, as values."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HealthResult:
    """
    The outcome of one probe.

    :ivar up: whether the server answered as expected.
    :ivar reason: why it is down (or a short note when up), for logs and stats.
    :ivar latency: seconds the probe took.
    """

    up: bool
    reason: str = ""
    latency: float = 0.0
