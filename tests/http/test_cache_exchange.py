"""
Tests for edgeproxy.http.cache_exchange: the shared cache on the proxy's data path.

Raw client bytes go into a real HTTPServerProtocol and a ProxyRequestHandler
over a snapshot with a ``[cache:pages]`` on the ``site`` route; upstream
connects go to a MemoryReactorClock (the fakes of tests/http/test_proxy.py).
The clock starts at 0 and moves only when a test advances it, so ages and
freshness are exact.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from twisted.internet.error import ConnectionRefusedError

from edgeproxy.cache.memory import MemoryCacheStore, MemoryReader, MemoryWriter
from edgeproxy.http.server import HTTPServerProtocol
from edgeproxy.http.shared_cache import SharedCache
from tests.http.test_proxy import (
    A,
    Client,
    ProxyHarness,
    Upstream,
    body_of,
    headers_of,
    status_of,
)

CONFIG = """
[listener:web]
protocol = http
endpoint = tcp:8080
routes = plain, site

[route:plain]
path_prefix = /plain/
upstream = users

[route:site]
path_prefix = /
upstream = users
cache = pages
filters = {filters}

[upstream:users]
servers = 10.0.0.1:9001, 10.0.0.2:9001
{upstream}

[cache:pages]
purge_from = 192.0.2.0/24
{cache}
"""

FILTER = """
[filter:{name}]
plugin = recorder
label = {name}
{options}
"""

PAGE = b"GET /page HTTP/1.1\r\nHost: www.example.com\r\n\r\n"


def cached_proxy(
    cache: str = "",
    upstream: str = "",
    filters: dict[str, str] | None = None,
) -> CachedProxy:
    """A proxy whose ``site`` route caches in ``[cache:pages]``."""
    filters = filters or {}
    text = CONFIG.format(filters=", ".join(filters), upstream=upstream, cache=cache)
    for name, options in filters.items():
        text += FILTER.format(name=name, options=options)
    return CachedProxy(text)


class CachedProxy(ProxyHarness):
    """The proxy harness, with every upstream connection accepted once, in order."""

    def __init__(self, config: str) -> None:
        super().__init__(config)
        self.accepted: list[Upstream] = []

    def origin(self, index: int = -1) -> Upstream:
        """Upstream connection ``index``, accepting every connect made so far."""
        while len(self.accepted) < len(self.upstreams.connects()):
            self.accepted.append(self.upstreams.accept(len(self.accepted)))
        return self.accepted[index]

    def requests_seen(self) -> int:
        """How many requests the upstream servers received, over all connections."""
        self.origin() if self.upstreams.connects() else None
        return sum(u.received().count(b" HTTP/1.1\r\n") for u in self.accepted)

    @property
    def cache(self) -> SharedCache:
        """The ``[cache:pages]`` at run time."""
        return self.holder.current.caches["pages"]


def response(
    body: bytes = b"hello",
    fields: Iterable[bytes] = (b"Cache-Control: max-age=60",),
    status: bytes = b"200 OK",
) -> bytes:
    """An upstream response with a Content-Length body."""
    lines = [b"HTTP/1.1 " + status, *fields, b"Content-Length: %d" % len(body)]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def get(
    proxy: CachedProxy,
    target: bytes = b"/page",
    fields: Iterable[bytes] = (),
    method: bytes = b"GET",
    host: str = "192.0.2.7",
) -> Client:
    """A new client that sent one request."""
    client = proxy.client(host=host)
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: www.example.com", *fields]
    client.send(b"\r\n".join(lines) + b"\r\n\r\n")
    return client


def server_side(client: Client) -> HTTPServerProtocol:
    """The proxy's protocol on ``client``'s connection."""
    assert isinstance(client.protocol, HTTPServerProtocol)
    return client.protocol


def cache_status(answer: bytes) -> bytes | None:
    """The Cache-Status of a response's bytes."""
    return headers_of(answer).get(b"Cache-Status")


def last_request(upstream: Upstream) -> bytes:
    """The head of the last (bodiless) request an upstream connection received."""
    return upstream.received().split(b"\r\n\r\n")[-2]


def stored(proxy: CachedProxy, body: bytes = b"hello", **kwargs: Any) -> bytes:
    """Fill the cache with /page, answered by ``response(body, ...)``."""
    client = get(proxy)
    proxy.origin().respond(response(body, **kwargs))
    return client.take()


@pytest.fixture
def proxy() -> CachedProxy:
    """A proxy with a memory cache on the site route."""
    return cached_proxy()


# --- miss, store, hit -----------------------------------------------------------------


def test_miss_is_stored_and_then_served_without_the_upstream(
    proxy: CachedProxy,
) -> None:
    """A cacheable answer is stored; the next request is a hit with Age."""
    first = stored(proxy)
    assert status_of(first) == 200
    assert body_of(first) == b"hello"
    assert (
        cache_status(first)
        == b"edgeproxy; fwd=uri-miss; fwd-status=200; stored; ttl=60"
    )
    assert headers_of(first).get(b"Age") == b"0"
    proxy.reactor.advance(10)
    second = get(proxy).take()
    assert status_of(second) == 200
    assert body_of(second) == b"hello"
    assert headers_of(second).get(b"Age") == b"10"
    assert cache_status(second) == b"edgeproxy; hit; ttl=50"
    assert proxy.requests_seen() == 1
    stats = proxy.cache.stats()
    assert (stats["hits"], stats["misses"], stats["entries"]) == (1, 1, 1)


def test_uncacheable_answer_is_not_stored(proxy: CachedProxy) -> None:
    """``no-store`` is relayed as it is, with the refusal in Cache-Status."""
    answer = stored(proxy, fields=[b"Cache-Control: no-store"])
    assert body_of(answer) == b"hello"
    assert (
        cache_status(answer)
        == b"edgeproxy; fwd=uri-miss; fwd-status=200; detail=no-store"
    )
    get(proxy)
    assert proxy.requests_seen() == 2


def test_route_without_cache_adds_no_cache_status(proxy: CachedProxy) -> None:
    """Routes without ``cache`` are untouched by the cache."""
    client = get(proxy, b"/plain/x")
    proxy.origin().respond(response())
    assert cache_status(client.take()) is None
    get(proxy, b"/plain/x")
    assert proxy.requests_seen() == 2


def test_request_filters_run_before_the_cache_and_response_filters_after() -> None:
    """Request hooks run before the lookup; response hooks run on hits too."""
    proxy = cached_proxy(filters={"seen": "", "gate": ""})
    stored(proxy)
    hit = get(proxy).take()
    assert headers_of(hit).get_all(b"X-Seen") == [b"gate", b"seen"]
    assert cache_status(hit) == b"edgeproxy; hit; ttl=60"
    assert proxy.journal[-4:] == [
        "request seen",
        "request gate",
        "response gate",
        "response seen",
    ]


def test_stored_response_carries_no_per_request_fields() -> None:
    """Fields a filter adds for one client are not served to the next from the store."""
    proxy = cached_proxy(filters={"sticky": "cookie = s=1"})
    assert headers_of(stored(proxy)).get_all(b"Set-Cookie") == [b"s=1"]
    entry = proxy.cache.store.variants(b"http://www.example.com/page")[0]
    assert b"set-cookie" not in entry.headers
    assert b"x-seen" not in entry.headers


def test_refusing_filter_applies_to_stored_content() -> None:
    """Authentication applies to hits: a filter's 401 answers even when stored."""
    proxy = cached_proxy(filters={"auth": "answer = 401"})
    client = get(proxy)
    assert status_of(client.take()) == 401
    assert proxy.upstreams.connects() == []


def test_vary_keeps_one_variant_per_request_field_value(proxy: CachedProxy) -> None:
    """``Vary: Accept-Encoding`` stores a variant per value and serves each its own."""
    vary = [b"Cache-Control: max-age=60", b"Vary: Accept-Encoding"]
    gzip, br = b"Accept-Encoding: gzip", b"Accept-Encoding: br"
    client = get(proxy, fields=[gzip])
    proxy.origin().respond(response(b"gz", vary))
    assert body_of(client.take()) == b"gz"
    client = get(proxy, fields=[br])
    assert proxy.requests_seen() == 2
    proxy.origin().respond(response(b"br", vary))
    answer = client.take()
    assert body_of(answer) == b"br"
    assert cache_status(answer).startswith(b"edgeproxy; fwd=vary-miss")  # type: ignore[union-attr]
    assert body_of(get(proxy, fields=[gzip]).take()) == b"gz"
    assert body_of(get(proxy, fields=[br]).take()) == b"br"
    assert proxy.requests_seen() == 2


def test_head_is_answered_from_a_stored_get(proxy: CachedProxy) -> None:
    """HEAD gets the stored GET's head and length, no body, nothing upstream."""
    stored(proxy, b"0123456789")
    answer = get(proxy, method=b"HEAD").take()
    assert status_of(answer) == 200
    assert headers_of(answer).get(b"Content-Length") == b"10"
    assert body_of(answer) == b""
    assert cache_status(answer) == b"edgeproxy; hit; ttl=60"
    assert proxy.requests_seen() == 1


def test_clients_own_validators_get_a_304_from_the_store(proxy: CachedProxy) -> None:
    """A client's If-None-Match matching the stored ETag gets 304 without a body."""
    stored(proxy, fields=[b"Cache-Control: max-age=60", b'ETag: "v1"'])
    answer = get(proxy, fields=[b'If-None-Match: "v1"']).take()
    assert status_of(answer) == 304
    assert body_of(answer) == b""
    assert proxy.requests_seen() == 1


def test_clients_validators_are_not_sent_upstream_on_a_miss(proxy: CachedProxy) -> None:
    """On a miss the full response is fetched and stored; the client gets its 304."""
    client = get(proxy, fields=[b'If-None-Match: "v1"'])
    upstream = proxy.origin()
    assert b"If-None-Match" not in upstream.received()
    upstream.respond(response(fields=[b"Cache-Control: max-age=60", b'ETag: "v1"']))
    assert status_of(client.take()) == 304
    assert body_of(get(proxy).take()) == b"hello"
    assert proxy.requests_seen() == 1


@pytest.mark.parametrize(
    ("range_field", "status", "content_range", "body"),
    [
        pytest.param(b"bytes=2-5", 206, b"bytes 2-5/10", b"2345", id="first-last"),
        pytest.param(b"bytes=7-", 206, b"bytes 7-9/10", b"789", id="open"),
        pytest.param(b"bytes=-3", 206, b"bytes 7-9/10", b"789", id="suffix"),
        pytest.param(b"bytes=8-50", 206, b"bytes 8-9/10", b"89", id="past-end"),
        pytest.param(b"bytes=10-12", 416, b"bytes */10", b"", id="unsatisfiable"),
    ],
)
def test_range_of_a_stored_response_is_answered_from_the_cache(
    proxy: CachedProxy,
    range_field: bytes,
    status: int,
    content_range: bytes,
    body: bytes,
) -> None:
    """A single byte range of a fresh stored 200 gets 206 (or 416) from the store."""
    stored(proxy, b"0123456789")
    answer = get(proxy, fields=[b"Range: " + range_field]).take()
    assert status_of(answer) == status
    assert headers_of(answer).get(b"Content-Range") == content_range
    assert body_of(answer) == body
    assert proxy.requests_seen() == 1


def test_range_on_a_miss_is_forwarded_as_it_is(proxy: CachedProxy) -> None:
    """Without a stored response a Range request goes upstream with its Range."""
    client = get(proxy, fields=[b"Range: bytes=0-1"])
    upstream = proxy.origin()
    assert b"Range: bytes=0-1" in upstream.received()
    upstream.respond(response(b"01", status=b"206 Partial Content"))
    assert status_of(client.take()) == 206
    assert proxy.cache.stats()["entries"] == 0


def test_body_over_max_object_size_passes_through_uncached() -> None:
    """A response larger than max_object_size reaches the client whole, unstored."""
    proxy = cached_proxy(cache="max_object_size = 8")
    big = b"x" * 20
    answer = stored(proxy, big)
    assert body_of(answer) == big
    assert b"stored" not in (cache_status(answer) or b"")
    get(proxy)
    assert proxy.requests_seen() == 2


def test_chunked_body_growing_past_max_object_size_is_relayed_whole() -> None:
    """A chunked body that outgrows max_object_size mid-way still reaches the client."""
    proxy = cached_proxy(cache="max_object_size = 8")
    client = get(proxy)
    upstream = proxy.origin()
    upstream.respond(
        b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n"
    )
    upstream.respond(b"6\r\nghijkl\r\n0\r\n\r\n")
    answer = client.take()
    assert answer.endswith(b"6\r\nabcdef\r\n6\r\nghijkl\r\n0\r\n\r\n")
    assert proxy.cache.stats()["entries"] == 0


# --- stale responses ------------------------------------------------------------------

VALIDATED = [b"Cache-Control: max-age=1", b'ETag: "v1"']


def test_stale_response_is_revalidated_and_a_304_freshens_it(
    proxy: CachedProxy,
) -> None:
    """A 304 updates the stored head (and freshness); the stored body answers."""
    stored(proxy, fields=VALIDATED)
    proxy.reactor.advance(5)
    client = get(proxy)
    upstream = proxy.origin()
    assert b'If-None-Match: "v1"\r\n' in last_request(upstream)
    upstream.respond(
        b'HTTP/1.1 304 Not Modified\r\nCache-Control: max-age=100\r\nETag: "v1"\r\n'
        b"X-New: 1\r\n\r\n"
    )
    answer = client.take()
    assert status_of(answer) == 200
    assert body_of(answer) == b"hello"
    assert headers_of(answer).get(b"X-New") == b"1"
    assert (
        cache_status(answer) == b"edgeproxy; fwd=stale; fwd-status=304; stored; ttl=100"
    )
    proxy.reactor.advance(50)
    hit = get(proxy).take()
    assert cache_status(hit) == b"edgeproxy; hit; ttl=50"
    assert headers_of(hit).get(b"X-New") == b"1"
    assert headers_of(hit).get(b"Cache-Control") == b"max-age=100"
    assert proxy.requests_seen() == 2
    assert proxy.cache.stats()["revalidated_304"] == 1


def test_revalidation_answered_200_replaces_the_stored_response(
    proxy: CachedProxy,
) -> None:
    """A full answer to a revalidation is relayed and replaces the stored one."""
    stored(proxy, fields=VALIDATED)
    proxy.reactor.advance(5)
    client = get(proxy)
    proxy.origin().respond(
        response(b"new", [b"Cache-Control: max-age=60", b'ETag: "v2"'])
    )
    answer = client.take()
    assert body_of(answer) == b"new"
    assert (
        cache_status(answer) == b"edgeproxy; fwd=stale; fwd-status=200; stored; ttl=60"
    )
    assert body_of(get(proxy).take()) == b"new"
    assert proxy.requests_seen() == 2
    assert proxy.cache.stats()["revalidated_200"] == 1


def test_stale_while_revalidate_answers_at_once_and_revalidates_once(
    proxy: CachedProxy,
) -> None:
    """Within stale-while-revalidate: stale answers now, one background revalidation."""
    stored(
        proxy,
        fields=[b"Cache-Control: max-age=1, stale-while-revalidate=60", b'ETag: "v1"'],
    )
    proxy.reactor.advance(5)
    first, second = get(proxy).take(), get(proxy).take()
    for answer in (first, second):
        assert body_of(answer) == b"hello"
        assert cache_status(answer) == (
            b"edgeproxy; hit; ttl=-4; detail=stale-while-revalidate"
        )
    assert proxy.requests_seen() == 2
    revalidation = last_request(proxy.origin())
    assert revalidation.startswith(b"GET /page HTTP/1.1\r\n")
    assert b'If-None-Match: "v1"' in revalidation
    proxy.origin().respond(
        b'HTTP/1.1 304 Not Modified\r\nCache-Control: max-age=30\r\nETag: "v1"\r\n\r\n'
    )
    fresh = get(proxy).take()
    assert cache_status(fresh) == b"edgeproxy; hit; ttl=30"
    assert proxy.requests_seen() == 2
    assert proxy.cache.stats()["stale_served"] == 2


def test_background_revalidation_answered_200_stores_the_new_body(
    proxy: CachedProxy,
) -> None:
    """A background revalidation's full answer goes into the store, not to a client."""
    stored(proxy, fields=[b"Cache-Control: max-age=1, stale-while-revalidate=60"])
    proxy.reactor.advance(5)
    assert body_of(get(proxy).take()) == b"hello"
    proxy.origin().respond(response(b"newer"))
    assert body_of(get(proxy).take()) == b"newer"
    assert proxy.requests_seen() == 2


def test_failed_background_revalidation_lets_the_next_one_start() -> None:
    """A background revalidation that fails frees its slot for a later one."""
    proxy = cached_proxy(upstream="max_fails = 0\nretries = 0")
    stored(
        proxy,
        fields=[
            b"Cache-Control: max-age=1, stale-while-revalidate=60",
            b"Connection: close",
        ],
    )
    proxy.reactor.advance(5)
    assert body_of(get(proxy).take()) == b"hello"
    assert len(proxy.upstreams.connects()) == 2
    proxy.upstreams.refuse(1)
    assert body_of(get(proxy).take()) == b"hello"
    assert len(proxy.upstreams.connects()) == 3


@pytest.mark.parametrize(
    ("cache", "fields"),
    [
        pytest.param(
            "", [b"Cache-Control: max-age=1, stale-if-error=60"], id="directive"
        ),
        pytest.param("stale_if_error = 1m", [b"Cache-Control: max-age=1"], id="config"),
    ],
)
def test_stale_if_error_answers_when_the_origin_is_down(
    cache: str, fields: list[bytes]
) -> None:
    """Every server refusing: the stale response answers within stale-if-error."""
    proxy = cached_proxy(cache=cache, upstream="max_fails = 0")
    stored(proxy, fields=[*fields, b'ETag: "v1"', b"Connection: close"])
    proxy.reactor.advance(5)
    client = get(proxy)
    proxy.upstreams.refuse(1)
    proxy.upstreams.refuse(2)
    answer = client.take()
    assert status_of(answer) == 200
    assert body_of(answer) == b"hello"
    assert (
        cache_status(answer) == b"edgeproxy; fwd=stale; ttl=-4; detail=stale-if-error"
    )


def test_stale_if_error_answers_an_upstream_503(proxy: CachedProxy) -> None:
    """A 503 from the origin is replaced by the stale response within stale-if-error."""
    stored(proxy, fields=[b"Cache-Control: max-age=1, stale-if-error=60"])
    proxy.reactor.advance(5)
    client = get(proxy)
    proxy.origin().respond(response(b"down", [], b"503 Service Unavailable"))
    answer = client.take()
    assert (status_of(answer), body_of(answer)) == (200, b"hello")
    assert b"fwd-status=503" in (cache_status(answer) or b"")


def test_without_stale_if_error_the_origins_failure_is_the_answer() -> None:
    """Past its freshness and without stale-if-error, a failure is a 502."""
    proxy = cached_proxy(upstream="max_fails = 0")
    stored(proxy, fields=[*VALIDATED, b"Connection: close"])
    proxy.reactor.advance(5)
    client = get(proxy)
    proxy.upstreams.refuse(1, ConnectionRefusedError())
    proxy.upstreams.refuse(2, ConnectionRefusedError())
    assert status_of(client.take()) == 502


def test_only_if_cached_without_a_stored_response_is_504(proxy: CachedProxy) -> None:
    """``only-if-cached`` with nothing stored gets 504 and nothing goes upstream."""
    answer = get(proxy, fields=[b"Cache-Control: only-if-cached"]).take()
    assert status_of(answer) == 504
    assert cache_status(answer) == b"edgeproxy; detail=only-if-cached"
    assert proxy.upstreams.connects() == []


# --- single flight --------------------------------------------------------------------


def test_concurrent_misses_wait_for_one_fetch(proxy: CachedProxy) -> None:
    """N concurrent misses send one request upstream; all get the stored answer."""
    clients = [get(proxy) for _ in range(5)]
    assert len(proxy.upstreams.connects()) == 1
    proxy.origin().respond(response(b"shared"))
    answers = [client.take() for client in clients]
    assert [body_of(answer) for answer in answers] == [b"shared"] * 5
    assert cache_status(answers[0]).startswith(b"edgeproxy; fwd=uri-miss")  # type: ignore[union-attr]
    assert {cache_status(answer) for answer in answers[1:]} == {
        b"edgeproxy; hit; collapsed; ttl=60"
    }
    assert proxy.requests_seen() == 1
    assert proxy.cache.stats()["coalesced_waits"] == 4


def test_not_storable_answer_sends_the_waiters_to_the_origin(
    proxy: CachedProxy,
) -> None:
    """When the fetch is not storable, each waiter goes upstream itself."""
    clients = [get(proxy) for _ in range(3)]
    proxy.origin(0).respond(response(b"mine", [b"Cache-Control: private"]))
    assert proxy.requests_seen() == 3
    for index in (1, 2):
        proxy.origin(index).respond(response(b"yours", [b"Cache-Control: private"]))
    assert [body_of(client.take()) for client in clients] == [
        b"mine",
        b"yours",
        b"yours",
    ]


def test_waiter_goes_upstream_after_the_first_byte_timeout() -> None:
    """A waiter waits at most first_byte_timeout for the fetch in flight."""
    proxy = cached_proxy(upstream="first_byte_timeout = 5s")
    leader = get(proxy)
    upstream = proxy.origin()
    upstream.respond(
        b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n"
        b"Content-Length: 10\r\n\r\nslow"
    )
    waiter = get(proxy)
    proxy.reactor.advance(4.9)
    assert proxy.requests_seen() == 1
    proxy.reactor.advance(0.1)
    assert proxy.requests_seen() == 2
    proxy.origin().respond(response(b"direct"))
    assert body_of(waiter.take()) == b"direct"
    upstream.respond(b"-body")
    assert body_of(leader.take()) == b"slow-body"


def test_waiter_that_leaves_is_forgotten(proxy: CachedProxy) -> None:
    """A client gone while it waits is not answered; the others still are."""
    get(proxy)
    gone, staying = get(proxy), get(proxy)
    gone.leave()
    proxy.origin().respond(response())
    assert body_of(staying.take()) == b"hello"
    assert gone.take() == b""


def test_leader_leaving_before_the_answer_still_fills_the_cache(
    proxy: CachedProxy,
) -> None:
    """The fetching client leaving does not cancel the fetch others may need."""
    leader = get(proxy)
    waiter = get(proxy)
    leader.leave()
    upstream = proxy.origin()
    assert not upstream.closing
    upstream.respond(response(b"filled"))
    assert body_of(waiter.take()) == b"filled"
    assert body_of(get(proxy).take()) == b"filled"
    assert proxy.requests_seen() == 1


def test_kept_fetch_is_accounted_to_the_pool_once() -> None:
    """A fetch that outlives its client still starts and finishes once on its server."""
    proxy = cached_proxy(upstream="balance = ledger")
    leader = get(proxy)
    get(proxy)
    leader.leave()
    proxy.origin().respond(response())
    assert proxy.ledger_events == [("started", A), ("finished", A, "ok")]
    assert [server.active for server in proxy.pool.servers] == [0, 0]


def test_head_waits_for_a_get_fill_and_is_answered_from_it(
    proxy: CachedProxy,
) -> None:
    """A HEAD missing while a GET fetch is in flight waits and gets its head."""
    fetching = get(proxy)
    head = get(proxy, method=b"HEAD")
    proxy.origin().respond(response(b"12345"))
    assert body_of(fetching.take()) == b"12345"
    answer = head.take()
    assert headers_of(answer).get(b"Content-Length") == b"5"
    assert body_of(answer) == b""
    assert proxy.requests_seen() == 1


def test_fill_given_up_after_the_client_left_drops_the_upstream() -> None:
    """No client and no room in the store: the rest of the body is not read."""
    proxy = cached_proxy(cache="max_object_size = 8")
    client = get(proxy)
    upstream = proxy.origin()
    upstream.respond(
        b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n"
    )
    client.leave()
    assert not upstream.closing
    upstream.respond(b"8\r\nefghijkl\r\n")
    assert upstream.transport.disconnected
    assert proxy.cache.stats()["entries"] == 0
    assert [server.active for server in proxy.pool.servers] == [0, 0]


def test_client_leaving_mid_body_does_not_stop_the_fill(proxy: CachedProxy) -> None:
    """The client gone mid-body: the rest still goes into the store."""
    client = get(proxy)
    upstream = proxy.origin()
    upstream.respond(
        b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 10\r\n\r\nabc"
    )
    client.leave()
    assert not upstream.closing
    upstream.respond(b"defghij")
    assert body_of(get(proxy).take()) == b"abcdefghij"
    assert proxy.requests_seen() == 1


def test_paused_client_pauses_the_fill_and_its_upstream(proxy: CachedProxy) -> None:
    """While the client's socket is full the upstream is not read; then both go on."""
    client = get(proxy)
    upstream = proxy.origin()
    server_side(client).pauseProducing()
    upstream.respond(
        b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 6\r\n\r\nabc"
    )
    assert upstream.transport.producerState == "paused"
    server_side(client).resumeProducing()
    assert upstream.transport.producerState == "producing"
    upstream.respond(b"def")
    assert body_of(client.take()) == b"abcdef"
    assert body_of(get(proxy).take()) == b"abcdef"


def test_hit_body_follows_the_clients_pace(proxy: CachedProxy) -> None:
    """A stored body is read from the store only while the client's socket takes it."""
    store = proxy.cache.store
    assert isinstance(store, MemoryCacheStore)
    body = bytes(range(256)) * 1024  # 4 pieces of the store's 64 KiB
    stored(proxy, body)
    client = proxy.client()
    server_side(client).pauseProducing()
    client.send(PAGE)
    assert len(body_of(client.take())) == 0
    server_side(client).resumeProducing()
    assert client.take() == body


# --- the store failing ----------------------------------------------------------------


class BrokenWriter(MemoryWriter):
    """A writer whose disk fails at the first write."""

    def write(self, data: bytes) -> bool:
        """Fail as a full disk would."""
        raise OSError("disk on fire")


class BrokenStore(MemoryCacheStore):
    """A memory store whose writers all fail."""

    writer_type = BrokenWriter


def test_store_failure_never_breaks_the_clients_answer(
    proxy: CachedProxy, logged: Any
) -> None:
    """A writer that raises abandons the entry; the client still gets it all."""
    proxy.cache.store = BrokenStore(10**6, 10**5)
    answer = stored(proxy, b"intact")
    assert body_of(answer) == b"intact"
    assert len(logged.failures()) == 1
    get(proxy)
    assert proxy.requests_seen() == 2


class VanishingStore(MemoryCacheStore):
    """A memory store whose bodies are gone when read (a deleted disk file)."""

    def open_reader(self, key: bytes, variant: bytes) -> MemoryReader | None:
        """No body, ever."""
        return None


def test_entry_whose_body_is_gone_is_fetched_again(proxy: CachedProxy) -> None:
    """Metadata without a body reads as a miss."""
    proxy.cache.store = VanishingStore(10**6, 10**5)
    stored(proxy)
    client = get(proxy)
    proxy.origin().respond(response(b"again"))
    answer = client.take()
    assert body_of(answer) == b"again"
    assert cache_status(answer).startswith(b"edgeproxy; fwd=miss")  # type: ignore[union-attr]


# --- invalidation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "status", "invalidated"),
    [
        pytest.param(b"POST", b"200 OK", True, id="POST 200"),
        pytest.param(b"DELETE", b"204 No Content", True, id="DELETE 204"),
        pytest.param(b"POST", b"500 Oops", False, id="POST 500"),
        pytest.param(b"OPTIONS", b"200 OK", False, id="OPTIONS"),
    ],
)
def test_unsafe_method_answered_with_success_invalidates(
    proxy: CachedProxy, method: bytes, status: bytes, invalidated: bool
) -> None:
    """A 2xx/3xx to an unsafe method removes the stored URL; safe ones do not."""
    stored(proxy)
    client = get(proxy, method=method)
    proxy.origin().respond(response(b"", [], status))
    client.take()
    get(proxy)
    assert proxy.requests_seen() == (3 if invalidated else 2)


def test_location_of_the_same_origin_is_invalidated_too(proxy: CachedProxy) -> None:
    """A POST answer's Location (same origin) is invalidated with the target."""
    stored(proxy)
    client = get(proxy, b"/form", method=b"POST")
    proxy.origin().respond(
        response(b"", [b"Location: http://www.example.com/page"], b"303 See Other")
    )
    client.take()
    get(proxy)
    assert proxy.requests_seen() == 3
