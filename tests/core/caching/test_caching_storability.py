"""Tests for edgeproxy.core.caching.storability: what a shared cache may store."""

from __future__ import annotations

from typing import Any

import pytest

from edgeproxy.core.caching.settings import DEFAULT_SETTINGS, CacheSettings
from edgeproxy.core.caching.storability import storage_decision
from edgeproxy.core.message import Headers, ResponseHead
from tests.core.caching.examples import (
    T0,
    d,
    header_pairs,
    request_head,
)

AUTH = "Authorization: Basic eDp5"


@pytest.mark.parametrize(
    ("request_fields", "method", "status", "fields", "settings", "refusal"),
    [
        pytest.param(
            "", b"GET", 200, "Cache-Control: max-age=60", {}, None, id="max-age",
        ),
        pytest.param("", b"GET", 200, "", {}, "no-freshness", id="nothing to reuse"),
        pytest.param(
            "", b"GET", 200, f"Last-Modified: {d(-9)}", {}, None, id="heuristic",
        ),
        pytest.param("", b"GET", 200, 'ETag: "x"', {}, None, id="validator only"),
        pytest.param("", b"GET", 200, "", {"default_ttl": 60}, None, id="default_ttl"),
        pytest.param(
            "", b"GET", 302, f"Last-Modified: {d(-9)}", {}, "no-freshness", id="302",
        ),
        pytest.param(
            "", b"GET", 302, "Cache-Control: max-age=6", {}, None, id="302 max-age",
        ),
        pytest.param("", b"GET", 307, f"Expires: {d(60)}", {}, None, id="307 Expires"),
        pytest.param(
            "", b"GET", 500, "Cache-Control: s-maxage=5", {}, None, id="500 s-maxage",
        ),
        pytest.param(
            "", b"GET", 302, f"Cache-Control: public | Last-Modified: {d(-9)}", {},
            None,
            id="public allows heuristics",
        ),
        pytest.param(
            "", b"GET", 206, "Cache-Control: max-age=6", {}, "status", id="206",
        ),
        pytest.param(
            "", b"GET", 304, "Cache-Control: max-age=6", {}, "status", id="304",
        ),
        pytest.param(
            "", b"GET", 103, "Cache-Control: max-age=6", {}, "status", id="1xx",
        ),
        pytest.param(
            "", b"HEAD", 200, "Cache-Control: max-age=6", {}, "method", id="HEAD",
        ),
        pytest.param(
            "", b"POST", 200, "Cache-Control: max-age=6", {}, "method", id="POST",
        ),
        pytest.param(
            "Range: bytes=0-1", b"GET", 200, "Cache-Control: max-age=6", {}, "range",
            id="Range",
        ),
        pytest.param(
            "", b"GET", 200, "Cache-Control: max-age=6, NO-STORE", {}, "no-store",
            id="no-store",
        ),
        pytest.param(
            "Cache-Control: no-store", b"GET", 200, "Cache-Control: max-age=6", {},
            "request-no-store", id="request no-store",
        ),
        pytest.param(
            "", b"GET", 200, "Cache-Control: no-store, must-understand, max-age=6", {},
            None, id="must-understand, status understood",
        ),
        pytest.param(
            "", b"GET", 299, "Cache-Control: no-store, must-understand, max-age=6", {},
            "status", id="must-understand, status unknown",
        ),
        pytest.param(
            "", b"GET", 200, "Cache-Control: private, max-age=6", {}, "private",
            id="private",
        ),
        pytest.param(
            "", b"GET", 200, 'Cache-Control: private="Set-Cookie", max-age=6', {}, None,
            id="qualified private",
        ),
        pytest.param(
            AUTH, b"GET", 200, "Cache-Control: max-age=6", {}, "authorization",
            id="Authorization",
        ),
        pytest.param(
            AUTH, b"GET", 200, "Cache-Control: public, max-age=6", {}, None,
            id="Authorization public"
        ),
        pytest.param(
            AUTH, b"GET", 200, "Cache-Control: s-maxage=6", {}, None,
            id="Authorization s-maxage",
        ),
        pytest.param(
            AUTH, b"GET", 200, "Cache-Control: must-revalidate, max-age=6", {}, None,
            id="Authorization must-revalidate",
        ),
        pytest.param(
            "", b"GET", 200, "Cache-Control: max-age=6 | Vary: Accept, *", {},
            "vary-star", id="Vary *",
        ),
        pytest.param(
            "", b"GET", 200, "Cache-Control: max-age=0", {}, "stale-without-validator",
            id="max-age=0 alone",
        ),
        pytest.param(
            "", b"GET", 200, 'Cache-Control: max-age=0 | ETag: "x"', {}, None,
            id="max-age=0 with ETag",
        ),
        pytest.param(
            "", b"GET", 200, "Cache-Control: max-age=0, stale-if-error=60", {}, None,
            id="max-age=0 with stale-if-error",
        ),
        pytest.param(
            "", b"GET", 200, "Cache-Control: max-age=0", {"stale_if_error": 60}, None,
            id="max-age=0 with a stale-if-error floor",
        ),
        pytest.param(
            "", b"GET", 200, "Expires: 0", {}, "stale-without-validator",
            id="Expires 0 alone",
        ),
        pytest.param(
            "", b"GET", 200, "Cache-Control: max-age=60 | Age: 100", {},
            "stale-without-validator", id="arrives stale",
        ),
        pytest.param(
            "", b"GET", 200, 'Cache-Control: no-cache | ETag: "x"', {}, None,
            id="no-cache kept for revalidation",
        ),
    ],
)  # fmt: skip
def test_storability(
    request_fields: str,
    method: bytes,
    status: int,
    fields: str,
    settings: dict[str, Any],
    refusal: str | None,
) -> None:
    """RFC 9111 3, 3.5, 4.2.2, 5.2: what a shared cache may store, and why not."""
    request = request_head(request_fields, method)
    response = ResponseHead(status, b"X", Headers([(b"Date", d().encode())]))
    response.headers.pairs += header_pairs(fields)
    decision = storage_decision(request, response, T0, T0, CacheSettings(**settings))
    assert decision.refusal == refusal
    assert (decision.response is None) == (refusal is not None)


def test_stored_fields() -> None:
    """RFC 9111 3.1: hop-by-hop, proxy and private-listed fields are not stored."""
    response = ResponseHead(
        200,
        b"OK",
        Headers(
            header_pairs(
                'Cache-Control: max-age=60, private="X-User" | Connection: close, X-Hop'
                " | X-Hop: 1 | Keep-Alive: timeout=5 | Transfer-Encoding: chunked"
                " | Proxy-Authenticate: Basic | x-user: alice | Surrogate-Key: a  b"
                " | Cache-Tag: c,d | Content-Length: 5 | Set-Cookie: s=1"
            )
        ),
    )
    decision = storage_decision(request_head(), response, T0 - 1, T0, DEFAULT_SETTINGS)
    assert decision.response is not None
    assert decision.response.headers.pairs == header_pairs(
        'Cache-Control: max-age=60, private="X-User" | Content-Length: 5'
        f" | Set-Cookie: s=1 | Date: {d()}"
    )
    assert decision.tags == {b"a", b"b", b"c", b"d"}
    stored = decision.response
    assert (stored.request_time, stored.response_time) == (T0 - 1, T0)


@pytest.mark.parametrize("date", ["", "Date: yesterday"], ids=["missing", "invalid"])
def test_stored_date(date: str) -> None:
    """RFC 9110 6.6.1: a stored response without a valid Date gets its arrival time."""
    response = ResponseHead(200, b"OK", Headers(header_pairs(f"Expires: 0 | {date}")))
    response.headers.add(b"ETag", b'"x"')
    decision = storage_decision(request_head(), response, T0, T0 + 5, DEFAULT_SETTINGS)
    assert decision.response is not None
    assert decision.response.headers.get_all(b"date") == [d(5).encode()]
