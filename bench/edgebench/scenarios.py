"""
The scenarios, which targets take part in each, and the goals edgeproxy is
measured against (ratios to a peer measured in the same run).
"""

from __future__ import annotations

from dataclasses import dataclass

HTTP_TARGETS = ("direct", "nginx", "haproxy", "edgeproxy")
TCP_TARGETS = ("direct", "haproxy", "edgeproxy")
CACHE_TARGETS = ("direct", "nginx", "varnish", "edgeproxy")
"""nginx with proxy_cache, Varnish, edgeproxy with a memory cache."""
GATEWAY_TARGETS = (
    "direct", "nginx", "edgeproxy", "edgeproxy-jwt", "edgeproxy-jwt-redis",
)  # fmt: skip
"""The plain routes, and edgeproxy's route behind jwt + rate_limit (memory or
Redis counters)."""
PROXIES = (
    "nginx", "haproxy", "varnish", "edgeproxy", "edgeproxy-jwt",
    "edgeproxy-jwt-redis",
)  # fmt: skip
MEMORY_PROXIES = ("nginx", "haproxy", "edgeproxy")
"""The proxies of the memory scenario."""


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
    """The peer whose result the ratio ``x ref`` divides by (and the goals)."""
    targets: tuple[str, ...]
    path: str = "/small"
    connections: int = 50
    other_references: tuple[str, ...] = ()
    """More peers shown in ``x ref``, each with its own ratio."""
    cached: bool = False
    """Every answer must be a cache hit: each cache is warmed before a run,
    and a run during which a request reached the origin is refused."""
    bearer_token: bool = False
    """wrk sends ``Authorization: Bearer <the bench's JWT>`` to every target."""

    @property
    def references(self) -> tuple[str, ...]:
        """Every peer ``x ref`` compares with, the main one first."""
        return (self.reference, *self.other_references)


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
    Scenario(
        "cache-128-c50",
        "Cache hit, 128 B body, keep-alive, 50 connections",
        "http",
        "req/s",
        "nginx",
        CACHE_TARGETS,
        path="/cached/small",
        other_references=("varnish",),
        cached=True,
    ),
    Scenario(
        "cache-64k-c50",
        "Cache hit, 64 KiB body, keep-alive, 50 connections",
        "http",
        "req/s",
        "nginx",
        CACHE_TARGETS,
        path="/cached/64k",
        other_references=("varnish",),
        cached=True,
    ),
    Scenario(
        "gateway-128-c50",
        "API gateway: HTTP 128 B body, keep-alive, 50 connections, a JWT "
        "on every request",
        "http",
        "req/s",
        "edgeproxy",
        GATEWAY_TARGETS,
        other_references=("nginx",),
        bearer_token=True,
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
    """``ratio``: target / reference >= threshold; ``idle_rss_mb``: < threshold."""
    target: str = "edgeproxy"
    """Whose figure is judged."""


GOALS: tuple[Goal, ...] = (
    Goal("HTTP 128 B c50 >= 0.35 x nginx", "http-128-c50", 0.35, "ratio"),
    Goal("HTTP 64 KiB c50 >= 0.5 x nginx", "http-64k-c50", 0.5, "ratio"),
    Goal("HTTP 1 MiB c50 >= 0.45 x nginx", "http-1m-c50", 0.45, "ratio"),
    Goal("TCP 1 stream >= 0.75 x HAProxy tcp", "tcp-stream", 0.75, "ratio"),
    Goal("TCP new conns/s >= 0.4 x HAProxy tcp", "tcp-connrate", 0.4, "ratio"),
    Goal("Cache hit 128 B c50 >= 0.35 x nginx cache", "cache-128-c50", 0.35, "ratio"),
    Goal(
        "jwt + rate_limit >= 0.75 x plain edgeproxy",
        "gateway-128-c50",
        0.75,
        "ratio",
        target="edgeproxy-jwt",
    ),
    Goal(
        "jwt + rate_limit on Redis >= 0.6 x plain edgeproxy",
        "gateway-128-c50",
        0.6,
        "ratio",
        target="edgeproxy-jwt-redis",
    ),
    Goal(
        f"{IDLE_CONNECTIONS:,} idle connections < 150 MB RSS",
        RESOURCES,
        150.0,
        "idle_rss_mb",
    ),
)
