"""Tests for edgeproxy.core.caching.freshness: freshness lifetime and age."""

from __future__ import annotations

from typing import Any

import pytest

from edgeproxy.core.caching.freshness import (
    age_field,
    current_age,
    freshness_lifetime,
    time_to_live,
)
from edgeproxy.core.caching.settings import DEFAULT_SETTINGS, CacheSettings
from edgeproxy.core.caching.stored_response import StoredResponse
from edgeproxy.core.message import Headers
from tests.core.caching.examples import (
    T0,
    d,
    header_pairs,
    stored_response,
)


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
    stored = stored_response(fields, status=status)
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
    headers = Headers(header_pairs(fields))
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
    stored = stored_response("Cache-Control: max-age=60")
    assert time_to_live(stored, T0 + 10.5, DEFAULT_SETTINGS) == 49
    assert time_to_live(stored, T0 + 70, DEFAULT_SETTINGS) == -10
