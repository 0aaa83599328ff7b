"""Tests for edgeproxy.snapshot: building routes and pools, and carrying state over."""

from __future__ import annotations

import pytest
from twisted.internet.testing import MemoryReactorClock

from edgeproxy.config.loader import parse_config
from edgeproxy.core.message import Headers, RequestHead
from edgeproxy.errors import ConfigError
from edgeproxy.http.connection_pool import UpstreamConnectionSettings
from edgeproxy.http.settings import ClientSettings
from edgeproxy.registry import discover
from edgeproxy.snapshot import (
    Route,
    Snapshot,
    SnapshotHolder,
    build_snapshot,
    connection_settings,
)
from edgeproxy.testing import environment
from edgeproxy.upstream.server import AdminState, ServerTransition

REGISTRY = discover()

CONFIG = """
[listener:web]
protocol = http
endpoint = tcp:8080
routes = api, moved, site

[listener:db]
protocol = tcp
endpoint = tcp:5433
upstream = pg

[route:api]
host = api.example.com
upstream = users
filters = second, first

[route:moved]
path_prefix = /old/
redirect = /new/

[route:site]
path_prefix = /
upstream = web

[upstream:users]
servers = {servers}
retries = 2

[upstream:web]
servers = 10.0.1.1:80

[upstream:pg]
servers = 10.0.2.1:5432

[filter:first]
plugin = headers
request.add = X-First: 1

[filter:second]
plugin = headers
request.add = X-Second: 1
"""
SERVERS = "10.0.0.1:9001, 10.0.0.2:9001"
A = "10.0.0.1:9001"
B = "10.0.0.2:9001"


def build(
    servers: str = SERVERS,
    previous: Snapshot | None = None,
    reactor: MemoryReactorClock | None = None,
    observer: list[ServerTransition] | None = None,
) -> Snapshot:
    """A snapshot of CONFIG with ``servers`` in [upstream:users]."""
    return build_snapshot(
        parse_config(CONFIG.format(servers=servers)),
        REGISTRY,
        environment(reactor or MemoryReactorClock()),
        previous=previous,
        on_transition=None if observer is None else observer.append,
    )


def route_for(snapshot: Snapshot, host: bytes, target: bytes = b"/") -> Route | None:
    """The route the web listener picks for a GET of ``target`` on ``host``."""
    request = RequestHead(b"GET", target, Headers([(b"Host", host)]))
    return snapshot.route_tables["web"].match(request, host)


# --- building ---------------------------------------------------------------------


def test_route_tables_exist_for_http_listeners_only() -> None:
    """Each http listener has a route table; a tcp listener has none."""
    snapshot = build()
    assert set(snapshot.route_tables) == {"web"}
    assert set(snapshot.pools) == {"users", "web", "pg"}


def test_routes_are_matched_in_the_listeners_order() -> None:
    """The web listener's routes answer the requests they match."""
    snapshot = build()
    api = route_for(snapshot, b"api.example.com")
    moved = route_for(snapshot, b"www.example.com", b"/old/x")
    site = route_for(snapshot, b"www.example.com")
    assert api is not None and api.name == "api"
    assert moved is not None and moved.name == "moved"
    assert site is not None and site.name == "site"


def test_route_holds_its_pool_filters_and_retries() -> None:
    """A route has its upstream's pool, its filters in its order and its retries."""
    snapshot = build()
    api = route_for(snapshot, b"api.example.com")
    assert api is not None
    [target] = api.targets
    assert target.pool is snapshot.pools["users"]
    assert api.filters == (snapshot.filters["second"], snapshot.filters["first"])
    assert target.retries == 2
    assert target.connections == UpstreamConnectionSettings()
    assert api.split is None


def test_redirect_route_has_no_pool() -> None:
    """A redirect-only route has no upstream to send requests to."""
    moved = route_for(build(), b"www.example.com", b"/old/x")
    assert moved is not None
    assert moved.targets == ()
    assert moved.specs.redirect is not None


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("connect_timeout = 2s", UpstreamConnectionSettings(connect_timeout=2.0)),
        (
            "first_byte_timeout = 90s",
            UpstreamConnectionSettings(client=ClientSettings(first_byte_timeout=90.0)),
        ),
        (
            "read_timeout = 15s",
            UpstreamConnectionSettings(client=ClientSettings(idle_timeout=15.0)),
        ),
        ("keepalive = 4", UpstreamConnectionSettings(keepalive=4)),
        ("keepalive_timeout = 5s", UpstreamConnectionSettings(keepalive_timeout=5.0)),
        ("tls_verify = no", UpstreamConnectionSettings(tls_verify=False)),
        ("tls_ca_file = ca.pem", UpstreamConnectionSettings(tls_ca_file="ca.pem")),
    ],
)
def test_upstream_keys_become_connection_settings(
    key: str, expected: UpstreamConnectionSettings
) -> None:
    """Each HTTP connection key of an upstream sets its connection setting."""
    text = f"[upstream:u]\nservers = 10.0.0.1:80\n{key}\n"
    config = parse_config(text)
    assert connection_settings(config.upstreams["u"]) == expected


def test_every_plugin_problem_is_reported_together() -> None:
    """Unknown plugins and rejected options are all listed, by section and key."""
    text = CONFIG.format(servers=SERVERS)
    text = text.replace("retries = 2", "retries = 2\nbalance = fastest")
    text = text.replace(
        "[upstream:web]\n", "[upstream:web]\nhealth = tcp\nhealth.x = 1\n"
    )
    text = text.replace(
        "plugin = headers\nrequest.add = X-First", "plugin = nope\nx = X"
    )
    text = text.replace("request.add = X-Second: 1", "request.bad = 1")
    with pytest.raises(ConfigError) as raised:
        build_snapshot(parse_config(text), REGISTRY, environment())
    where = sorted((p.section, p.key) for p in raised.value.problems)
    assert where == [
        ("filter:first", "plugin"),
        ("filter:second", "request.bad"),
        ("upstream:users", "balance"),
        ("upstream:web", "health.x"),
    ]


# --- reload -------------------------------------------------------------------------


def test_drained_server_stays_drained_after_a_rebuild() -> None:
    """Rebuilt with previous, a drained server is still drained and not picked."""
    reactor = MemoryReactorClock()
    old = build(reactor=reactor)
    old.pools["users"].drain(A, 0)
    new = build(previous=old, reactor=reactor)
    server = new.pools["users"].server(A)
    assert server is not old.pools["users"].server(A)
    assert server.admin_state is AdminState.DRAINING
    assert [s.key for s in new.pools["users"].candidates(0)] == [B]


def test_without_previous_state_starts_afresh() -> None:
    """Built without previous, servers start enabled whatever the old ones were."""
    old = build()
    old.pools["users"].drain(A, 0)
    assert build().pools["users"].server(A).admin_state is AdminState.ENABLED


def test_counters_and_health_are_shared_with_the_old_server() -> None:
    """A kept server shares active requests and passive health with its old self."""
    reactor = MemoryReactorClock()
    old = build(reactor=reactor)
    old_pool = old.pools["users"]
    old_a = old_pool.server(A)
    old_pool.started(old_a, 0)
    old_pool.started(old_a, 0)
    old_pool.finished(old_a, 0, 0.1, failed=True)  # max_fails = 1: down now
    new = build(previous=old, reactor=reactor)
    new_a = new.pools["users"].server(A)
    assert (new_a.active, new_a.failures, new_a.total_requests) == (1, 1, 2)
    assert not new_a.is_up(0)
    old_pool.finished(old_a, 0, 0.1, failed=False)  # ends on the old snapshot
    assert new_a.active == 0


def test_configured_down_decides_over_the_carried_state() -> None:
    """A server newly marked down in the configuration is disabled on reload."""
    reactor = MemoryReactorClock()
    observer: list[ServerTransition] = []
    old = build(reactor=reactor)
    new = build(f"{A} down, {B}", previous=old, reactor=reactor, observer=observer)
    assert new.pools["users"].server(A).admin_state is AdminState.DISABLED
    assert [(t.key, t.new) for t in observer] == [(A, "disabled")]


def test_new_servers_start_fresh_and_removed_ones_go() -> None:
    """A server added on reload starts afresh; a removed one is no longer there."""
    reactor = MemoryReactorClock()
    old = build(reactor=reactor)
    old.pools["users"].drain(B, 0)
    new = build(f"{A}, 10.0.0.3:9001", previous=old, reactor=reactor)
    keys = [s.key for s in new.pools["users"].servers]
    assert keys == [A, "10.0.0.3:9001"]
    added = new.pools["users"].server("10.0.0.3:9001")
    assert added.admin_state is AdminState.ENABLED
    assert added.total_requests == 0


def test_holder_swap_returns_the_previous_snapshot() -> None:
    """swap makes the new snapshot current and hands back the old one."""
    old, new = build(), build()
    holder = SnapshotHolder(old)
    assert holder.swap(new) is old
    assert holder.current is new


def test_transitions_reach_the_observer() -> None:
    """Servers report their transitions to the snapshot's observer."""
    observer: list[ServerTransition] = []
    snapshot = build(observer=observer)
    snapshot.pools["users"].drain(A, 5)
    assert [(t.key, t.aspect, t.new, t.at) for t in observer] == [
        (A, "admin", "draining", 5)
    ]
