"""Tests for edgeproxy.core.caching.keys: primary keys, Vary and variants."""

from __future__ import annotations

from typing import Any

import pytest

from edgeproxy.core.caching.keys import primary_key, select_variants
from edgeproxy.core.caching.settings import DEFAULT_SETTINGS, CacheSettings
from tests.core.caching.examples import (
    d,
    request_head,
    stored_response,
)


@pytest.mark.parametrize(
    ("scheme", "host", "target", "key"),
    [
        pytest.param(
            b"HTTP", b"App.Example:80", b"/a?b", b"http://app.example/a?b",
            id="case, port",
        ),
        pytest.param(
            b"https", b"a.example:443", b"/", b"https://a.example/", id="https port",
        ),
        pytest.param(
            b"http", b"a.example:443", b"/", b"http://a.example:443/",
            id="port of https",
        ),
        pytest.param(
            b"http", b"a.example:8080", b"/", b"http://a.example:8080/",
            id="other port",
        ),
        pytest.param(
            b"http", b"a.example:", b"/", b"http://a.example/", id="empty port",
        ),
        pytest.param(b"http", b"[::1]:80", b"/", b"http://[::1]/", id="IPv6 and port"),
        pytest.param(b"http", b"[::1]", b"/", b"http://[::1]/", id="IPv6"),
        pytest.param(
            b"http", b"a", b"/A%2Fb?Q", b"http://a/A%2Fb?Q", id="target as received",
        ),
    ],
)  # fmt: skip
def test_primary_key(scheme: bytes, host: bytes, target: bytes, key: bytes) -> None:
    """RFC 9111 2: the key is scheme, normalised authority and target."""
    assert primary_key(scheme, host, target) == key


@pytest.mark.parametrize(
    ("vary", "first", "second", "match"),
    [
        pytest.param(
            "Accept-Encoding", "Accept-Encoding: gzip, br", "accept-encoding: gzip,br",
            True, id="whitespace, name case",
        ),
        pytest.param(
            "Accept-Encoding", "Accept-Encoding: gzip | Accept-Encoding: br",
            "Accept-Encoding: gzip, br", True, id="field lines combined",
        ),
        pytest.param(
            "Accept-Encoding", "Accept-Encoding: GZIP", "Accept-Encoding: gzip", True,
            id="case-insensitive value",
        ),
        pytest.param(
            "X-Flavour", "X-Flavour: A", "X-Flavour: a", False,
            id="value case kept elsewhere",
        ),
        pytest.param(
            "Accept", "Accept: text/html ;  q=0.9", "Accept: text/html;q=0.9", True,
            id="whitespace in parameters",
        ),
        pytest.param(
            "Accept", "Accept: a,,b, ", "Accept: a,b", True, id="empty members",
        ),
        pytest.param(
            "X-A", 'X-A: "a  b"', 'X-A: "a b"', False, id="quoted whitespace kept",
        ),
        pytest.param(
            "Accept-Encoding", "Accept-Encoding: gzip, br", "Accept-Encoding: br, gzip",
            False, id="order kept",
        ),
        pytest.param("X-A", "", "X-A: ", False, id="absent differs from empty"),
        pytest.param("X-A", "", "", True, id="absent in both"),
        pytest.param("X-A, x-a", "X-A: 1", "X-A: 1", True, id="repeated Vary names"),
        pytest.param(
            "X-A", "X-A: 1 | X-B: 1", "X-A: 1 | X-B: 2", True,
            id="other fields ignored",
        ),
        pytest.param("", "X-A: 1", "X-A: 2", True, id="empty Vary"),
    ],
)  # fmt: skip
def test_vary_matching(vary: str, first: str, second: str, match: bool) -> None:
    """RFC 9111 4.1: selecting fields match after normalisation."""
    stored = stored_response(f"Vary: {vary}", request=request_head(first))
    assert (
        bool(select_variants(request_head(second), [stored], DEFAULT_SETTINGS)) is match
    )


@pytest.mark.parametrize(
    ("settings", "first", "second", "match"),
    [
        pytest.param(
            {"key_header": b"X-Tenant"}, "X-Tenant: a", "x-tenant: a", True,
            id="same field",
        ),
        pytest.param(
            {"key_header": b"X-Tenant"}, "X-Tenant: a", "X-Tenant: b", False,
            id="other field value",
        ),
        pytest.param(
            {"key_cookie": b"sess"}, "Cookie: sess=a; t=b",
            "Cookie: t=c | Cookie: sess=a", True, id="same cookie",
        ),
        pytest.param(
            {"key_cookie": b"sess"}, "Cookie: sess=a", "Cookie: sess=b", False,
            id="other cookie value",
        ),
        pytest.param(
            {"key_cookie": b"sess"}, "Cookie: sess=", "", False,
            id="empty cookie is not none",
        ),
    ],
)  # fmt: skip
def test_configured_key(
    settings: dict[str, Any], first: str, second: str, match: bool
) -> None:
    """A configured field or cookie separates the cached responses of one URL."""
    configured = CacheSettings(**settings)
    stored = stored_response(request=request_head(first), settings=configured)
    assert bool(select_variants(request_head(second), [stored], configured)) is match


def test_variants_side_by_side() -> None:
    """RFC 9111 4.1: variants coexist; most recent match first; Vary * never."""
    french = stored_response(
        "Vary: Accept-Language", request=request_head("Accept-Language: fr")
    )
    english = request_head("Accept-Language: en")
    older = stored_response(f"Vary: Accept-Language | Date: {d(-10)}", request=english)
    newer = stored_response("Vary: Accept-Language", request=english)
    anything = stored_response("Vary: *")
    variants = [anything, older, french, newer]
    assert select_variants(english, variants, DEFAULT_SETTINGS) == [newer, older]
