"""Tests for edgeproxy.core.caching.ranges: single byte ranges of a stored body."""

from __future__ import annotations

import pytest

from edgeproxy.core.caching.ranges import byte_span, single_range, without_range
from tests.core.caching.examples import header_pairs, request_head


@pytest.mark.parametrize(
    ("fields", "wanted"),
    [
        pytest.param("Range: bytes=0-4", (0, 4), id="first and last"),
        pytest.param("Range: bytes=5-", (5, -1), id="open end"),
        pytest.param("Range: bytes=-3", (-1, 3), id="suffix"),
        pytest.param("", None, id="no Range"),
        pytest.param("Range: bytes=-", None, id="neither end"),
        pytest.param("Range: bytes=4-2", None, id="last before first"),
        pytest.param("Range: bytes=0-1, 3-4", None, id="two ranges"),
        pytest.param("Range: bytes=0-1 | Range: bytes=3-4", None, id="two fields"),
        pytest.param("Range: items=0-1", None, id="other unit"),
        pytest.param('Range: bytes=0-1 | If-Range: "v1"', None, id="If-Range"),
    ],
)
def test_single_range(fields: str, wanted: tuple[int, int] | None) -> None:
    """RFC 9110 14.1.2: only one bytes= range without If-Range is cut from the store."""
    assert single_range(request_head(fields)) == wanted


@pytest.mark.parametrize(
    ("wanted", "size", "span"),
    [
        pytest.param((0, 4), 10, (0, 4), id="inside"),
        pytest.param((5, -1), 10, (5, 9), id="to the end"),
        pytest.param((5, 99), 10, (5, 9), id="last past the end"),
        pytest.param((-1, 3), 10, (7, 9), id="suffix"),
        pytest.param((-1, 99), 10, (0, 9), id="suffix longer than the body"),
        pytest.param((10, -1), 10, None, id="first past the end"),
        pytest.param((-1, 0), 10, None, id="empty suffix"),
        pytest.param((0, -1), 0, None, id="empty body"),
    ],
)
def test_byte_span(
    wanted: tuple[int, int], size: int, span: tuple[int, int] | None
) -> None:
    """RFC 9110 14.1.1: the bytes a range selects; None when unsatisfiable (416)."""
    assert byte_span(wanted, size) == span


def test_without_range() -> None:
    """The request without Range is a copy: the client's request is unchanged."""
    request = request_head("Range: bytes=0-1 | Accept: */* | range: bytes=2-3")
    stripped = without_range(request)
    assert stripped.headers.pairs == header_pairs("Host: app.example | Accept: */*")
    assert len(request.headers) == 4
