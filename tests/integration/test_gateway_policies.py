"""
Gateway policy filters through a real ``twistd edgeproxy`` before a real origin.

``ip_acl`` (clients on 127.0.0.1 and 127.0.0.2), ``circuit_breaker`` (an origin
answering 500, then recovering), ``cors`` (preflights and actual requests) and
``request_id``.  The harness (:func:`running_gateway`) is test_gateway_auth.py's.
Every process is ended by its PID.
"""

from __future__ import annotations

import http.client
import math
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest

from tests.integration.conftest import free_port
from tests.integration.http_client import (
    ClientConnection,
    Response,
    request_bytes,
)
from tests.integration.test_gateway_auth import Gateway, running_gateway, upstream_saw

OPEN_FOR = 2.0
"""Seconds the breakers here stay open."""

GENERATED_ID = re.compile(rb"[0-9a-f]{32}")
APP_ORIGIN = b"https://app.example.com"

CONFIG = """
[listener:web]
protocol = http
endpoint = tcp:{port}:interface=127.0.0.1
routes = allow, proxied, deny, breaker_a, breaker_b, breaker_c, breaker_lost,
    breaker_dead, cors, cors_refused, ids, ids_refused

[route:allow]
path_prefix = /allow/
strip_prefix = /allow
upstream = app
filters = only_first

[route:proxied]
path_prefix = /proxied/
strip_prefix = /proxied
upstream = app
filters = only_first
trusted_proxies = 127.0.0.3

[route:deny]
path_prefix = /deny/
strip_prefix = /deny
upstream = app
filters = not_second

[route:breaker_a]
path_prefix = /breaker-a/
strip_prefix = /breaker-a
upstream = app
filters = breaker

[route:breaker_b]
path_prefix = /breaker-b/
strip_prefix = /breaker-b
upstream = app
filters = breaker

[route:breaker_c]
path_prefix = /breaker-c/
strip_prefix = /breaker-c
upstream = app
filters = breaker

[route:breaker_lost]
path_prefix = /breaker-lost/
strip_prefix = /breaker-lost
upstream = app
filters = breaker

[route:breaker_dead]
path_prefix = /breaker-dead/
upstream = dead
filters = breaker

[route:cors]
path_prefix = /cors/
strip_prefix = /cors
upstream = app
filters = browser, ids

[route:cors_refused]
path_prefix = /cors-refused/
strip_prefix = /cors-refused
upstream = app
filters = browser, only_first

[route:ids]
path_prefix = /ids/
strip_prefix = /ids
upstream = app
filters = ids

[route:ids_refused]
path_prefix = /ids-refused/
strip_prefix = /ids-refused
upstream = app
filters = ids, only_first

[upstream:app]
servers = {origin}

[upstream:dead]
servers = 127.0.0.1:{dead_port}

[filter:only_first]
plugin = ip_acl
allow = 127.0.0.1

[filter:not_second]
plugin = ip_acl
allow = 127.0.0.0/8
deny = 127.0.0.2

[filter:breaker]
plugin = circuit_breaker
failure_threshold = 3
open_for = {open_for}

[filter:browser]
plugin = cors
allow_origins = https://app.example.com
    ~^https://[a-z]+\\.example\\.org$
allow_methods = GET, PUT, DELETE
allow_headers = Authorization, Content-Type, X-Custom
expose_headers = X-Request-ID
max_age = 10m

[filter:ids]
plugin = request_id
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """edgeproxy with every policy route of CONFIG, before one origin."""
    directory = tmp_path_factory.mktemp("gateway-policies")
    values = {"open_for": f"{OPEN_FOR:g}s", "dead_port": str(free_port())}
    with running_gateway(directory, CONFIG, **values) as running:
        yield running


@dataclass
class SourcedResponse:
    """What a client bound to a given source address got."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes


def get_from(
    source: str,
    gateway: Gateway,
    target: str,
    headers: Sequence[tuple[str, str]] = (),
) -> SourcedResponse:
    """A GET from a client socket bound to ``source`` (a loopback address)."""
    connection = http.client.HTTPConnection(
        "127.0.0.1", gateway.port, timeout=10, source_address=(source, 0)
    )
    try:
        connection.request("GET", target, headers=dict(headers))
        response = connection.getresponse()
        return SourcedResponse(response.status, response.headers, response.read())
    finally:
        connection.close()


# --- ip_acl -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "target", "status"),
    [
        ("127.0.0.1", "/allow/echo", 200),
        ("127.0.0.2", "/allow/echo", 403),
        ("127.0.0.1", "/deny/echo", 200),
        ("127.0.0.2", "/deny/echo", 403),
        ("127.0.0.3", "/deny/echo", 200),
    ],
)
def test_ip_acl_decides_by_the_client_address(
    gateway: Gateway, source: str, target: str, status: int
) -> None:
    """allow admits only its addresses; deny refuses its own inside an allowed net."""
    before = gateway.origin.received()
    response = get_from(source, gateway, target)
    assert response.status == status, response
    reached = gateway.origin.received() != before
    assert reached == (status == 200)


def test_ip_acl_ignores_forwarding_fields_from_an_untrusted_client(
    gateway: Gateway,
) -> None:
    """127.0.0.2 claiming to forward for 127.0.0.1 is still refused."""
    spoofed = [
        ("X-Forwarded-For", "127.0.0.1"),
        ("X-Real-IP", "127.0.0.1"),
        ("Forwarded", "for=127.0.0.1"),
    ]
    assert get_from("127.0.0.2", gateway, "/allow/echo", spoofed).status == 403


@pytest.mark.parametrize(
    ("source", "forwarded_for", "status"),
    [
        ("127.0.0.3", "127.0.0.1", 200),
        ("127.0.0.3", "127.0.0.2", 403),
        ("127.0.0.3", None, 403),
        ("127.0.0.2", "127.0.0.1", 403),
    ],
)
def test_ip_acl_behind_a_trusted_proxy_checks_the_forwarded_client(
    gateway: Gateway, source: str, forwarded_for: str | None, status: int
) -> None:
    """Behind a trusted proxy the X-Forwarded-For client is checked; others are not."""
    headers = [("X-Forwarded-For", forwarded_for)] if forwarded_for else []
    assert get_from(source, gateway, "/proxied/echo", headers).status == status


# --- circuit_breaker ----------------------------------------------------------------


def trip(gateway: Gateway, route: bytes) -> float:
    """Send the failures that open ``route``'s breaker; when the last was sent."""
    sent = 0.0
    for _ in range(3):
        sent = time.monotonic()
        assert gateway.get(route + b"status/500").status == 500
    return sent


def assert_refused_by_breaker(gateway: Gateway, target: bytes) -> int:
    """``target`` gets the breaker's 503, not reaching the origin; its Retry-After."""
    response = gateway.refused(target)
    assert response.status == 503, response
    retry_after = response.header(b"Retry-After")
    assert retry_after is not None, response
    return int(retry_after)


def wait_until_received(gateway: Gateway, target: str, timeout: float = 5.0) -> None:
    """Wait until the origin has received a request for ``target``."""
    deadline = time.monotonic() + timeout
    while f"GET {target} " not in gateway.origin.received():
        assert time.monotonic() < deadline, f"{target} never reached the origin"
        time.sleep(0.02)


def test_breaker_opens_after_failures_then_closes_after_a_good_probe(
    gateway: Gateway,
) -> None:
    """Three 500s open it (503 + Retry-After); after open_for a good probe closes it."""
    last_failure_sent = trip(gateway, b"/breaker-a/")
    retry_after = assert_refused_by_breaker(gateway, b"/breaker-a/echo")
    assert 1 <= retry_after <= math.ceil(OPEN_FOR)
    # Other routes sharing the filter section keep breakers of their own.
    assert gateway.get(b"/breaker-b/echo").status == 200
    deadline = time.monotonic() + OPEN_FOR + 5
    while (status := gateway.get(b"/breaker-a/echo").status) == 503:
        assert time.monotonic() < deadline, "the breaker never let a probe through"
        time.sleep(0.1)
    assert status == 200
    assert time.monotonic() - last_failure_sent >= OPEN_FOR
    # Closed again: a single failure no longer opens it.
    assert gateway.get(b"/breaker-a/status/500").status == 500
    assert [gateway.get(b"/breaker-a/echo").status for _ in range(3)] == [200] * 3


def test_breaker_failed_probe_opens_it_again(gateway: Gateway) -> None:
    """A probe answered 500 opens the breaker again for a whole open_for."""
    trip(gateway, b"/breaker-b/")
    deadline = time.monotonic() + OPEN_FOR + 5
    while (status := gateway.get(b"/breaker-b/status/500").status) == 503:
        assert time.monotonic() < deadline, "the breaker never let a probe through"
        time.sleep(0.1)
    assert status == 500  # the probe reached the origin, and failed
    retry_after = assert_refused_by_breaker(gateway, b"/breaker-b/echo")
    assert retry_after == math.ceil(OPEN_FOR)


def test_breaker_half_open_lets_one_probe_through_at_a_time(gateway: Gateway) -> None:
    """While a slow probe is out, others get 503 Retry-After: 1; its 200 closes."""
    last_failure_sent = trip(gateway, b"/breaker-c/")
    time.sleep(max(0.0, last_failure_sent + OPEN_FOR + 0.3 - time.monotonic()))
    with ClientConnection(gateway.port) as probe:
        probe.send(request_bytes(b"GET", b"/breaker-c/slow-head/2"))
        wait_until_received(gateway, "/slow-head/2")
        assert assert_refused_by_breaker(gateway, b"/breaker-c/echo") == 1
        assert probe.read_response().status == 200
    assert gateway.get(b"/breaker-c/echo").status == 200


def test_breaker_lost_probe_frees_its_place_after_open_for(gateway: Gateway) -> None:
    """A probe whose client went away blocks others for open_for at most."""
    last_failure_sent = trip(gateway, b"/breaker-lost/")
    time.sleep(max(0.0, last_failure_sent + OPEN_FOR + 0.3 - time.monotonic()))
    with ClientConnection(gateway.port) as probe:
        probe.send(request_bytes(b"GET", b"/breaker-lost/slow-head/3"))
        wait_until_received(gateway, "/slow-head/3")
        lost_at = time.monotonic()
    assert assert_refused_by_breaker(gateway, b"/breaker-lost/echo") == 1
    deadline = lost_at + OPEN_FOR + 5
    while (status := gateway.get(b"/breaker-lost/echo").status) == 503:
        assert time.monotonic() < deadline, "the lost probe kept the breaker half-open"
        time.sleep(0.1)
    assert status == 200
    assert gateway.get(b"/breaker-lost/echo").status == 200


def test_breaker_counts_the_gateways_own_502s(gateway: Gateway) -> None:
    """Failures to reach the upstream (502/503 made here) open the breaker too."""
    for _ in range(3):
        response = gateway.get(b"/breaker-dead/x")
        assert response.status in (502, 503), response
        assert response.header(b"Retry-After") is None, response
    response = gateway.get(b"/breaker-dead/x")
    assert response.status == 503, response
    assert response.header(b"Retry-After") is not None, response
    assert b"circuit breaker" in response.body


# --- cors ---------------------------------------------------------------------------


def preflight(
    origin: bytes, method: bytes, headers: bytes | None = None
) -> list[tuple[bytes, bytes]]:
    """The fields of a CORS preflight."""
    fields = [(b"Origin", origin), (b"Access-Control-Request-Method", method)]
    if headers is not None:
        fields.append((b"Access-Control-Request-Headers", headers))
    return fields


def options(gateway: Gateway, fields: Sequence[tuple[bytes, bytes]]) -> Response:
    """An OPTIONS /cors/items that must not reach the origin."""
    before = gateway.origin.received()
    with ClientConnection(gateway.port) as connection:
        connection.send(request_bytes(b"OPTIONS", b"/cors/items", headers=fields))
        response = connection.read_response(b"OPTIONS")
    assert gateway.origin.received() == before, "a preflight went upstream"
    return response


def vary(response: Response) -> set[bytes]:
    """The field names of every ``Vary`` of ``response``, lower case."""
    return {
        item.strip().lower()
        for value in response.values(b"Vary")
        for item in value.split(b",")
    }


@pytest.mark.parametrize(
    "origin", [APP_ORIGIN, b"https://shop.example.org"], ids=["listed", "pattern"]
)
def test_cors_preflight_allowed_gets_204_with_the_allow_fields(
    gateway: Gateway, origin: bytes
) -> None:
    """An allowed preflight is answered 204 here, with the Access-Control-Allow-*."""
    fields = preflight(origin, b"PUT", b"content-type, x-custom")
    response = options(gateway, fields)
    assert response.status == 204, response
    assert response.header(b"Access-Control-Allow-Origin") == origin
    assert response.header(b"Access-Control-Allow-Methods") == b"GET, PUT, DELETE"
    assert (
        response.header(b"Access-Control-Allow-Headers")
        == b"Authorization, Content-Type, X-Custom"
    )
    assert response.header(b"Access-Control-Max-Age") == b"600"
    assert response.header(b"Access-Control-Allow-Credentials") is None
    assert b"origin" in vary(response)
    assert response.body == b""


@pytest.mark.parametrize(
    "fields",
    [
        preflight(b"https://evil.example", b"PUT"),
        preflight(b"https://app.example.com.evil.example", b"GET"),
        preflight(b"https://shop.example.org.evil", b"GET"),
        preflight(APP_ORIGIN, b"PATCH"),
        preflight(APP_ORIGIN, b"PUT", b"x-not-allowed"),
    ],
    ids=["origin", "origin-suffix", "pattern-suffix", "method", "header"],
)
def test_cors_preflight_refused_gets_403_without_cors_fields(
    gateway: Gateway, fields: list[tuple[bytes, bytes]]
) -> None:
    """A preflight for a disallowed origin, method or header: 403, no ACAO."""
    response = options(gateway, fields)
    assert response.status == 403, response
    assert not any(name.startswith(b"access-control-") for name in response.names())


def test_cors_actual_request_from_an_allowed_origin_is_marked(
    gateway: Gateway,
) -> None:
    """An allowed origin's GET reaches the origin and comes back with ACAO and Vary."""
    response = gateway.get(b"/cors/echo", [(b"Origin", APP_ORIGIN)])
    assert upstream_saw(response, "Origin") == [APP_ORIGIN.decode()]
    assert response.header(b"Access-Control-Allow-Origin") == APP_ORIGIN
    assert response.header(b"Access-Control-Expose-Headers") == b"X-Request-ID"
    assert b"origin" in vary(response)


@pytest.mark.parametrize(
    "headers",
    [[(b"Origin", b"https://evil.example")], []],
    ids=["disallowed-origin", "no-origin"],
)
def test_cors_actual_request_from_other_origins_is_not_marked(
    gateway: Gateway, headers: list[tuple[bytes, bytes]]
) -> None:
    """A disallowed or absent Origin: no CORS fields in the answer, but Vary: Origin."""
    response = gateway.get(b"/cors/echo", headers)
    assert response.status == 200, response
    assert not any(name.startswith(b"access-control-") for name in response.names())
    assert b"origin" in vary(response)


def test_cors_fields_on_a_later_filters_local_refusal(gateway: Gateway) -> None:
    """A 403 from a filter after cors still carries ACAO, so the browser can read it."""
    headers = [("Origin", APP_ORIGIN.decode())]
    response = get_from("127.0.0.2", gateway, "/cors-refused/echo", headers)
    assert response.status == 403
    assert response.headers.get("Access-Control-Allow-Origin") == APP_ORIGIN.decode()
    varies = ",".join(response.headers.get_all("Vary") or []).split(",")
    assert "origin" in {name.strip().lower() for name in varies}


# --- request_id -----------------------------------------------------------------------


def test_request_id_is_generated_when_absent_and_seen_both_ways(
    gateway: Gateway,
) -> None:
    """No X-Request-ID: a fresh 32-hex one goes upstream and back, new per request."""
    identities = []
    for _ in range(2):
        response = gateway.get(b"/ids/echo")
        identity = response.header(b"X-Request-ID")
        assert identity is not None and GENERATED_ID.fullmatch(identity), response
        assert upstream_saw(response, "X-Request-ID") == [identity.decode()]
        identities.append(identity)
    assert identities[0] != identities[1]


def test_request_id_valid_incoming_is_kept(gateway: Gateway) -> None:
    """A valid incoming X-Request-ID goes upstream and back unchanged."""
    sent = b"req-2024.06.01_abc:42"
    response = gateway.get(b"/ids/echo", [(b"X-Request-ID", sent)])
    assert response.header(b"X-Request-ID") == sent
    assert upstream_saw(response, "X-Request-ID") == [sent.decode()]


@pytest.mark.parametrize(
    "sent",
    [[b"x" * 201], [b"first", b"second"], [b"has space"]],
    ids=["too-long", "repeated", "space"],
)
def test_request_id_invalid_incoming_is_replaced(
    gateway: Gateway, sent: list[bytes]
) -> None:
    """An invalid or repeated X-Request-ID is replaced by one fresh identity."""
    response = gateway.get(b"/ids/echo", [(b"X-Request-ID", v) for v in sent])
    identity = response.header(b"X-Request-ID")
    assert identity is not None and GENERATED_ID.fullmatch(identity), response
    assert upstream_saw(response, "X-Request-ID") == [identity.decode()]


def test_request_id_on_a_local_refusal(gateway: Gateway) -> None:
    """A later filter's local 403 still carries the request's X-Request-ID."""
    response = get_from("127.0.0.2", gateway, "/ids-refused/echo")
    assert response.status == 403
    identity = response.headers.get("X-Request-ID")
    assert identity is not None and GENERATED_ID.fullmatch(identity.encode())
