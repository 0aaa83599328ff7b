"""Tests for edgeproxy.filters.jwks: JWK Sets fetched from a URL and refreshed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import pytest
import pytest_twisted
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogEvent, globalLogPublisher
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from edgeproxy.filters.jwks import KeysUnavailable, RemoteKeySet, http_fetch
from edgeproxy.testing import resolve
from tests.filters.jwk_samples import ALLOWED, document, ec_jwk, rsa_jwk

# --- RemoteKeySet ---------------------------------------------------------------


class FakeFetch:
    """A fetch whose answers the test gives, one Deferred per call."""

    def __init__(self) -> None:
        self.pending: list[Deferred[bytes]] = []

    def __call__(self) -> Deferred[bytes]:
        fetched: Deferred[bytes] = Deferred()
        self.pending.append(fetched)
        return fetched

    @property
    def calls(self) -> int:
        """How many fetches were started."""
        return len(self.pending)

    def answer(self, body: bytes) -> None:
        """Answer the latest fetch with ``body``."""
        self.pending[-1].callback(body)

    def fail(self, reason: Exception) -> None:
        """Fail the latest fetch."""
        self.pending[-1].errback(reason)


@pytest.fixture
def fetch() -> FakeFetch:
    """A fake fetch."""
    return FakeFetch()


@pytest.fixture
def clock() -> MemoryReactorClock:
    """A clock at 1000 seconds."""
    clock = MemoryReactorClock()
    clock.advance(1000)
    return clock


@pytest.fixture
def warnings() -> Iterator[list[str]]:
    """The texts of log events at warn level emitted during the test."""
    seen: list[str] = []

    def observe(event: LogEvent) -> None:
        if event.get("log_level") is not None and event["log_level"].name == "warn":
            seen.append(event["log_format"].format(**event))

    globalLogPublisher.addObserver(observe)
    try:
        yield seen
    finally:
        globalLogPublisher.removeObserver(observe)


def remote(
    fetch: Callable[[], Deferred[bytes]], clock: MemoryReactorClock
) -> RemoteKeySet:
    """A remote key set with the default timings."""
    return RemoteKeySet(fetch, clock, ALLOWED, source="https://idp.example/jwks")


def test_concurrent_lookups_share_one_fetch(
    fetch: FakeFetch, clock: MemoryReactorClock
) -> None:
    """Lookups made while a fetch is in flight all wait on that one fetch."""
    keys = remote(fetch, clock)
    first = keys.find("r1", "RS256")
    second = keys.find("e1", "ES256")
    assert isinstance(first, Deferred)
    assert isinstance(second, Deferred)
    assert fetch.calls == 1
    assert not first.called
    fetch.answer(document(rsa_jwk(), ec_jwk()))
    assert resolve(first).kid == "r1"
    assert resolve(second).kid == "e1"
    assert keys.find("r1", "RS256").kid == "r1"  # now from the cache
    assert fetch.calls == 1


def test_unknown_kid_refetches_at_most_once_per_interval(
    fetch: FakeFetch, clock: MemoryReactorClock
) -> None:
    """An unknown kid fetches again only refresh_interval after the last fetch."""
    keys = remote(fetch, clock)
    pending = keys.find("r1", "RS256")
    fetch.answer(document(rsa_jwk()))
    assert resolve(pending) is not None
    clock.advance(299)
    assert keys.find("new", "RS256") is None
    assert fetch.calls == 1
    clock.advance(1)
    rotated = keys.find("new", "RS256")
    assert fetch.calls == 2
    fetch.answer(document(rsa_jwk("new")))
    assert resolve(rotated).kid == "new"
    assert keys.find("r1", "RS256") is None  # the set was replaced


def test_failed_fetch_keeps_the_keys_and_is_logged(
    fetch: FakeFetch, clock: MemoryReactorClock, warnings: list[str]
) -> None:
    """A failing refetch leaves the held keys in use and logs why."""
    keys = remote(fetch, clock)
    pending = keys.find("r1", "RS256")
    fetch.answer(document(rsa_jwk()))
    resolve(pending)
    clock.advance(300)
    unknown = keys.find("other", "RS256")
    fetch.fail(ConnectionRefusedError("connection refused"))
    assert resolve(unknown) is None
    assert keys.find("r1", "RS256") is not None
    assert warnings == [
        "JWKS fetch from https://idp.example/jwks failed, keeping the keys held: "
        "connection refused"
    ]


def test_no_keys_ever_fetched_is_unavailable(
    fetch: FakeFetch, clock: MemoryReactorClock, warnings: list[str]
) -> None:
    """Until a fetch succeeds, lookups fail with KeysUnavailable (not a bad token)."""
    keys = remote(fetch, clock)
    waiting = keys.find("r1", "RS256")
    fetch.answer(b"<html>oops</html>")
    with pytest.raises(KeysUnavailable):
        resolve(waiting)
    with pytest.raises(KeysUnavailable):
        keys.find("r1", "RS256")  # within the interval: no new fetch
    assert fetch.calls == 1
    assert "not JSON" in warnings[0]


def test_a_fetch_that_hangs_times_out(
    fetch: FakeFetch, clock: MemoryReactorClock, warnings: list[str]
) -> None:
    """A fetch is abandoned after the timeout and its waiters are answered."""
    keys = RemoteKeySet(fetch, clock, ALLOWED, timeout=2.0)
    waiting = keys.find("r1", "RS256")
    clock.advance(1.9)
    assert not waiting.called
    clock.advance(0.1)
    with pytest.raises(KeysUnavailable):
        resolve(waiting)
    assert len(warnings) == 1


def test_a_fetch_that_answers_at_once(clock: MemoryReactorClock) -> None:
    """A fetch that has already fired gives the key without a Deferred."""
    keys = remote(lambda: succeed(document(rsa_jwk())), clock)
    assert keys.find("r1", "RS256").kid == "r1"


def test_refresh_runs_every_cache_ttl_while_started(
    fetch: FakeFetch, clock: MemoryReactorClock
) -> None:
    """start() fetches at once and every cache_ttl; stop() ends it."""
    keys = RemoteKeySet(fetch, clock, ALLOWED, cache_ttl=3600)
    keys.start()
    assert fetch.calls == 1
    fetch.answer(document(rsa_jwk()))
    assert keys.find("r1", "RS256") is not None
    clock.advance(3599)
    assert fetch.calls == 1
    clock.advance(1)
    assert fetch.calls == 2
    fetch.answer(document(rsa_jwk("r2")))
    assert keys.find("r2", "RS256") is not None
    keys.stop()
    clock.advance(7200)
    assert fetch.calls == 2


def test_refresh_survives_failing_fetches(
    clock: MemoryReactorClock, warnings: list[str]
) -> None:
    """A fetch that raises is logged and the periodic refresh keeps going."""
    calls: list[float] = []

    def broken() -> Deferred[bytes]:
        calls.append(clock.seconds())
        raise OSError("no route to host")

    keys = RemoteKeySet(broken, clock, ALLOWED, cache_ttl=60)
    keys.start()
    clock.advance(60)
    clock.advance(60)
    keys.stop()
    assert calls == [1000, 1060, 1120]
    assert len(warnings) == 3


def test_stop_abandons_a_fetch_in_flight(
    fetch: FakeFetch, clock: MemoryReactorClock, warnings: list[str]
) -> None:
    """Stopping cancels the pending fetch quietly; waiters are answered."""
    keys = remote(fetch, clock)
    keys.start()
    waiting = keys.find("r1", "RS256")
    keys.stop()
    with pytest.raises(KeysUnavailable):
        resolve(waiting)
    assert warnings == []


# --- over real HTTP -------------------------------------------------------------

AsyncTest = TypeVar("AsyncTest", bound=Callable[..., Awaitable[None]])


def on_reactor(test: AsyncTest) -> AsyncTest:
    """Run an ``async`` test on the reactor that pytest-twisted drives."""
    marked: AsyncTest = pytest_twisted.ensureDeferred(test)
    return marked


class JWKSResource(Resource):
    """/jwks.json is a key set; /missing is a 404; /huge is 2 MiB."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        if request.path == b"/jwks.json":
            request.setHeader(b"Content-Type", b"application/jwk-set+json")
            return document(rsa_jwk())
        if request.path == b"/huge":
            return b" " * (2 * 1024 * 1024)
        request.setResponseCode(404)
        return b"no such thing"


@on_reactor
async def test_jwks_over_http() -> None:
    """http_fetch reads a key set from a real web server; errors fail the fetch."""
    from twisted.internet import reactor

    listening = reactor.listenTCP(0, Site(JWKSResource()), interface="127.0.0.1")
    address = listening.getHost()
    assert isinstance(address, IPv4Address)
    base = f"http://127.0.0.1:{address.port}"
    try:
        keys = RemoteKeySet(http_fetch(reactor, f"{base}/jwks.json"), reactor, ALLOWED)
        found = keys.find("r1", "RS256")
        assert isinstance(found, Deferred)
        key = await found
        with pytest.raises(ValueError, match="the JWKS URL answered 404"):
            await http_fetch(reactor, f"{base}/missing")()
        with pytest.raises(ValueError, match="larger than 1048576 bytes"):
            await http_fetch(reactor, f"{base}/huge")()
    finally:
        await listening.stopListening()
    assert key is not None
    assert key.kid == "r1"


def test_unfetched_keys_are_retried_soon() -> None:
    """With no keys ever fetched, a failed fetch is retried after 1 s, then 2 s."""
    clock = MemoryReactorClock()
    fetches: list[Deferred[bytes]] = []

    def fetch() -> Deferred[bytes]:
        fetches.append(Deferred())
        return fetches[-1]

    keys = RemoteKeySet(fetch, clock, ALLOWED, refresh_interval=300.0)

    def ask() -> None:
        try:
            result = keys.find("k1", "RS256")
        except KeysUnavailable:
            return
        if isinstance(result, Deferred):
            result.addErrback(lambda failure: failure.trap(KeysUnavailable))

    ask()
    fetches[-1].errback(ConnectionRefusedError())
    clock.advance(0.5)
    ask()
    assert len(fetches) == 1
    clock.advance(0.6)
    ask()
    assert len(fetches) == 2
    fetches[-1].errback(ConnectionRefusedError())
    clock.advance(1.5)
    ask()
    assert len(fetches) == 2
    clock.advance(0.6)
    ask()
    assert len(fetches) == 3
