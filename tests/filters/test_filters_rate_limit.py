"""Tests for edgeproxy.filters.rate_limit: the built-in rate_limit filter."""

from __future__ import annotations

import json
from typing import Any

import pytest
from twisted.application.service import IService
from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from zope.interface.verify import verifyObject

from edgeproxy.core.context import RequestContext
from edgeproxy.core.gcra import GcraDecision, GcraPolicy
from edgeproxy.core.message import HeaderPair, LocalResponse
from edgeproxy.errors import OptionError
from edgeproxy.filters.rate_limit import RateLimitFilter, rate_limit_factory
from edgeproxy.interfaces import IFilter, IFilterFactory
from edgeproxy.store import StoreUnavailable
from edgeproxy.store.memory import MemoryStore
from edgeproxy.store.redis import RedisStore
from edgeproxy.testing import environment, make_request, run_request_hook


def build(clock: Clock | None = None, **options: Any) -> RateLimitFilter:
    """A rate_limit filter on ``clock`` (a fresh one by default)."""
    return rate_limit_factory.build(options, environment(clock or Clock()))


def send(
    limit: RateLimitFilter,
    client: str = "10.0.0.1",
    headers: list[HeaderPair] | None = None,
    target: bytes = b"/",
    route: str | None = "api",
    consumer: str | None = None,
) -> tuple[LocalResponse | Deferred[LocalResponse | None] | None, RequestContext]:
    """Run one request through ``limit``; return the hook's result and context."""
    context, request = make_request(
        b"GET", target, headers or [], client_host=client, route=route
    )
    context.consumer = consumer
    return limit.on_request(context, request), context


def passes(limit: RateLimitFilter, **request: Any) -> bool:
    """Whether one request passes at once."""
    result, _ = send(limit, **request)
    if result is None:
        return True
    assert isinstance(result, LocalResponse)
    assert result.status == 429
    return False


def test_provides_interfaces() -> None:
    """The factory provides IFilterFactory; its filter IFilter and IService."""
    assert verifyObject(IFilterFactory, rate_limit_factory)
    limit = build(rate="1/s")
    assert verifyObject(IFilter, limit)
    assert verifyObject(IService, limit)
    assert isinstance(limit.store, MemoryStore)


def test_every_bad_option_is_reported() -> None:
    """All bad options come back in one OptionError, each with its key."""
    with pytest.raises(OptionError) as caught:
        rate_limit_factory.build(
            {
                "burst": "-1",
                "key": "cookie:x",
                "mode": "queue",
                "status": "200",
                "store": "memcached://x",
                "on_store_error": "maybe",
                "headers": "perhaps",
                "policy": 'a"b',
                "max_keys": "0",
                "store_timeout": "soon",
                "colour": "blue",
            },
            environment(),
        )
    keys = [key for key, _ in caught.value.problems]
    assert sorted(keys) == sorted(
        [
            "burst",
            "key",
            "mode",
            "status",
            "store",
            "on_store_error",
            "headers",
            "policy",
            "max_keys",
            "store_timeout",
            "colour",
            "rate",
        ]
    )


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"rate": "fast"}, "rate"),
        ({"rate": "1/s", "store": "redis://host:notaport"}, "store"),
        ({"rate": "1/s", "key": "route+route"}, "key"),
    ],
)
def test_single_bad_option(options: dict[str, str], key: str) -> None:
    """A bad rate, Redis URL or repeated key part is reported under its key."""
    with pytest.raises(OptionError) as caught:
        rate_limit_factory.build(options, environment())
    assert [name for name, _ in caught.value.problems] == [key]


def test_building_a_redis_store_opens_no_connection() -> None:
    """build makes the Redis store but connects only when started."""
    reactor = MemoryReactorClock()
    limit = rate_limit_factory.build(
        {"rate": "10/s", "store": "redis://127.0.0.1:6390/1"}, environment(reactor)
    )
    assert isinstance(limit.store, RedisStore)
    assert reactor.tcpClients == []
    limit.startService()
    assert [(host, port) for host, port, *_ in reactor.tcpClients] == [
        ("127.0.0.1", 6390)
    ]
    limit.stopService()
    assert not limit.store.client.running


def test_reject_mode_refuses_past_the_burst() -> None:
    """Burst + 1 requests pass at once; the next gets 429 until time passes."""
    clock = Clock()
    limit = build(clock, rate="10/s", burst="1")
    assert [passes(limit) for _ in range(3)] == [True, True, False]
    clock.advance(0.1)
    assert [passes(limit) for _ in range(2)] == [True, False]


def test_refusal_carries_retry_after_and_a_short_body() -> None:
    """A refusal says when to come back, in the status configured."""
    limit = build(rate="1/m", status="503")
    send(limit)
    answer, _ = send(limit)
    assert isinstance(answer, LocalResponse)
    assert answer.status == 503
    assert answer.headers.get(b"Retry-After") == b"60"
    assert b"rate limit exceeded" in answer.body


def test_refusal_in_json_when_the_client_prefers_it() -> None:
    """A client accepting only JSON gets a JSON refusal."""
    limit = build(rate="1/m")
    send(limit)
    answer, _ = send(limit, headers=[(b"Accept", b"application/json")])
    assert isinstance(answer, LocalResponse)
    assert json.loads(answer.body)["status"] == 429


@pytest.mark.parametrize(
    ("options", "requests", "fields"),
    [
        (
            {"rate": "10/s", "burst": "2"},
            1,
            [
                (b"RateLimit-Policy", b'"default";q=10;w=1'),
                (b"RateLimit", b'"default";r=2;t=1'),
            ],
        ),
        (
            {"rate": "100/m", "policy": "per-ip"},
            1,
            [
                (b"RateLimit-Policy", b'"per-ip";q=100;w=60'),
                (b"RateLimit", b'"per-ip";r=0;t=1'),
            ],
        ),
        (
            {"rate": "2/h", "burst": "1"},
            2,
            [
                (b"RateLimit-Policy", b'"default";q=2;w=3600'),
                (b"RateLimit", b'"default";r=0;t=3600'),
            ],
        ),
        (
            {"rate": "2/h"},
            2,
            [
                (b"RateLimit-Policy", b'"default";q=2;w=3600'),
                (b"RateLimit", b'"default";r=0;t=1800'),
            ],
        ),
        ({"rate": "10/s", "headers": "no"}, 1, []),
    ],
)
def test_rate_limit_fields(
    options: dict[str, str], requests: int, fields: list[HeaderPair]
) -> None:
    """The policy and the current limit go on the response, per the IETF draft."""
    limit = rate_limit_factory.build(options, environment())
    for _ in range(requests - 1):
        send(limit)
    _, context = send(limit)
    assert context.response_headers.pairs == fields


def test_refused_requests_get_the_fields_too() -> None:
    """A refusal carries RateLimit with nothing remaining, once (not twice)."""
    limit = build(rate="1/s")
    send(limit)
    answer, context = send(limit)
    assert isinstance(answer, LocalResponse)
    assert context.response_headers.get_all(b"RateLimit") == [b'"default";r=0;t=1']
    assert b"RateLimit" not in answer.headers


@pytest.mark.parametrize(
    ("key", "first", "second", "shared"),
    [
        ("client_ip", {"client": "10.0.0.1"}, {"client": "10.0.0.2"}, False),
        ("client_ip", {"route": "a"}, {"route": "b"}, True),
        (
            "header:X-API-Key",
            {"client": "10.0.0.1", "headers": [(b"x-api-key", b"k1")]},
            {"client": "10.0.0.2", "headers": [(b"X-Api-Key", b"k1")]},
            True,
        ),
        (
            "header:X-API-Key",
            {"headers": [(b"X-API-Key", b"k1")]},
            {"headers": [(b"X-API-Key", b"k2")]},
            False,
        ),
        # Requests without the header share one bucket, from any client.
        ("header:X-API-Key", {"client": "10.0.0.1"}, {"client": "10.0.0.2"}, True),
        ("consumer", {"consumer": "alice"}, {"consumer": "bob"}, False),
        ("consumer", {"client": "10.0.0.1"}, {"client": "10.0.0.2"}, True),
        ("route", {"route": "a", "client": "1.1.1.1"}, {"route": "a"}, True),
        ("route", {"route": "a"}, {"route": "b"}, False),
        ("path", {"target": b"/x?a=1"}, {"target": b"/x?a=2"}, True),
        ("path", {"target": b"/x"}, {"target": b"/y"}, False),
        (
            "consumer+route",
            {"consumer": "alice", "route": "a"},
            {"consumer": "alice", "route": "b"},
            False,
        ),
        (
            "consumer + route",
            {"consumer": "alice", "route": "a", "client": "1.1.1.1"},
            {"consumer": "alice", "route": "a", "client": "2.2.2.2"},
            True,
        ),
    ],
)
def test_keys(
    key: str, first: dict[str, Any], second: dict[str, Any], shared: bool
) -> None:
    """Two requests share a limit exactly when their keys are equal."""
    limit = build(rate="1/m", key=key)
    assert passes(limit, **first)
    assert passes(limit, **second) is not shared


def test_delay_mode_holds_early_requests_in_order() -> None:
    """Without nodelay, a burst is spread out at the rate; beyond it, refused."""
    clock = Clock()
    limit = build(clock, rate="10/s", burst="2", mode="delay")
    results = [send(limit)[0] for _ in range(4)]
    assert results[0] is None
    first_held, second_held, refused = results[1:]
    assert isinstance(first_held, Deferred)
    assert isinstance(second_held, Deferred)
    assert isinstance(refused, LocalResponse)
    assert refused.status == 429
    fired: list[str] = []
    first_held.addCallback(lambda result: fired.append(f"first {result}"))
    second_held.addCallback(lambda result: fired.append(f"second {result}"))
    clock.advance(0.099)
    assert fired == []
    clock.advance(0.001)
    assert fired == ["first None"]
    clock.advance(0.1)
    assert fired == ["first None", "second None"]


def test_delay_mode_without_burst_rejects() -> None:
    """With burst 0 there is no room to wait: delay mode refuses at once."""
    limit = build(rate="10/s", mode="delay")
    assert send(limit)[0] is None
    assert isinstance(send(limit)[0], LocalResponse)


def test_cancelling_a_held_request_cancels_its_timer() -> None:
    """A request abandoned while held leaves no timer behind."""
    clock = Clock()
    limit = build(clock, rate="10/s", burst="1", mode="delay")
    send(limit)
    held, _ = send(limit)
    assert isinstance(held, Deferred)
    assert len(clock.getDelayedCalls()) == 1
    held.addErrback(lambda failure: failure.trap(CancelledError))
    held.cancel()
    assert clock.getDelayedCalls() == []


class FailingStore:
    """A store that cannot answer."""

    def take(self, key: str, policy: GcraPolicy, now: int) -> Deferred[GcraDecision]:
        """Fail as an unreachable Redis does."""
        return fail(StoreUnavailable("not connected to Redis"))


class LaterStore:
    """A store whose answers the test fires by hand."""

    def __init__(self) -> None:
        self.waiting: list[Deferred[GcraDecision]] = []

    def take(self, key: str, policy: GcraPolicy, now: int) -> Deferred[GcraDecision]:
        """Answer later."""
        answer: Deferred[GcraDecision] = Deferred()
        self.waiting.append(answer)
        return answer


def with_store(store: Any, **options: Any) -> RateLimitFilter:
    """A filter built from ``options`` that uses ``store`` instead of memory."""
    limit = build(**options)
    limit.store = store
    return limit


def test_store_failure_fails_open_by_default() -> None:
    """With the store down, requests pass and the fail-opens are counted."""
    limit = with_store(FailingStore(), rate="1/s")
    for _ in range(3):
        context, request = make_request()
        assert run_request_hook(limit, context, request) is None
        assert b"RateLimit" not in context.response_headers
    assert (limit.store_errors, limit.fail_opens) == (3, 3)


def test_store_failure_can_deny() -> None:
    """on_store_error = deny answers 503 while the store is down."""
    limit = with_store(FailingStore(), rate="1/s", on_store_error="deny")
    context, request = make_request()
    answer = run_request_hook(limit, context, request)
    assert answer is not None
    assert answer.status == 503
    assert answer.headers.get(b"Retry-After") == b"1"
    assert (limit.store_errors, limit.fail_opens) == (1, 0)


def test_answers_from_a_remote_store_apply_when_they_come() -> None:
    """A Deferred decision refuses or passes the request when it fires."""
    store = LaterStore()
    limit = with_store(store, rate="10/s")
    context, request = make_request()
    pending = limit.on_request(context, request)
    assert isinstance(pending, Deferred)
    refusal = GcraDecision(False, 0, 150_000, 50_000, 0, 150_000)
    store.waiting[0].callback(refusal)
    answers: list[LocalResponse | None] = []
    pending.addCallback(answers.append)
    [answer] = answers
    assert answer is not None
    assert answer.status == 429
    assert answer.headers.get(b"Retry-After") == b"1"
    assert context.response_headers.get(b"RateLimit") == b'"default";r=0;t=1'


def test_other_failures_are_not_swallowed() -> None:
    """A store bug is the request's 500, not a silent pass."""
    store = LaterStore()
    limit = with_store(store, rate="10/s")
    context, request = make_request()
    pending = limit.on_request(context, request)
    assert isinstance(pending, Deferred)
    store.waiting[0].errback(ZeroDivisionError())
    failures: list[Failure] = []
    pending.addErrback(failures.append)
    [failure] = failures
    assert failure.check(ZeroDivisionError)
    assert limit.fail_opens == 0
