"""
The scenarios, which targets take part in each, and the goals edgeproxy is
measured against (ratios to a peer measured in the same run).
"""

from __future__ import annotations

from dataclasses import dataclass

HTTP_TARGETS = ("direct", "nginx", "haproxy", "edgeproxy")
TCP_TARGETS = ("direct", "haproxy", "edgeproxy")
PROXIES = ("nginx", "haproxy", "edgeproxy")


@dataclass(frozen=True)
class Scenario:
    """One kind of load: what drives it, against what, and how it is read."""

    key: str
    title: str
    kind: str
    """``http`` (wrk), ``connrate`` (wrk, Connection: close, through the TCP
    listeners), ``stream`` (iperf3 through the TCP listeners), ``websocket``."""
    unit: str
    reference: str
    """The peer whose result the ratio ``x ref`` divides by."""
    targets: tuple[str, ...]
    path: str = "/small"
    connections: int = 50


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "http-128-c50",
        "HTTP 128 B body, keep-alive, 50 connections",
        "http",
        "req/s",
        "nginx",
        HTTP_TARGETS,
    ),
    Scenario(
        "http-128-c1",
        "HTTP 128 B body, keep-alive, 1 connection (latency)",
        "http",
        "req/s",
        "nginx",
        HTTP_TARGETS,
        connections=1,
    ),
    Scenario(
        "http-64k-c50",
        "HTTP 64 KiB body, keep-alive, 50 connections",
        "http",
        "req/s",
        "nginx",
        HTTP_TARGETS,
        path="/64k",
    ),
    Scenario(
        "http-1m-c50",
        "HTTP 1 MiB body, keep-alive, 50 connections",
        "http",
        "req/s",
        "nginx",
        HTTP_TARGETS,
        path="/1m",
    ),
    Scenario(
        "tcp-stream",
        "TCP, one iperf3 stream through the TCP listener",
        "stream",
        "Gbit/s",
        "haproxy",
        TCP_TARGETS,
        connections=1,
    ),
    Scenario(
        "tcp-connrate",
        "TCP new connections/s: wrk, 50 connections, Connection: close, "
        "through the TCP listener",
        "connrate",
        "conn/s",
        "haproxy",
        TCP_TARGETS,
    ),
    Scenario(
        "websocket",
        "WebSocket 128 B echo round trips, 16 connections",
        "websocket",
        "msg/s",
        "nginx",
        HTTP_TARGETS,
        path="/ws",
        connections=16,
    ),
)
BY_KEY = {scenario.key: scenario for scenario in SCENARIOS}
RESOURCES = "resources"
"""The memory scenario (idle connections, 1 GiB upload); not a load run."""
ALL_KEYS = (*BY_KEY, RESOURCES)
IDLE_CONNECTIONS = 10_000
"""Idle keep-alive connections held in the memory scenario (and its goal)."""


@dataclass(frozen=True)
class Goal:
    """A bar edgeproxy should clear."""

    label: str
    scenario: str
    threshold: float
    kind: str
    """``ratio``: edgeproxy / reference >= threshold; ``idle_rss_mb``: < threshold."""


GOALS: tuple[Goal, ...] = (
    Goal("HTTP 128 B c50 >= 0.35 x nginx", "http-128-c50", 0.35, "ratio"),
    Goal("HTTP 64 KiB c50 >= 0.5 x nginx", "http-64k-c50", 0.5, "ratio"),
    Goal("HTTP 1 MiB c50 >= 0.45 x nginx", "http-1m-c50", 0.45, "ratio"),
    Goal("TCP 1 stream >= 0.75 x HAProxy tcp", "tcp-stream", 0.75, "ratio"),
    Goal("TCP new conns/s >= 0.4 x HAProxy tcp", "tcp-connrate", 0.4, "ratio"),
    Goal(
        f"{IDLE_CONNECTIONS:,} idle connections < 150 MB RSS",
        RESOURCES,
        150.0,
        "idle_rss_mb",
    ),
)
