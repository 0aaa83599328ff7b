"""Tests for edgeproxy.filters.rate_limit_keys: what a request is counted under."""

from __future__ import annotations

import pytest

from edgeproxy.core.context import RequestContext
from edgeproxy.core.message import RequestHead
from edgeproxy.filters.rate_limit_keys import KeyPart, parse_key, request_key


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("client_ip", (KeyPart("client_ip"),)),
        (" header:X-API-Key ", (KeyPart("header", b"X-API-Key"),)),
        ("consumer + route", (KeyPart("consumer"), KeyPart("route"))),
        ("path+header:X-A", (KeyPart("path"), KeyPart("header", b"X-A"))),
    ],
)
def test_parse_key(text: str, parts: tuple[KeyPart, ...]) -> None:
    """A key is one part or several joined by +, in the order written."""
    assert parse_key(text) == parts


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("ip", "'ip' is not a key"),
        ("header:", "'header:' is not a key"),
        ("header:X A", "'header:X A' is not a key"),
        ("route+", "'' is not a key"),
        ("route + route", "names a part twice"),
    ],
)
def test_bad_keys(text: str, fragment: str) -> None:
    """A bad part or a part named twice is refused, naming it."""
    with pytest.raises(ValueError, match=fragment):
        parse_key(text)


@pytest.mark.parametrize(
    ("key", "consumer", "route", "expected"),
    [
        ("client_ip", None, "api", "client_ip=10.0.0.1"),
        ("consumer+route", "a+route=b", None, "consumer=a%2Broute%3Db+route=-"),
        ("consumer+route", "a", "route=b", "consumer=a+route=route%3Db"),
        ("consumer", "", None, "consumer="),
    ],
)
def test_request_key(
    key: str, consumer: str | None, route: str | None, expected: str
) -> None:
    """Keys name their parts; values are encoded so none can pose as another."""
    context = RequestContext("10.0.0.1", route=route)
    context.consumer = consumer
    assert request_key(parse_key(key), context, RequestHead(b"GET", b"/")) == expected


def test_long_keys_are_digested() -> None:
    """A huge header value does not become a huge stored key."""
    context = RequestContext("10.0.0.1")
    request = RequestHead(b"GET", b"/")
    request.headers.add(b"X-Token", b"t" * 10_000)
    key = request_key(parse_key("header:X-Token"), context, request)
    assert key.startswith("sha256=")
    assert len(key) < 100
