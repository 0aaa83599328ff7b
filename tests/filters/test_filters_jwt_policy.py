"""Tests for edgeproxy.filters.jwt_policy: what a jwt filter checks in the claims."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import pytest

from edgeproxy.filters.api_key import BEARER, CredentialLocation
from edgeproxy.filters.jwt_policy import (
    POLICY_PARSERS,
    TokenPolicy,
    claim_header_value,
    claims_problem,
    granted_scopes,
)

NOW = 1_700_000_000
POLICY = TokenPolicy(
    frozenset({"HS256"}),
    issuer="https://idp.example/",
    audience=frozenset({"api", "admin"}),
    leeway=30.0,
    required_claims=("sub",),
)
GOOD = {"iss": "https://idp.example/", "aud": "api", "sub": "u1", "exp": NOW + 60}


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({}, None),
        ({"aud": ["other", "admin"]}, None),
        ({"exp": NOW - 29}, None),
        ({"exp": NOW - 30}, "the token has expired"),
        ({"exp": "soon"}, "the exp claim is not a number"),
        ({"exp": True}, "the exp claim is not a number"),
        ({"exp": float("nan")}, "the exp claim is not a number"),
        ({"nbf": NOW + 30}, None),
        ({"nbf": NOW + 31}, "the token is not valid yet"),
        ({"iat": NOW + 31}, "the token was issued in the future"),
        ({"iss": "https://evil.example/"}, "the token's issuer is not accepted"),
        ({"aud": "other"}, "the token's audience is not accepted"),
        ({"aud": [7]}, "the token's audience is not accepted"),
        ({"sub": None}, "the token has no sub claim"),
    ],
)
def test_claims_problem(changes: dict[str, Any], problem: str | None) -> None:
    """Time claims allow the leeway; issuer, audience and required claims must fit."""
    assert claims_problem({**GOOD, **changes}, POLICY, NOW) == problem


@pytest.mark.parametrize(
    ("claims", "scopes"),
    [
        ({}, set()),
        ({"scope": "read  write"}, {"read", "write"}),
        ({"scp": ["read", 7, "admin"]}, {"read", "admin"}),
        ({"scope": "read", "scp": "write"}, {"read", "write"}),
        ({"scope": 7}, set()),
    ],
)
def test_granted_scopes(claims: dict[str, Any], scopes: set[str]) -> None:
    """Scopes come from scope and scp, as a space-separated string or a list."""
    assert granted_scopes(claims) == scopes


@pytest.mark.parametrize(
    ("option", "text", "value"),
    [
        ("audience", "a, b c", frozenset({"a", "b", "c"})),
        ("consumer_claim", " client_id ", "client_id"),
        ("consumer_claim", " ", None),
        ("token_from", "header", BEARER),
        ("token_from", "cookie:at", CredentialLocation("cookie", b"at")),
        (
            "claims_to_headers",
            "sub: X-User\nemail: X-Mail",
            (("sub", b"X-User"), ("email", b"X-Mail")),
        ),
    ],
)
def test_policy_parsers(option: str, text: str, value: object) -> None:
    """Options parse to what TokenPolicy holds; an empty consumer_claim is none."""
    assert POLICY_PARSERS[option](text) == value


def test_each_option_sets_the_field_of_its_name() -> None:
    """Every policy option names a TokenPolicy field (the factory relies on it)."""
    assert set(POLICY_PARSERS) <= {field.name for field in fields(TokenPolicy)}


@pytest.mark.parametrize(
    ("value", "header"),
    [
        ("Zoë", "Zoë".encode()),
        (["a", "b"], b"a, b"),
        (True, b"true"),
        (3.5, b"3.5"),
        ({"k": [1, 2]}, b'{"k":[1,2]}'),
        ("evil\r\nX-Admin: yes", None),
        (["ok", "bad\n"], None),
    ],
)
def test_claim_header_value(value: object, header: bytes | None) -> None:
    """Claim values become header values; a control character refuses."""
    assert claim_header_value(value) == header
