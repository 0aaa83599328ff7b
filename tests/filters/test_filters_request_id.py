"""Tests for edgeproxy.filters.request_id: the request_id filter."""

from __future__ import annotations

import pytest
from zope.interface.verify import verifyObject

from edgeproxy.core.message import HeaderPair, Headers, ResponseHead
from edgeproxy.errors import OptionError
from edgeproxy.filters.request_id import (
    RequestIdFilterFactory,
    new_request_id,
    request_id_factory,
)
from edgeproxy.interfaces import IFilter, IFilterFactory
from edgeproxy.testing import (
    environment,
    make_request,
    run_request_hook,
    run_response_hook,
)

FRESH = "000102030405460788090a0b0c0d0e0f"
"""The identity made from the bytes 0 to 15."""


def counting_bytes(size: int) -> bytes:
    """Not random at all: 0, 1, 2..."""
    return bytes(range(size))


FACTORY = RequestIdFilterFactory(counting_bytes)


def test_provides_interfaces() -> None:
    """The factory and its filter provide their interfaces."""
    assert verifyObject(IFilterFactory, request_id_factory)
    assert verifyObject(IFilter, request_id_factory.build({}, environment()))


def test_new_request_id_is_a_uuid4() -> None:
    """A new identity is the random bytes as a version 4 UUID in hex."""
    assert new_request_id(counting_bytes) == FRESH


def test_real_identities_differ() -> None:
    """The default source gives each request an identity of its own."""
    ids = request_id_factory.build({}, environment())
    seen = set()
    for _ in range(3):
        context, request = make_request()
        run_request_hook(ids, context, request)
        seen.add(context.notes["request_id"])
    assert len(seen) == 3


@pytest.mark.parametrize(
    ("options", "incoming", "kept"),
    [
        ({}, [], FRESH),
        ({}, [(b"X-Request-ID", b"abc-123")], "abc-123"),
        ({}, [(b"x-request-id", b"~!{}[]")], "~!{}[]"),
        ({}, [(b"X-Request-ID", b"a" * 200)], "a" * 200),
        ({}, [(b"X-Request-ID", b"a" * 201)], FRESH),
        ({}, [(b"X-Request-ID", b"")], FRESH),
        ({}, [(b"X-Request-ID", b"two words")], FRESH),
        ({}, [(b"X-Request-ID", b"caf\xc3\xa9")], FRESH),
        ({}, [(b"X-Request-ID", b"tab\there")], FRESH),
        ({}, [(b"X-Request-ID", b"a"), (b"X-Request-ID", b"b")], FRESH),
        ({"trust_incoming": "no"}, [(b"X-Request-ID", b"abc-123")], FRESH),
        ({"header": "X-Trace"}, [(b"X-Request-ID", b"abc-123")], FRESH),
        ({"header": "X-Trace"}, [(b"x-trace", b"t-1")], "t-1"),
    ],
)
def test_request_identity(
    options: dict[str, str], incoming: list[HeaderPair], kept: str
) -> None:
    """A valid incoming identity is kept; anything else is replaced by a new one."""
    ids = FACTORY.build(options, environment())
    context, request = make_request(headers=[(b"Host", b"a"), *incoming])
    assert run_request_hook(ids, context, request) is None
    header = options.get("header", "X-Request-ID").encode()
    assert request.headers.get_all(header) == [kept.encode()]
    assert request.headers.get(b"Host") == b"a"
    assert context.notes["request_id"] == kept


@pytest.mark.parametrize(
    "upstream",
    [
        [],
        [(b"X-Request-ID", b"upstream-made")],
        [(b"x-request-id", b"a"), (b"X-Request-ID", b"b")],
    ],
)
def test_response_carries_the_identity(upstream: list[HeaderPair]) -> None:
    """The response returns the request's identity, whatever the upstream sent."""
    ids = FACTORY.build({}, environment())
    context, request = make_request(headers=[(b"X-Request-ID", b"client-7")])
    run_request_hook(ids, context, request)
    response = ResponseHead(502, b"", Headers([(b"Server", b"s"), *upstream]))
    run_response_hook(ids, context, response)
    assert response.headers.pairs == [
        (b"Server", b"s"),
        (b"X-Request-ID", b"client-7"),
    ]


@pytest.mark.parametrize(
    ("options", "key", "fragment"),
    [
        ({"header": "X Request"}, "header", "not a header name"),
        ({"header": ""}, "header", "not a header name"),
        ({"trust_incoming": "perhaps"}, "trust_incoming", "not yes or no"),
        ({"trusted": "yes"}, "trusted", "unknown option"),
    ],
)
def test_bad_option(options: dict[str, str], key: str, fragment: str) -> None:
    """Each bad option is reported by its key."""
    with pytest.raises(OptionError) as caught:
        request_id_factory.build(options, environment())
    [(found_key, message)] = caught.value.problems
    assert found_key == key
    assert fragment in message


def test_every_bad_option_is_reported() -> None:
    """All the bad options of a section are reported together."""
    with pytest.raises(OptionError) as caught:
        request_id_factory.build({"header": "a b", "size": "9"}, environment())
    assert sorted(key for key, _ in caught.value.problems) == ["header", "size"]
