"""
Tests for edgeproxy.core.cache_policy: the rules of the shared cache.

Header fields are written as ``"Name: value | Name: value"`` (see ``_fields``);
times are offsets from ``T0``, and ``d(offset)`` is that moment as an HTTP-date.
"""

from __future__ import annotations

from typing import Any

import pytest

from edgeproxy.core.cache_control import field_name_list, format_http_date
from edgeproxy.core.cache_policy import (
    DEFAULT_SETTINGS,
    Action,
    CacheDecision,
    CacheSettings,
    CacheStatus,
    StoredResponse,
    age_field,
    current_age,
    decide,
    forward_request,
    freshen,
    freshness_lifetime,
    invalidated_keys,
    not_modified,
    primary_key,
    revalidation_request,
    select_variants,
    served_response,
    storage_decision,
    time_to_live,
    usable_after_error,
    variant_key,
)
from edgeproxy.core.message import HeaderPair, Headers, RequestHead, ResponseHead

T0 = 1_600_000_000.0
Pairs = list[HeaderPair]
AUTH = "Authorization: Basic eDp5"


def d(offset: float = 0) -> str:
    """The HTTP-date ``offset`` seconds from T0."""
    return format_http_date(T0 + offset).decode("ascii")


def _fields(text: str) -> Pairs:
    """Header pairs from ``"Name: value | Name: value"``."""
    pairs = []
    for line in text.split(" | "):
        if line:
            name, _, value = line.partition(":")
            pairs.append((name.encode("ascii"), value.strip().encode("latin-1")))
    return pairs


def _request(fields: str = "", method: bytes = b"GET") -> RequestHead:
    """A request for /a on app.example."""
    pairs = [(b"Host", b"app.example"), *_fields(fields)]
    return RequestHead(method, b"/a", Headers(pairs))


def _stored(
    fields: str = "",
    *,
    status: int = 200,
    request: RequestHead | None = None,
    settings: CacheSettings = DEFAULT_SETTINGS,
) -> StoredResponse:
    """A response stored at T0 for ``request`` (its Date is T0 unless given)."""
    headers = Headers(_fields(fields))
    if b"date" not in headers:
        headers.add(b"Date", d())
    vary = field_name_list(headers.get_all(b"vary"))
    variant = variant_key(request or _request(), vary, settings)
    return StoredResponse(status, b"OK", headers, T0, T0, variant)


def _decision(*stored: StoredResponse) -> CacheDecision:
    """A revalidation decision over ``stored`` (most recent first)."""
    return CacheDecision(Action.REVALIDATE, CacheStatus(fwd="stale"), stored[0], stored)


# --- storability (RFC 9111 section 3) -------------------------------------------


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
    request = _request(request_fields, method)
    response = ResponseHead(status, b"X", Headers([(b"Date", d().encode())]))
    response.headers.pairs += _fields(fields)
    decision = storage_decision(request, response, T0, T0, CacheSettings(**settings))
    assert decision.refusal == refusal
    assert (decision.response is None) == (refusal is not None)


def test_stored_fields() -> None:
    """RFC 9111 3.1: hop-by-hop, proxy and private-listed fields are not stored."""
    response = ResponseHead(
        200,
        b"OK",
        Headers(
            _fields(
                'Cache-Control: max-age=60, private="X-User" | Connection: close, X-Hop'
                " | X-Hop: 1 | Keep-Alive: timeout=5 | Transfer-Encoding: chunked"
                " | Proxy-Authenticate: Basic | x-user: alice | Surrogate-Key: a  b"
                " | Cache-Tag: c,d | Content-Length: 5 | Set-Cookie: s=1"
            )
        ),
    )
    decision = storage_decision(_request(), response, T0 - 1, T0, DEFAULT_SETTINGS)
    assert decision.response is not None
    assert decision.response.headers.pairs == _fields(
        'Cache-Control: max-age=60, private="X-User" | Content-Length: 5'
        f" | Set-Cookie: s=1 | Date: {d()}"
    )
    assert decision.tags == {b"a", b"b", b"c", b"d"}
    stored = decision.response
    assert (stored.request_time, stored.response_time) == (T0 - 1, T0)


@pytest.mark.parametrize("date", ["", "Date: yesterday"], ids=["missing", "invalid"])
def test_stored_date(date: str) -> None:
    """RFC 9110 6.6.1: a stored response without a valid Date gets its arrival time."""
    response = ResponseHead(200, b"OK", Headers(_fields(f"Expires: 0 | {date}")))
    response.headers.add(b"ETag", b'"x"')
    decision = storage_decision(_request(), response, T0, T0 + 5, DEFAULT_SETTINGS)
    assert decision.response is not None
    assert decision.response.headers.get_all(b"date") == [d(5).encode()]


# --- freshness and age (RFC 9111 sections 4.2.1 to 4.2.3) ------------------------


@pytest.mark.parametrize(
    ("status", "fields", "settings", "lifetime"),
    [
        pytest.param(
            200, f"Cache-Control: max-age=60, s-maxage=30 | Expires: {d(90)}", {}, 30,
            id="s-maxage first",
        ),
        pytest.param(
            200, f"Cache-Control: max-age=60 | Expires: {d(90)}", {}, 60,
            id="max-age over Expires",
        ),
        pytest.param(200, f"Expires: {d(90)}", {}, 90, id="Expires minus Date"),
        pytest.param(
            200, f"Expires: {d(90)} | Date: {d(30)}", {}, 60, id="its own Date",
        ),
        pytest.param(200, f"Expires: {d(-90)}", {}, 0, id="Expires in the past"),
        pytest.param(200, "Expires: 0", {}, 0, id="Expires 0"),
        pytest.param(200, "Expires: soon", {}, 0, id="invalid Expires"),
        pytest.param(
            200, f"Expires: {d(90)} | Expires: {d(60)}", {}, 0, id="conflicting Expires"
        ),
        pytest.param(
            200, f"Expires: {d(90)} | Expires: {d(90)}", {}, 90, id="repeated Expires"
        ),
        pytest.param(
            200, "Cache-Control: max-age=60, max-age=30", {}, 0,
            id="conflicting max-age",
        ),
        pytest.param(
            200, "Cache-Control: max-age=60 | Cache-Control: max-age=60", {}, 60,
            id="repeated max-age",
        ),
        pytest.param(
            200, f"Cache-Control: max-age=-5 | Expires: {d(90)}", {}, 0,
            id="negative max-age is stale, Expires not consulted",
        ),
        pytest.param(
            200, "Cache-Control: s-maxage=x, max-age=60", {}, 0, id="invalid s-maxage"
        ),
        pytest.param(
            200, "Cache-Control: max-age=99999999999", {}, 2147483648, id="huge max-age"
        ),
        pytest.param(200, f"Last-Modified: {d(-1000)}", {}, 100, id="heuristic 10%"),
        pytest.param(200, f"Last-Modified: {d(-1e7)}", {}, 86400, id="capped at a day"),
        pytest.param(
            200, f"Last-Modified: {d(-1000)}", {"heuristic_max": 50}, 50, id="own cap"
        ),
        pytest.param(
            200, f"Last-Modified: {d(-1000)}", {"heuristic_fraction": 0.5}, 500,
            id="own fraction",
        ),
        pytest.param(200, f"Last-Modified: {d(1000)}", {}, 0, id="modified after Date"),
        pytest.param(404, f"Last-Modified: {d(-1000)}", {}, 100, id="404 heuristic"),
        pytest.param(302, f"Last-Modified: {d(-1000)}", {}, 0, id="302 no heuristic"),
        pytest.param(
            302, f"Last-Modified: {d(-1000)} | Cache-Control: public", {}, 100,
            id="public 302 heuristic",
        ),
        pytest.param(200, "", {"default_ttl": 30}, 30, id="default_ttl"),
        pytest.param(
            200, f"Last-Modified: {d(-1000)}", {"default_ttl": 30}, 100,
            id="heuristic before default_ttl",
        ),
        pytest.param(302, "", {"default_ttl": 30}, 0, id="302 no default_ttl"),
        pytest.param(200, "Expires: 0", {"default_ttl": 30}, 0, id="explicit first"),
    ],
)  # fmt: skip
def test_freshness_lifetime(
    status: int, fields: str, settings: dict[str, Any], lifetime: float
) -> None:
    """RFC 9111 4.2.1, 4.2.2: explicit first; invalid or conflicting is stale."""
    stored = _stored(fields, status=status)
    assert freshness_lifetime(stored, CacheSettings(**settings)) == lifetime


@pytest.mark.parametrize(
    ("fields", "request_time", "now", "age"),
    [
        pytest.param("", 0, 10, 10, id="resident time"),
        pytest.param(f"Date: {d(-5)}", 0, 10, 15, id="apparent age"),
        pytest.param("Age: 30", -2, 10, 42, id="Age plus response delay"),
        pytest.param(f"Age: 3 | Date: {d(-20)}", -2, 0, 20, id="apparent age larger"),
        pytest.param(f"Date: {d(100)}", 0, 10, 10, id="Date in the future"),
        pytest.param("Age: ten", 0, 10, 10, id="invalid Age ignored"),
        pytest.param("Age: 5 | Age: 7", 0, 0, 7, id="largest Age"),
        pytest.param("Age: " + "9" * 30, 0, 0, 2147483648, id="huge Age"),
        pytest.param("", 0, -50, 0, id="clock went back"),
    ],
)
def test_current_age(fields: str, request_time: float, now: float, age: float) -> None:
    """RFC 9111 4.2.3: corrected_initial_age plus resident_time."""
    headers = Headers(_fields(fields))
    if b"date" not in headers:
        headers.add(b"Date", d())
    stored = StoredResponse(200, b"OK", headers, T0 + request_time, T0, b"")
    assert current_age(stored, T0 + now) == age


@pytest.mark.parametrize(
    ("age", "field"), [(0, b"0"), (10.9, b"10"), (2**40, b"2147483648")]
)
def test_age_field(age: float, field: bytes) -> None:
    """RFC 9111 5.1: Age is sent as an integer, at most 2**31."""
    assert age_field(age) == field


def test_time_to_live() -> None:
    """RFC 9211 2.8: ttl is the remaining freshness, negative when stale."""
    stored = _stored("Cache-Control: max-age=60")
    assert time_to_live(stored, T0 + 10.5, DEFAULT_SETTINGS) == 49
    assert time_to_live(stored, T0 + 70, DEFAULT_SETTINGS) == -10


# --- keys (RFC 9111 sections 2 and 4.1) -----------------------------------------


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
    stored = _stored(f"Vary: {vary}", request=_request(first))
    assert bool(select_variants(_request(second), [stored], DEFAULT_SETTINGS)) is match


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
    stored = _stored(request=_request(first), settings=configured)
    assert bool(select_variants(_request(second), [stored], configured)) is match


def test_variants_side_by_side() -> None:
    """RFC 9111 4.1: variants coexist; most recent match first; Vary * never."""
    french = _stored("Vary: Accept-Language", request=_request("Accept-Language: fr"))
    english = _request("Accept-Language: en")
    older = _stored(f"Vary: Accept-Language | Date: {d(-10)}", request=english)
    newer = _stored("Vary: Accept-Language", request=english)
    anything = _stored("Vary: *")
    variants = [anything, older, french, newer]
    assert select_variants(english, variants, DEFAULT_SETTINGS) == [newer, older]


# --- decisions (RFC 9111 section 4, RFC 5861) ------------------------------------

FRESH = "Cache-Control: max-age=60"
MUST = "Cache-Control: max-age=60, must-revalidate"
SWR = "Cache-Control: max-age=60, stale-while-revalidate=30"


@pytest.mark.parametrize(
    ("stored", "request_fields", "elapsed", "settings", "action", "status"),
    [
        pytest.param(FRESH, "", 10, {}, Action.SERVE, "hit; ttl=50", id="fresh"),
        pytest.param(
            FRESH, "", 70, {}, Action.REVALIDATE, "fwd=stale; ttl=-10", id="stale",
        ),
        pytest.param(
            FRESH, "", 60, {}, Action.REVALIDATE, "fwd=stale; ttl=0",
            id="age equals lifetime",
        ),
        pytest.param(
            "Cache-Control: no-cache, max-age=60", "", 10, {}, Action.REVALIDATE,
            "fwd=stale; ttl=50; detail=no-cache", id="response no-cache",
        ),
        pytest.param(
            'Cache-Control: no-cache="Set-Cookie", max-age=60', "", 10, {},
            Action.REVALIDATE, "fwd=stale; ttl=50; detail=no-cache",
            id="qualified no-cache",
        ),
        pytest.param(
            FRESH, "Cache-Control: no-cache", 10, {}, Action.REVALIDATE,
            "fwd=request; ttl=50", id="request no-cache",
        ),
        pytest.param(
            FRESH, "Pragma: no-cache", 10, {}, Action.REVALIDATE, "fwd=request; ttl=50",
            id="Pragma alone",
        ),
        pytest.param(
            FRESH, "Pragma: no-cache | Cache-Control: max-stale", 10, {}, Action.SERVE,
            "hit; ttl=50", id="Pragma beside Cache-Control",
        ),
        pytest.param(
            FRESH, "Pragma: no-cache", 10, {"honour_pragma": False}, Action.SERVE,
            "hit; ttl=50", id="Pragma not honoured",
        ),
        pytest.param(
            FRESH, "Cache-Control: max-age=0", 10, {}, Action.REVALIDATE,
            "fwd=request; ttl=50", id="request max-age=0",
        ),
        pytest.param(
            FRESH, "Cache-Control: max-age=20", 10, {}, Action.SERVE, "hit; ttl=50",
            id="request max-age met",
        ),
        pytest.param(
            FRESH, "Cache-Control: max-age=5", 10, {}, Action.REVALIDATE,
            "fwd=request; ttl=50", id="request max-age exceeded",
        ),
        pytest.param(
            FRESH, "Cache-Control: max-age=x", 10, {}, Action.REVALIDATE,
            "fwd=request; ttl=50", id="invalid request max-age",
        ),
        pytest.param(
            FRESH, "Cache-Control: min-fresh=40", 10, {}, Action.SERVE, "hit; ttl=50",
            id="min-fresh met",
        ),
        pytest.param(
            FRESH, "Cache-Control: min-fresh=55", 10, {}, Action.REVALIDATE,
            "fwd=request; ttl=50", id="min-fresh unmet",
        ),
        pytest.param(
            FRESH, "Cache-Control: max-stale", 1000, {}, Action.SERVE,
            "hit; ttl=-940; detail=max-stale", id="max-stale",
        ),
        pytest.param(
            FRESH, "Cache-Control: max-stale=20", 70, {}, Action.SERVE,
            "hit; ttl=-10; detail=max-stale", id="max-stale=20",
        ),
        pytest.param(
            FRESH, "Cache-Control: max-stale=5", 70, {}, Action.REVALIDATE,
            "fwd=stale; ttl=-10", id="max-stale exceeded",
        ),
        pytest.param(
            FRESH, "Cache-Control: max-stale=-3", 70, {}, Action.REVALIDATE,
            "fwd=stale; ttl=-10", id="invalid max-stale",
        ),
        pytest.param(
            MUST, "Cache-Control: max-stale", 70, {}, Action.REVALIDATE,
            "fwd=stale; ttl=-10", id="must-revalidate",
        ),
        pytest.param(
            "Cache-Control: max-age=60, proxy-revalidate", "Cache-Control: max-stale",
            70, {}, Action.REVALIDATE, "fwd=stale; ttl=-10", id="proxy-revalidate",
        ),
        pytest.param(
            "Cache-Control: s-maxage=60", "Cache-Control: max-stale", 70, {},
            Action.REVALIDATE, "fwd=stale; ttl=-10", id="s-maxage",
        ),
        pytest.param(
            MUST, "", 10, {}, Action.SERVE, "hit; ttl=50",
            id="must-revalidate while fresh",
        ),
        pytest.param(
            SWR, "", 80, {}, Action.SERVE_STALE,
            "hit; ttl=-20; detail=stale-while-revalidate", id="stale-while-revalidate",
        ),
        pytest.param(
            SWR, "", 100, {}, Action.REVALIDATE, "fwd=stale; ttl=-40",
            id="past stale-while-revalidate",
        ),
        pytest.param(
            SWR + ", must-revalidate", "", 80, {}, Action.REVALIDATE,
            "fwd=stale; ttl=-20", id="swr and must-revalidate",
        ),
        pytest.param(
            SWR, "Cache-Control: no-cache", 80, {}, Action.REVALIDATE,
            "fwd=stale; ttl=-20", id="swr and request no-cache",
        ),
        pytest.param(
            FRESH, "Cache-Control: only-if-cached", 10, {}, Action.SERVE, "hit; ttl=50",
            id="only-if-cached fresh",
        ),
        pytest.param(
            FRESH, "Cache-Control: only-if-cached", 70, {}, Action.REFUSE,
            "detail=only-if-cached", id="only-if-cached stale",
        ),
        pytest.param(
            "Expires: 0", "", 0, {}, Action.REVALIDATE, "fwd=stale; ttl=0",
            id="Expires 0",
        ),
        pytest.param(
            "Cache-Control: max-age=60, max-age=70", "", 10, {}, Action.REVALIDATE,
            "fwd=stale; ttl=-10", id="two max-age",
        ),
        pytest.param(
            f"Last-Modified: {d(-1000)}", "", 10, {}, Action.SERVE, "hit; ttl=90",
            id="heuristic",
        ),
        pytest.param(
            "", "", 10, {"default_ttl": 30}, Action.SERVE, "hit; ttl=20",
            id="default_ttl",
        ),
    ],
)  # fmt: skip
def test_decide(
    stored: str,
    request_fields: str,
    elapsed: float,
    settings: dict[str, Any],
    action: Action,
    status: str,
) -> None:
    """RFC 9111 4.2, 4.2.4, 5.2.1, 5.2.2; RFC 5861 3: reuse, or go forward and why."""
    configured = CacheSettings(**settings)
    request = _request(request_fields)
    response = _stored(stored, request=request, settings=configured)
    decision = decide(request, [response], T0 + elapsed, configured)
    value = decision.status.field_value().decode()
    assert (decision.action, value) == (action, f"edgeproxy; {status}")
    assert decision.selected is response
    assert decision.candidates == (response,)


@pytest.mark.parametrize(
    ("request_", "variants", "action", "status"),
    [
        pytest.param(
            _request(), [], Action.FORWARD, "fwd=uri-miss", id="nothing stored",
        ),
        pytest.param(
            _request("X-A: 2"), [_stored("Vary: X-A", request=_request("X-A: 1"))],
            Action.FORWARD, "fwd=vary-miss", id="no variant matches",
        ),
        pytest.param(
            _request(method=b"POST"), [_stored(FRESH)], Action.FORWARD, "fwd=method",
            id="unsafe method",
        ),
        pytest.param(
            _request("Range: bytes=0-9"), [_stored(FRESH)], Action.FORWARD,
            "fwd=bypass; detail=range", id="Range",
        ),
        pytest.param(
            _request("Cache-Control: only-if-cached"), [], Action.REFUSE,
            "detail=only-if-cached", id="only-if-cached miss",
        ),
        pytest.param(
            _request(method=b"HEAD"), [_stored(FRESH)], Action.SERVE, "hit; ttl=60",
            id="HEAD from a stored GET",
        ),
    ],
)  # fmt: skip
def test_decide_without_usable_variant(
    request_: RequestHead, variants: list[StoredResponse], action: Action, status: str
) -> None:
    """RFC 9111 4, 5.2.1.7; RFC 9211 2.2: misses and bypasses say why."""
    decision = decide(request_, variants, T0, DEFAULT_SETTINGS)
    value = decision.status.field_value().decode()
    assert (decision.action, value) == (action, f"edgeproxy; {status}")


# --- answering from the cache (RFC 9110 13, 15.4.5; RFC 9111 4.3.2) ---------------

VALIDATED = (
    f'Cache-Control: max-age=60 | ETag: "v1" | Last-Modified: {d(-100)}'
    " | Content-Type: text/plain | Content-Length: 5 | Vary: Accept-Encoding"
    " | Set-Cookie: s=1 | Age: 3"
)


@pytest.mark.parametrize(
    ("stored", "status", "request_fields", "answer"),
    [
        pytest.param(VALIDATED, 200, "", 200, id="unconditional"),
        pytest.param(
            VALIDATED, 200, 'If-None-Match: "x", W/"v1"', 304, id="weak match",
        ),
        pytest.param(VALIDATED, 200, "If-None-Match: *", 304, id="If-None-Match *"),
        pytest.param(
            VALIDATED, 200, f'If-None-Match: "x" | If-Modified-Since: {d()}', 200,
            id="If-None-Match first",
        ),
        pytest.param(
            VALIDATED, 200, f"If-Modified-Since: {d(-100)}", 304,
            id="not modified since",
        ),
        pytest.param(
            VALIDATED, 200, f"If-Modified-Since: {d(-101)}", 200, id="modified since",
        ),
        pytest.param(
            VALIDATED, 200, "If-Modified-Since: yesterday", 200, id="invalid date",
        ),
        pytest.param(
            VALIDATED, 200, f"If-Modified-Since: {d()} | If-Modified-Since: {d()}", 200,
            id="two dates",
        ),
        pytest.param(
            FRESH, 200, f"If-Modified-Since: {d()}", 304, id="Date for Last-Modified",
        ),
        pytest.param(
            VALIDATED, 200, 'If-Match: "other"', 200, id="If-Match not for caches",
        ),
        pytest.param(
            VALIDATED, 404, 'If-None-Match: "v1"', 404, id="only a 200 gives 304",
        ),
    ],
)  # fmt: skip
def test_served_response_status(
    stored: str, status: int, request_fields: str, answer: int
) -> None:
    """RFC 9111 4.3.2, RFC 9110 13.2.2: the client's validators against a stored 200."""
    response = _stored(stored, status=status)
    head = served_response(_request(request_fields), response, T0 + 10)
    assert head.status == answer


def test_served_response_fields() -> None:
    """RFC 9111 5.1: a served response has the stored fields and its current Age."""
    stored = _stored(VALIDATED)
    head = served_response(_request(), stored, T0 + 10.7)
    expected = [pair for pair in _fields(VALIDATED) if pair[0] != b"Age"]
    assert head.headers.pairs == [*expected, (b"Date", d().encode()), (b"Age", b"13")]
    assert stored.headers.get(b"age") == b"3", "the stored response is unchanged"


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        pytest.param(
            VALIDATED,
            'Cache-Control: max-age=60 | ETag: "v1" | Vary: Accept-Encoding'
            f" | Date: {d()}"
            " | Age: 16",
            id="listed fields and Age",
        ),
        pytest.param(
            f"Last-Modified: {d(-9)} | Expires: {d(60)} | Content-Location: /a.txt",
            f"Last-Modified: {d(-9)} | Expires: {d(60)} | Content-Location: /a.txt"
            f" | Date: {d()} | Age: 13",
            id="Last-Modified when no ETag",
        ),
    ],
)
def test_not_modified_fields(stored: str, expected: str) -> None:
    """RFC 9110 15.4.5: a 304 carries only what guides cache updates."""
    head = served_response(_request("If-None-Match: *"), _stored(stored), T0 + 13)
    assert (head.status, head.reason) == (304, b"Not Modified")
    assert head.headers.pairs == _fields(expected)


def test_not_modified_for_forwarded_response() -> None:
    """RFC 9110 13.1.2: a full response fetched for a miss can still answer 304."""
    response = ResponseHead(
        200, b"OK", Headers(_fields('ETag: "v1" | Content-Length: 5'))
    )
    assert not_modified(_request(), response, T0) is None
    answer = not_modified(_request('If-None-Match: "v1"'), response, T0)
    assert answer is not None
    assert (answer.status, answer.headers.pairs) == (304, _fields('ETag: "v1"'))
    post = _request('If-None-Match: "v1"', b"POST")
    assert not_modified(post, response, T0) is None, "only GET and HEAD"


# --- going forward (RFC 9111 4.3.1) -----------------------------------------------


@pytest.mark.parametrize(
    ("request_", "stripped"),
    [
        pytest.param(
            _request(f'If-None-Match: "a" | IF-MODIFIED-SINCE: {d()}'), True, id="GET",
        ),
        pytest.param(
            _request('If-None-Match: "a"', b"HEAD"), False, id="HEAD is not stored",
        ),
        pytest.param(
            _request('If-None-Match: "a" | Cache-Control: no-store'), False,
            id="no-store",
        ),
        pytest.param(
            _request('If-None-Match: "a" | Range: bytes=0-1'), False, id="Range",
        ),
    ],
)  # fmt: skip
def test_forward_request(request_: RequestHead, stripped: bool) -> None:
    """A miss that may be stored asks for a full response, not for a 304."""
    forwarded = forward_request(request_)
    kept = [p for p in request_.headers.pairs if not p[0].lower().startswith(b"if-")]
    assert forwarded.headers.pairs == (kept if stripped else request_.headers.pairs)


def test_forward_request_unchanged() -> None:
    """A request with nothing to remove is sent as it is."""
    request = _request("Accept: */*")
    assert forward_request(request) is request


@pytest.mark.parametrize(
    ("stored", "method", "expected"),
    [
        pytest.param(
            [f'ETag: "v1" | Last-Modified: {d(-9)}'], None,
            f'If-None-Match: "v1" | If-Modified-Since: {d(-9)}', id="one response",
        ),
        pytest.param(
            ['ETag: W/"v1"', f'ETag: "v2" | Last-Modified: {d(-9)}', 'ETag: W/"v1"'],
            None, 'If-None-Match: W/"v1", "v2"', id="every entity-tag, no date",
        ),
        pytest.param(["Last-Modified: garbage"], None, "", id="invalid date not sent"),
        pytest.param([""], b"GET", "", id="no validators, background GET"),
    ],
)  # fmt: skip
def test_revalidation_request(
    stored: list[str], method: bytes | None, expected: str
) -> None:
    """RFC 9111 4.3.1: the cache's validators replace the client's."""
    client = _request(
        f'If-None-Match: "mine" | If-Modified-Since: {d(-5)} | Accept: */*', b"HEAD"
    )
    decision = _decision(*(_stored(fields) for fields in stored))
    request = revalidation_request(client, decision, method)
    assert request.method == (method or b"HEAD")
    assert request.headers.pairs == _fields(
        f"Host: app.example | Accept: */* | {expected}"
    )
    assert len(client.headers) == 4, "the client's request is unchanged"


# --- freshening (RFC 9111 3.2, 4.3.3 to 4.3.5) -------------------------------------


def _freshen(
    stored: list[str], status: int, fields: str, method: bytes = b"GET"
) -> tuple[list[int], list[int]]:
    """Freshen the responses ``stored``; the indexes updated and removed."""
    candidates = [
        _stored(f"{fields} | X-Index: {n}") for n, fields in enumerate(stored)
    ]
    response = ResponseHead(status, b"", Headers(_fields(fields)))
    result = freshen(_request(method=method), _decision(*candidates), response, T0, T0)
    updated = [candidates.index(old) for old, _ in result.updated]
    assert result.serve == (result.updated[0][1] if result.updated else None)
    return updated, [candidates.index(old) for old in result.removed]


@pytest.mark.parametrize(
    ("stored", "fields", "updated"),
    [
        pytest.param(
            ['ETag: "a"', 'ETag: "b"', 'ETag: "b"'], 'ETag: "b"', [1, 2],
            id="strong: every match",
        ),
        pytest.param(['ETag: "a"'], 'ETag: "z"', [], id="strong: no match, no update"),
        pytest.param(['ETag: W/"a"'], 'ETag: "a"', [], id="strong needs a strong tag"),
        pytest.param(
            ['ETag: "a"', 'ETag: W/"a"'], 'ETag: W/"a"', [0], id="weak: most recent",
        ),
        pytest.param(
            [f'ETag: "a" | Last-Modified: {d(-9)}', f"Last-Modified: {d(-9)}"],
            f"Last-Modified: {d(-9)}", [0], id="date: most recent",
        ),
        pytest.param(
            [f"Last-Modified: {d(-8)}"], f"Last-Modified: {d(-9)}", [], id="other date",
        ),
        pytest.param([""], "", [0], id="no validators anywhere"),
        pytest.param(['ETag: "a"'], "", [], id="no validator in the 304"),
        pytest.param(["", ""], "", [], id="no validators, two candidates"),
    ],
)  # fmt: skip
def test_freshen_selection(stored: list[str], fields: str, updated: list[int]) -> None:
    """RFC 9111 4.3.4: which stored responses a 304 updates."""
    assert _freshen(stored, 304, fields) == (updated, [])


@pytest.mark.parametrize(
    ("stored", "fields", "updated", "removed"),
    [
        pytest.param(
            ['ETag: "a" | Content-Length: 5'], 'ETag: "a" | Content-Length: 5', [0], [],
            id="same tag and length",
        ),
        pytest.param(
            ['ETag: "a" | Content-Length: 5'], 'ETag: "b"', [], [0], id="other tag",
        ),
        pytest.param(
            ['ETag: "a" | Content-Length: 5'], 'ETag: "a" | Content-Length: 6', [], [0],
            id="other length",
        ),
        pytest.param(
            [f"Last-Modified: {d(-9)}", f"Last-Modified: {d(-8)}"],
            f"Last-Modified: {d(-9)}", [0], [1], id="by date",
        ),
        pytest.param(['ETag: "a"'], "", [0], [], id="nothing to compare"),
    ],
)  # fmt: skip
def test_freshen_with_head(
    stored: list[str], fields: str, updated: list[int], removed: list[int]
) -> None:
    """RFC 9111 4.3.5: a 200 to HEAD updates matching GET responses, drops others."""
    assert _freshen(stored, 200, fields, method=b"HEAD") == (updated, removed)


@pytest.mark.parametrize("status", [200, 404, 500])
def test_freshen_other_responses(status: int) -> None:
    """RFC 9111 4.3.3: a full response to GET updates nothing (it replaces)."""
    assert _freshen(['ETag: "a"'], status, 'ETag: "a"') == ([], [])


def test_freshen_fields() -> None:
    """RFC 9111 3.2: a 304's fields replace the stored ones, framing excepted."""
    stored = _stored(
        'Cache-Control: max-age=60 | ETag: "a" | Content-Length: 5'
        " | Content-Type: text/plain | X-Old: 1 | Age: 30"
    )
    response = ResponseHead(
        304,
        b"",
        Headers(
            _fields(
                'cache-control: max-age=120 | ETag: "a" | Content-Length: 0'
                " | Connection: X-Hop | X-Hop: 1 | X-New: 2"
            )
        ),
    )
    result = freshen(_request(), _decision(stored), response, T0 + 99, T0 + 100)
    assert result.serve is not None
    assert result.serve.headers.pairs == _fields(
        "Content-Length: 5 | Content-Type: text/plain | X-Old: 1"
        f' | cache-control: max-age=120 | ETag: "a" | X-New: 2 | Date: {d(100)}'
    )
    assert (result.serve.request_time, result.serve.response_time) == (
        T0 + 99,
        T0 + 100,
    )
    # The age restarts from the 304: one second in flight, then residence.
    assert current_age(result.serve, T0 + 110) == 11
    assert decide(_request(), [result.serve], T0 + 110).action is Action.SERVE


@pytest.mark.parametrize(
    "cache_control",
    ["no-store", "private", "max-age=60 | Vary: *"],
    ids=["no-store", "private", "Vary *"],
)
def test_freshen_forbids_storage(cache_control: str) -> None:
    """RFC 9111 3, 4.3.4: a 304 that forbids storing drops the stored response."""
    stored = _stored('ETag: "a" | Cache-Control: max-age=60')
    fields = f'ETag: "a" | Cache-Control: {cache_control}'
    response = ResponseHead(304, b"", Headers(_fields(fields)))
    result = freshen(_request(), _decision(stored), response, T0, T0)
    assert (result.updated, result.removed, result.serve) == ((), (stored,), None)


def test_freshen_moves_variant() -> None:
    """RFC 9111 4.3.4: a 304 with a new Vary re-keys the response; Vary * drops it."""
    stored = _stored('ETag: "a"')
    request = _request("X-A: 1")
    varied = ResponseHead(304, b"", Headers(_fields('ETag: "a" | Vary: X-A')))
    result = freshen(request, _decision(stored), varied, T0, T0)
    assert result.serve is not None
    assert select_variants(request, [result.serve], DEFAULT_SETTINGS) == [result.serve]
    assert select_variants(_request(), [result.serve], DEFAULT_SETTINGS) == []
    starred = ResponseHead(304, b"", Headers(_fields('ETag: "a" | Vary: *')))
    gone = freshen(request, _decision(stored), starred, T0, T0)
    assert (gone.updated, gone.removed, gone.serve) == ((), (stored,), None)


# --- stale-if-error (RFC 5861 4, RFC 9111 4.2.4) -----------------------------------

SIE = "Cache-Control: max-age=60, stale-if-error=30"


@pytest.mark.parametrize(
    ("stored", "request_fields", "elapsed", "settings", "usable"),
    [
        pytest.param(SIE, "", 80, {}, True, id="within stale-if-error"),
        pytest.param(SIE, "", 100, {}, False, id="past stale-if-error"),
        pytest.param(FRESH, "", 80, {}, False, id="not by default"),
        pytest.param(
            FRESH, "", 80, {"stale_if_error": 30}, True, id="configured floor",
        ),
        pytest.param(
            FRESH, "Cache-Control: stale-if-error=30", 80, {}, True,
            id="asked by the request",
        ),
        pytest.param(
            MUST, "", 80, {"stale_if_error": 30}, False,
            id="must-revalidate beats the floor",
        ),
        pytest.param(
            SIE + ", proxy-revalidate", "", 80, {}, False,
            id="proxy-revalidate beats it",
        ),
        pytest.param(
            "Cache-Control: s-maxage=60", "", 80, {"stale_if_error": 30}, False,
            id="s-maxage beats the floor",
        ),
        pytest.param(
            "Cache-Control: no-cache, " + SIE[15:], "", 10, {}, False,
            id="never for no-cache",
        ),
        pytest.param(
            MUST + ", stale-if-error=0", "Cache-Control: no-cache", 10, {}, True,
            id="still fresh",
        ),
    ],
)  # fmt: skip
def test_usable_after_error(
    stored: str,
    request_fields: str,
    elapsed: float,
    settings: dict[str, Any],
    usable: bool,
) -> None:
    """RFC 5861 4, RFC 9111 4.2.4: when a stale response stands in for the origin."""
    response = _stored(stored)
    configured = CacheSettings(**settings)
    request = _request(request_fields)
    assert usable_after_error(request, response, T0 + elapsed, configured) is usable


# --- invalidation (RFC 9111 4.4) ----------------------------------------------------

TARGET = b"https://app.example/a"


@pytest.mark.parametrize(
    ("method", "status", "fields", "keys"),
    [
        pytest.param(b"POST", 200, "", [TARGET], id="POST"),
        pytest.param(b"DELETE", 204, "", [TARGET], id="DELETE"),
        pytest.param(b"PURGE", 302, "", [TARGET], id="unknown method is unsafe"),
        pytest.param(b"POST", 404, "", [], id="client error"),
        pytest.param(b"POST", 500, "", [], id="server error"),
        pytest.param(b"GET", 200, "", [], id="GET"),
        pytest.param(b"OPTIONS", 200, "", [], id="OPTIONS"),
        pytest.param(
            b"PUT", 201, "Location: /items/7#top | Content-Location: https://APP.example:443/a.json?x",
            [TARGET, b"https://app.example/items/7", b"https://app.example/a.json?x"],
            id="same-origin Location and Content-Location",
        ),
        pytest.param(
            b"POST", 303, "Location: b", [TARGET, b"https://app.example/b"],
            id="relative",
        ),
        pytest.param(
            b"POST", 200, "Location: https://other.example/a", [TARGET],
            id="other host",
        ),
        pytest.param(
            b"POST", 200, "Location: http://app.example/x", [TARGET], id="other scheme",
        ),
        pytest.param(
            b"POST", 200, "Location: https://app.example:8443/x", [TARGET],
            id="other port",
        ),
        pytest.param(
            b"POST", 200, "Content-Location: //evil.example/x", [TARGET],
            id="network-path",
        ),
        pytest.param(b"POST", 200, "Location: http://[bad", [TARGET], id="unparsable"),
        pytest.param(b"POST", 200, "Location: /a", [TARGET], id="no duplicates"),
    ],
)  # fmt: skip
def test_invalidated_keys(
    method: bytes, status: int, fields: str, keys: list[bytes]
) -> None:
    """RFC 9111 4.4: unsafe methods invalidate the target and same-origin locations."""
    response = ResponseHead(status, b"", Headers(_fields(fields)))
    request = _request(method=method)
    assert invalidated_keys(request, response, b"https", b"app.example") == keys


# --- Cache-Status (RFC 9211) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "name", "value"),
    [
        pytest.param(
            CacheStatus(hit=True, ttl=30), b"edgeproxy", b"edgeproxy; hit; ttl=30",
            id="hit",
        ),
        pytest.param(
            CacheStatus(fwd="uri-miss").forwarded(200, stored=True, ttl=60),
            b"edgeproxy", b"edgeproxy; fwd=uri-miss; fwd-status=200; stored; ttl=60",
            id="miss stored",
        ),
        pytest.param(
            CacheStatus(fwd="miss").forwarded(200, stored=True), b"edgeproxy",
            b"edgeproxy; fwd=miss; fwd-status=200; stored", id="fwd=miss",
        ),
        pytest.param(
            CacheStatus(fwd="stale", detail="stale-if-error").forwarded(503, ttl=-5),
            b"edgeproxy",
            b"edgeproxy; fwd=stale; fwd-status=503; ttl=-5; detail=stale-if-error",
            id="stale-if-error",
        ),
        pytest.param(
            CacheStatus(fwd="vary-miss", collapsed=True), b"edgeproxy",
            b"edgeproxy; fwd=vary-miss; collapsed", id="collapsed",
        ),
        pytest.param(
            CacheStatus(fwd="request", detail='two "words"'), b"edgeproxy",
            b'edgeproxy; fwd=request; detail="two \\"words\\""', id="detail string",
        ),
        pytest.param(
            CacheStatus(hit=True), b"edge cache", b'"edge cache"; hit',
            id="name string",
        ),
    ],
)  # fmt: skip
def test_cache_status(status: CacheStatus, name: bytes, value: bytes) -> None:
    """RFC 9211 2: one list member per cache, with its parameters."""
    assert status.field_value(name) == value
