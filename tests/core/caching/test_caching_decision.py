"""Tests for edgeproxy.core.caching.decision: reuse, revalidation and stale-if-error."""

from __future__ import annotations

from typing import Any

import pytest

from edgeproxy.core.caching.decision import Action, decide, usable_after_error
from edgeproxy.core.caching.settings import DEFAULT_SETTINGS, CacheSettings
from edgeproxy.core.caching.stored_response import StoredResponse
from edgeproxy.core.message import RequestHead
from tests.core.caching.examples import (
    FRESH,
    MUST,
    T0,
    d,
    request_head,
    stored_response,
)

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
    request = request_head(request_fields)
    response = stored_response(stored, request=request, settings=configured)
    decision = decide(request, [response], T0 + elapsed, configured)
    value = decision.status.field_value().decode()
    assert (decision.action, value) == (action, f"edgeproxy; {status}")
    assert decision.selected is response
    assert decision.candidates == (response,)


@pytest.mark.parametrize(
    ("request_", "variants", "action", "status"),
    [
        pytest.param(
            request_head(), [], Action.FORWARD, "fwd=uri-miss", id="nothing stored",
        ),
        pytest.param(
            request_head("X-A: 2"),
            [stored_response("Vary: X-A", request=request_head("X-A: 1"))],
            Action.FORWARD, "fwd=vary-miss", id="no variant matches",
        ),
        pytest.param(
            request_head(method=b"POST"), [stored_response(FRESH)], Action.FORWARD,
            "fwd=method", id="unsafe method",
        ),
        pytest.param(
            request_head("Range: bytes=0-9"), [stored_response(FRESH)], Action.FORWARD,
            "fwd=bypass; detail=range", id="Range",
        ),
        pytest.param(
            request_head("Cache-Control: only-if-cached"), [], Action.REFUSE,
            "detail=only-if-cached", id="only-if-cached miss",
        ),
        pytest.param(
            request_head(method=b"HEAD"), [stored_response(FRESH)], Action.SERVE,
            "hit; ttl=60", id="HEAD from a stored GET",
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
    response = stored_response(stored)
    configured = CacheSettings(**settings)
    request = request_head(request_fields)
    assert usable_after_error(request, response, T0 + elapsed, configured) is usable
