"""Tests for edgeproxy.core.message: header fields as an ordered list of pairs."""

from __future__ import annotations

import pytest

from edgeproxy.core.message import Headers, headers_of

FIELDS = [
    (b"Host", b"a.example"),
    (b"Accept", b"text/html"),
    (b"accept", b"*/*"),
    (b"X-Caf\xe9", b"cr\xe8me"),
]


@pytest.mark.parametrize(
    ("name", "first", "every"),
    [
        (b"accept", b"text/html", [b"text/html", b"*/*"]),
        ("ACCEPT", b"text/html", [b"text/html", b"*/*"]),
        (b"HOST", b"a.example", [b"a.example"]),
        ("x-café", b"cr\xe8me", [b"cr\xe8me"]),
        (b"missing", None, []),
    ],
)
def test_lookups_ignore_case_and_take_str_names(
    name: bytes | str, first: bytes | None, every: list[bytes]
) -> None:
    """get, get_all and ``in`` find fields by name in any case, bytes or str."""
    headers = Headers(FIELDS)
    assert headers.get(name) == first
    assert headers.get_all(name) == every
    assert (name in headers) is bool(every)


def test_get_default_and_odd_membership() -> None:
    """get falls back to its default; only names can be in Headers."""
    headers = Headers(FIELDS)
    assert headers.get(b"missing", b"none") == b"none"
    assert 42 not in headers


def test_headers_of_holds_the_list_itself() -> None:
    """headers_of wraps a list without copying; the constructor copies."""
    pairs = list(FIELDS)
    held = headers_of(pairs)
    copied = Headers(pairs)
    held.add(b"X-New", b"1")
    assert pairs[-1] == (b"X-New", b"1")
    assert copied.pairs == FIELDS


def test_copy_is_independent() -> None:
    """A copy keeps the fields and order, and changes apart from its original."""
    original = Headers(FIELDS)
    copy = original.copy()
    assert copy == original
    copy.set(b"Accept", b"image/png")
    assert original.get_all(b"accept") == [b"text/html", b"*/*"]
    assert copy.get_all(b"accept") == [b"image/png"]
