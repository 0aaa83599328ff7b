"""Tests for edgeproxy.core.caching.freshening: what a 304 does to stored responses."""

from __future__ import annotations

import pytest

from edgeproxy.core.caching.decision import Action, decide
from edgeproxy.core.caching.freshening import freshen
from edgeproxy.core.caching.freshness import current_age
from edgeproxy.core.caching.keys import select_variants
from edgeproxy.core.caching.settings import DEFAULT_SETTINGS
from edgeproxy.core.message import Headers, ResponseHead
from tests.core.caching.examples import (
    T0,
    d,
    header_pairs,
    request_head,
    revalidating,
    stored_response,
)


def _freshen(
    stored: list[str], status: int, fields: str, method: bytes = b"GET"
) -> tuple[list[int], list[int]]:
    """Freshen the responses ``stored``; the indexes updated and removed."""
    candidates = [
        stored_response(f"{fields} | X-Index: {n}") for n, fields in enumerate(stored)
    ]
    response = ResponseHead(status, b"", Headers(header_pairs(fields)))
    result = freshen(
        request_head(method=method), revalidating(*candidates), response, T0, T0
    )
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
    stored = stored_response(
        'Cache-Control: max-age=60 | ETag: "a" | Content-Length: 5'
        " | Content-Type: text/plain | X-Old: 1 | Age: 30"
    )
    response = ResponseHead(
        304,
        b"",
        Headers(
            header_pairs(
                'cache-control: max-age=120 | ETag: "a" | Content-Length: 0'
                " | Connection: X-Hop | X-Hop: 1 | X-New: 2"
            )
        ),
    )
    result = freshen(request_head(), revalidating(stored), response, T0 + 99, T0 + 100)
    assert result.serve is not None
    assert result.serve.headers.pairs == header_pairs(
        "Content-Length: 5 | Content-Type: text/plain | X-Old: 1"
        f' | cache-control: max-age=120 | ETag: "a" | X-New: 2 | Date: {d(100)}'
    )
    assert (result.serve.request_time, result.serve.response_time) == (
        T0 + 99,
        T0 + 100,
    )
    # The age restarts from the 304: one second in flight, then residence.
    assert current_age(result.serve, T0 + 110) == 11
    assert decide(request_head(), [result.serve], T0 + 110).action is Action.SERVE


@pytest.mark.parametrize(
    "cache_control",
    ["no-store", "private", "max-age=60 | Vary: *"],
    ids=["no-store", "private", "Vary *"],
)
def test_freshen_forbids_storage(cache_control: str) -> None:
    """RFC 9111 3, 4.3.4: a 304 that forbids storing drops the stored response."""
    stored = stored_response('ETag: "a" | Cache-Control: max-age=60')
    fields = f'ETag: "a" | Cache-Control: {cache_control}'
    response = ResponseHead(304, b"", Headers(header_pairs(fields)))
    result = freshen(request_head(), revalidating(stored), response, T0, T0)
    assert (result.updated, result.removed, result.serve) == ((), (stored,), None)


def test_freshen_moves_variant() -> None:
    """RFC 9111 4.3.4: a 304 with a new Vary re-keys the response; Vary * drops it."""
    stored = stored_response('ETag: "a"')
    request = request_head("X-A: 1")
    varied = ResponseHead(304, b"", Headers(header_pairs('ETag: "a" | Vary: X-A')))
    result = freshen(request, revalidating(stored), varied, T0, T0)
    assert result.serve is not None
    assert select_variants(request, [result.serve], DEFAULT_SETTINGS) == [result.serve]
    assert select_variants(request_head(), [result.serve], DEFAULT_SETTINGS) == []
    starred = ResponseHead(304, b"", Headers(header_pairs('ETag: "a" | Vary: *')))
    gone = freshen(request, revalidating(stored), starred, T0, T0)
    assert (gone.updated, gone.removed, gone.serve) == ((), (stored,), None)
