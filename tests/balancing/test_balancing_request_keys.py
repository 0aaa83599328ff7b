"""Tests for edgeproxy.balancing.request_keys."""

from __future__ import annotations

import pytest

from edgeproxy.balancing.request_keys import cookie_value, is_token, parse_request_key
from edgeproxy.core.context import RequestContext
from edgeproxy.core.message import Headers, RequestHead


@pytest.mark.parametrize(
    ("fields", "name", "expected"),
    [
        ([b"a=1; b=2"], b"b", b"2"),
        ([b"a=1", b"b=2"], b"b", b"2"),
        ([b"b=1; b=2"], b"b", b"1"),
        ([b'b="quoted"'], b"b", b"quoted"),
        ([b"B=1"], b"b", None),
        ([b"ab=1"], b"b", None),
        ([b"b"], b"b", None),
        ([b"b="], b"b", b""),
        ([], b"b", None),
    ],
)
def test_cookie_value(fields: list[bytes], name: bytes, expected: bytes | None) -> None:
    """Cookies are found by exact name across Cookie fields; the first wins."""
    headers = Headers([(b"Cookie", field) for field in fields])
    assert cookie_value(headers, name) == expected


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("X-API-Key", True),
        ("EP_STICKY", True),
        ("a b", False),
        ("a;b", False),
        ("", False),
    ],
)
def test_is_token(text: str, valid: bool) -> None:
    """Header and cookie names must be RFC 9110 tokens."""
    assert is_token(text) is valid


def test_parsed_keys_read_the_request() -> None:
    """Each key kind reads its part of the request."""
    head = RequestHead(
        b"GET",
        b"/p?q=1",
        Headers([(b"X-Tenant", b"t1"), (b"Cookie", b"sid=s9")]),
    )
    context = RequestContext("192.0.2.3", request=head)
    assert parse_request_key("client_ip")(context) == b"192.0.2.3"
    assert parse_request_key("url")(context) == b"/p?q=1"
    assert parse_request_key("header:x-tenant")(context) == b"t1"
    assert parse_request_key("cookie:sid")(context) == b"s9"
    assert parse_request_key("cookie:SID")(context) is None


@pytest.mark.parametrize(
    "text", ["", "ip", "url:x", "header", "header:", "cookie:a b", "query:page"]
)
def test_bad_keys_are_refused(text: str) -> None:
    """Anything but the four documented forms raises ValueError."""
    with pytest.raises(
        ValueError, match="not client_ip, url, header:NAME or cookie:NAME"
    ):
        parse_request_key(text)
