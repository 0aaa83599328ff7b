"""Tests for edgeproxy.core.caching.validation: conditional requests and 304s."""

from __future__ import annotations

import pytest

from edgeproxy.core.caching.validation import (
    forward_request,
    not_modified,
    revalidation_request,
    served_response,
)
from edgeproxy.core.message import Headers, RequestHead, ResponseHead
from tests.core.caching.examples import (
    FRESH,
    T0,
    d,
    header_pairs,
    request_head,
    revalidating,
    stored_response,
)

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
    response = stored_response(stored, status=status)
    head = served_response(request_head(request_fields), response, T0 + 10)
    assert head.status == answer


def test_served_response_fields() -> None:
    """RFC 9111 5.1: a served response has the stored fields and its current Age."""
    stored = stored_response(VALIDATED)
    head = served_response(request_head(), stored, T0 + 10.7)
    expected = [pair for pair in header_pairs(VALIDATED) if pair[0] != b"Age"]
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
    head = served_response(
        request_head("If-None-Match: *"), stored_response(stored), T0 + 13
    )
    assert (head.status, head.reason) == (304, b"Not Modified")
    assert head.headers.pairs == header_pairs(expected)


def test_not_modified_for_forwarded_response() -> None:
    """RFC 9110 13.1.2: a full response fetched for a miss can still answer 304."""
    response = ResponseHead(
        200, b"OK", Headers(header_pairs('ETag: "v1" | Content-Length: 5'))
    )
    assert not_modified(request_head(), response, T0) is None
    answer = not_modified(request_head('If-None-Match: "v1"'), response, T0)
    assert answer is not None
    assert (answer.status, answer.headers.pairs) == (304, header_pairs('ETag: "v1"'))
    post = request_head('If-None-Match: "v1"', b"POST")
    assert not_modified(post, response, T0) is None, "only GET and HEAD"


@pytest.mark.parametrize(
    ("request_", "stripped"),
    [
        pytest.param(
            request_head(f'If-None-Match: "a" | IF-MODIFIED-SINCE: {d()}'), True,
            id="GET",
        ),
        pytest.param(
            request_head('If-None-Match: "a"', b"HEAD"), False, id="HEAD is not stored",
        ),
        pytest.param(
            request_head('If-None-Match: "a" | Cache-Control: no-store'), False,
            id="no-store",
        ),
        pytest.param(
            request_head('If-None-Match: "a" | Range: bytes=0-1'), False, id="Range",
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
    request = request_head("Accept: */*")
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
    client = request_head(
        f'If-None-Match: "mine" | If-Modified-Since: {d(-5)} | Accept: */*', b"HEAD"
    )
    decision = revalidating(*(stored_response(fields) for fields in stored))
    request = revalidation_request(client, decision, method)
    assert request.method == (method or b"HEAD")
    assert request.headers.pairs == header_pairs(
        f"Host: app.example | Accept: */* | {expected}"
    )
    assert len(client.headers) == 4, "the client's request is unchanged"
