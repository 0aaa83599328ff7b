"""Tests for edgeproxy.core.cache_control: the fields a cache reads."""

from __future__ import annotations

import pytest

from edgeproxy.core.cache_control import (
    DELTA_SECONDS_MAX,
    INVALID,
    EntityTag,
    delta_seconds,
    field_name_list,
    format_http_date,
    parse_cache_control,
    parse_entity_tag,
    parse_entity_tag_list,
    parse_http_date,
    pragma_no_cache,
)

# Sun, 06 Nov 1994 08:49:37 GMT, the example of RFC 9110 section 5.6.7.
_EXAMPLE_DATE = 784111777


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param(
            [b"max-age=60"], {"max-age": [b"60"]}, id="one directive with argument"
        ),
        pytest.param(
            [b"Max-Age=60, NO-STORE"],
            {"max-age": [b"60"], "no-store": [None]},
            id="names are case-insensitive",
        ),
        pytest.param(
            [b' \tpublic ,  max-age = 5 ,,, s-maxage="7"\t'],
            {"public": [None], "max-age": [b"5"], "s-maxage": [b"7"]},
            id="whitespace, empty members and quoted numbers",
        ),
        pytest.param(
            [b"max-age=5", b"no-cache"],
            {"max-age": [b"5"], "no-cache": [None]},
            id="repeated field lines are one list",
        ),
        pytest.param(
            [b'no-cache="Set-Cookie, X-Token", max-age=5'],
            {"no-cache": [b"Set-Cookie, X-Token"], "max-age": [b"5"]},
            id="comma inside a quoted-string does not split",
        ),
        pytest.param(
            [b'private="a\\"b\\\\c"'],
            {"private": [b'a"b\\c']},
            id="backslash escapes in a quoted-string",
        ),
        pytest.param(
            [b'private="X-A" junk, max-age=1'],
            {"private": [b"X-A"], "max-age": [b"1"]},
            id="junk after a quoted-string is skipped",
        ),
        pytest.param(
            [b'no-cache="X-A, max-age=1'],
            {"no-cache": [b"X-A, max-age=1"]},
            id="unterminated quoted-string runs to the end of the line",
        ),
        pytest.param(
            [b"max age=5, m@x=1, =3, max-stale"],
            {"max-stale": [None]},
            id="members whose name is not a token are skipped",
        ),
        pytest.param(
            [b"max-age=1, max-age=2"],
            {"max-age": [b"1", b"2"]},
            id="every occurrence is kept",
        ),
        pytest.param([b"", b" , "], {}, id="empty fields"),
        pytest.param(
            [b"community=UCI, stale-while-revalidate=30"],
            {"community": [b"UCI"], "stale-while-revalidate": [b"30"]},
            id="unknown directives are kept for the policy to ignore",
        ),
    ],
)
def test_parse_cache_control(
    values: list[bytes], expected: dict[str, list[bytes | None]]
) -> None:
    """RFC 9111 5.2: directives are read robustly from every field line."""
    assert parse_cache_control(values).directives == expected


@pytest.mark.parametrize(
    ("argument", "expected"),
    [
        pytest.param(b"0", 0, id="zero"),
        pytest.param(b"0060", 60, id="leading zeros"),
        pytest.param(b"2147483647", 2147483647, id="just below 2**31"),
        pytest.param(b"2147483649", DELTA_SECONDS_MAX, id="above 2**31 is capped"),
        pytest.param(b"9" * 400, DELTA_SECONDS_MAX, id="hundreds of digits capped"),
        pytest.param(b"-1", INVALID, id="negative"),
        pytest.param(b"+5", INVALID, id="sign"),
        pytest.param(b"1.5", INVALID, id="fraction"),
        pytest.param(b"1e3", INVALID, id="exponent"),
        pytest.param(b"5 5", INVALID, id="space inside"),
        pytest.param(b"", INVALID, id="empty"),
        pytest.param(None, INVALID, id="missing"),
        pytest.param("٣".encode(), INVALID, id="non-ASCII digit"),
    ],
)
def test_delta_seconds(argument: bytes | None, expected: int) -> None:
    """RFC 9111 1.2.2: 1*DIGIT only; too large reads as 2147483648."""
    assert delta_seconds(argument) == expected


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param([], None, id="absent"),
        pytest.param([b"max-age=5"], 5, id="valid"),
        pytest.param([b"max-age=5, max-age=5"], 5, id="identical repeats agree"),
        pytest.param([b"max-age=5", b"max-age=6"], INVALID, id="repeats conflict"),
        pytest.param([b"max-age"], INVALID, id="no argument"),
        pytest.param([b"max-age=soon"], INVALID, id="not a number"),
    ],
)
def test_seconds(values: list[bytes], expected: int | None) -> None:
    """RFC 9111 4.2.1: conflicting or invalid freshness reads as INVALID."""
    assert parse_cache_control(values).seconds("max-age") == expected


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param([], None, id="absent"),
        pytest.param([b"private"], None, id="unqualified"),
        pytest.param([b'private=""'], None, id="qualified with nothing"),
        pytest.param(
            [b'private="Set-Cookie, X-User"'],
            frozenset({b"set-cookie", b"x-user"}),
            id="names lower-cased",
        ),
        pytest.param(
            [b'private="X-A"', b"private=X-B"],
            frozenset({b"x-a", b"x-b"}),
            id="union of occurrences, token form too",
        ),
        pytest.param([b'private="X-A", private'], None, id="an unqualified one wins"),
    ],
)
def test_field_names(values: list[bytes], expected: frozenset[bytes] | None) -> None:
    """RFC 9111 5.2.2.7: a qualified private lists the fields it covers."""
    assert parse_cache_control(values).field_names("private") == expected


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param([b"no-cache"], True, id="no-cache"),
        pytest.param([b"NO-CACHE"], True, id="any case"),
        pytest.param([b"foo, no-cache"], True, id="among others"),
        pytest.param([b'no-cache="x"'], True, id="with an argument"),
        pytest.param([b"no-store"], False, id="other directive"),
        pytest.param([], False, id="absent"),
    ],
)
def test_pragma_no_cache(values: list[bytes], expected: bool) -> None:
    """RFC 9111 5.4: the no-cache pragma is found in any case."""
    assert pragma_no_cache(values) is expected


def test_field_name_list() -> None:
    """Vary members are trimmed, lower-cased, and non-tokens dropped."""
    values = [b"Accept-Encoding, ,USER-AGENT", b"*, bad name,\tCookie"]
    assert field_name_list(values) == [
        b"accept-encoding",
        b"user-agent",
        b"*",
        b"cookie",
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(b"Sun, 06 Nov 1994 08:49:37 GMT", _EXAMPLE_DATE, id="IMF-fixdate"),
        pytest.param(
            b"Sunday, 06-Nov-94 08:49:37 GMT", _EXAMPLE_DATE, id="rfc850-date"
        ),
        pytest.param(b"Sun Nov  6 08:49:37 1994", _EXAMPLE_DATE, id="asctime-date"),
        pytest.param(
            b"sun, 06 nov 1994 08:49:37 gmt", _EXAMPLE_DATE, id="case-insensitive"
        ),
        pytest.param(
            b" Sun, 06 Nov 1994 08:49:37 GMT ", _EXAMPLE_DATE, id="surrounding space"
        ),
        pytest.param(
            b"Tuesday, 01-Jan-30 00:00:00 GMT", 1893456000, id="rfc850 year 2030"
        ),
        pytest.param(b"0", None, id="zero"),
        pytest.param(b"-1", None, id="negative number"),
        pytest.param(b"Sun, 06 Nov 1994 08:49:37 PST", None, id="zone other than GMT"),
        pytest.param(b"Sun, 06 Foo 1994 08:49:37 GMT", None, id="bad month"),
        pytest.param(b"Sun, 06 Nov 1994 25:49:37 GMT", None, id="bad hour"),
        pytest.param(
            b"Sun, 6 Nov 1994 08:49:37 GMT", _EXAMPLE_DATE, id="one-digit day"
        ),
        pytest.param(b"Sun, 06 Nov 94 08:49:37 GMT", None, id="two-digit year"),
        pytest.param(b"", None, id="empty"),
    ],
)
def test_parse_http_date(value: bytes, expected: int | None) -> None:
    """RFC 9110 5.6.7: three formats accepted; anything else is invalid."""
    assert parse_http_date(value) == expected


def test_format_http_date() -> None:
    """Dates are written as IMF-fixdate, and read back."""
    assert format_http_date(_EXAMPLE_DATE + 0.9) == b"Sun, 06 Nov 1994 08:49:37 GMT"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(b'"abc"', EntityTag(b'"abc"'), id="strong"),
        pytest.param(b'W/"abc"', EntityTag(b'"abc"', weak=True), id="weak"),
        pytest.param(b' "a b" ', EntityTag(b'"a b"'), id="surrounding space"),
        pytest.param(b'""', EntityTag(b'""'), id="empty opaque"),
        pytest.param(b"abc", None, id="unquoted"),
        pytest.param(b'"a", "b"', None, id="two tags"),
        pytest.param(b'w/"a"', None, id="lower-case weak prefix"),
    ],
)
def test_parse_entity_tag(value: bytes, expected: EntityTag | None) -> None:
    """RFC 9110 8.8.3: an ETag value is one entity-tag."""
    assert parse_entity_tag(value) == expected


def test_entity_tag_comparison() -> None:
    """RFC 9110 8.8.3.2: strong needs both strong; weak ignores W/."""
    strong, weak = EntityTag(b'"1"'), EntityTag(b'"1"', weak=True)
    assert strong.strong_match(EntityTag(b'"1"'))
    assert not strong.strong_match(weak)
    assert not weak.strong_match(weak)
    assert weak.weak_match(strong)
    assert not strong.weak_match(EntityTag(b'"2"'))


@pytest.mark.parametrize(
    ("values", "wildcard", "tags"),
    [
        pytest.param([b"*"], True, (), id="wildcard"),
        pytest.param(
            [b'"a", W/"b"', b'"c"'],
            False,
            (EntityTag(b'"a"'), EntityTag(b'"b"', True), EntityTag(b'"c"')),
            id="list over field lines",
        ),
        pytest.param(
            [b'junk, "a" , ,"b,c"'],
            False,
            (EntityTag(b'"a"'), EntityTag(b'"b,c"')),
            id="malformed members skipped, commas inside tags kept",
        ),
        pytest.param([b""], False, (), id="empty"),
    ],
)
def test_parse_entity_tag_list(
    values: list[bytes], wildcard: bool, tags: tuple[EntityTag, ...]
) -> None:
    """RFC 9110 13.1.2: If-None-Match is * or a list of entity-tags."""
    parsed = parse_entity_tag_list(values)
    assert (parsed.wildcard, parsed.tags) == (wildcard, tags)
