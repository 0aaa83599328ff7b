"""Tests for edgeproxy.filters.cors_policy: what a cors filter allows."""

from __future__ import annotations

import re

import pytest

from edgeproxy.errors import OptionError
from edgeproxy.filters.cors_policy import CorsPolicy, parse_origins, read_cors_policy

APP = "https://app.example.com"


@pytest.mark.parametrize(
    ("policy", "origin", "allowed"),
    [
        (CorsPolicy(any_origin=True), APP, b"*"),
        (CorsPolicy(any_origin=True, credentials=True), APP, APP.encode()),
        (CorsPolicy(any_origin=True, credentials=True), "null", None),
        (
            CorsPolicy(origins=frozenset({APP, "null"}), credentials=True),
            "null",
            b"null",
        ),
        (CorsPolicy(origins=frozenset({APP})), APP.upper(), APP.upper().encode()),
        (CorsPolicy(origins=frozenset({APP})), "https://evil.example", None),
        (
            CorsPolicy(origin_patterns=(re.compile(r"https://[a-z]+\.example\.com"),)),
            APP,
            APP.encode(),
        ),
        (
            CorsPolicy(origin_patterns=(re.compile(r"https://[a-z]+\.example"),)),
            APP,
            None,
        ),
    ],
)
def test_allow_origin(policy: CorsPolicy, origin: str, allowed: bytes | None) -> None:
    """``*`` without credentials is ``*``; else an allowed origin is echoed."""
    assert policy.allow_origin(origin) == allowed


def test_defaults() -> None:
    """Only allow_origins is needed; the rest has the documented defaults."""
    assert read_cors_policy({"allow_origins": APP}) == CorsPolicy(
        origins=frozenset({APP})
    )


@pytest.mark.parametrize(
    ("text", "any_origin", "origins", "patterns"),
    [
        ("*", True, set(), []),
        (
            "https://a.example, http://b.example:80",
            False,
            {"https://a.example", "http://b.example"},
            [],
        ),
        ("http://b.example:8080, NULL", False, {"http://b.example:8080", "null"}, []),
        (
            "https://a.example, ~^https://x{1,3}\\.example$\n  ~^http://.*$ , *",
            False,
            {"https://a.example"},
            ["^https://x{1,3}\\.example$", "^http://.*$ , *"],
        ),
    ],
)
def test_parse_origins(
    text: str, any_origin: bool, origins: set[str], patterns: list[str]
) -> None:
    """Origins are normalized; a pattern runs to the end of its line."""
    found_any, found_origins, found_patterns = parse_origins(text)
    assert found_any is any_origin
    assert found_origins == origins
    assert [pattern.pattern for pattern in found_patterns] == patterns


@pytest.mark.parametrize(
    ("options", "key", "fragment"),
    [
        ({}, "allow_origins", "required"),
        ({"allow_origins": " , "}, "allow_origins", "no origin given"),
        ({"allow_origins": "https://a.example/"}, "allow_origins", "no path"),
        ({"allow_origins": "a.example"}, "allow_origins", "is not an origin"),
        ({"allow_origins": "~^(https://"}, "allow_origins", "not a regular expression"),
        ({"allow_origins": "*", "allow_methods": ""}, "allow_methods", "no method"),
        (
            {"allow_origins": "*", "allow_methods": "GET, P(T"},
            "allow_methods",
            "method",
        ),
        (
            {"allow_origins": "*", "allow_headers": "X A"},
            "allow_headers",
            "header name",
        ),
        ({"allow_origins": "*", "expose_headers": "X:A"}, "expose_headers", "header"),
        (
            {"allow_origins": "*", "allow_credentials": "maybe"},
            "allow_credentials",
            "yes",
        ),
        ({"allow_origins": "*", "max_age": "long"}, "max_age", "not a duration"),
        ({"allow_origins": "*", "origins": "*"}, "origins", "unknown option"),
    ],
)
def test_bad_option(options: dict[str, str], key: str, fragment: str) -> None:
    """Each bad or missing option is reported by its key."""
    with pytest.raises(OptionError) as caught:
        read_cors_policy(options)
    [(found_key, message)] = caught.value.problems
    assert found_key == key
    assert fragment in message


def test_every_bad_option_is_reported() -> None:
    """All the bad options of a section are reported together."""
    with pytest.raises(OptionError) as caught:
        read_cors_policy({"max_age": "x", "vary": "no"})
    assert sorted(key for key, _ in caught.value.problems) == [
        "allow_origins",
        "max_age",
        "vary",
    ]
