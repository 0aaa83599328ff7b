"""Tests for edgeproxy.filters.jwt_keys: key sets and JWK Set documents."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import OKPAlgorithm, RSAAlgorithm

from edgeproxy.filters.jwt_keys import KeySet, VerificationKey, parse_jwks
from tests.filters.jwk_samples import (
    ALLOWED,
    ED_KEY,
    RSA_KEY,
    document,
    ec_jwk,
    rsa_jwk,
)

# --- KeySet -------------------------------------------------------------------

RS = VerificationKey("rs-a", frozenset({"RS256"}), "a")
RS_B = VerificationKey("rs-b", frozenset({"RS256"}), "b")
ES_UNNAMED = VerificationKey("es", frozenset({"ES256"}))


@pytest.mark.parametrize(
    ("keys", "kid", "algorithm", "found"),
    [
        ([RS, RS_B], "b", "RS256", RS_B),
        ([RS, RS_B], "c", "RS256", None),
        ([RS, RS_B], None, "RS256", None),
        ([RS], None, "RS256", RS),
        ([RS], "a", "ES256", None),
        ([RS, ES_UNNAMED], "zzz", "ES256", ES_UNNAMED),
        ([RS, ES_UNNAMED], None, "ES256", ES_UNNAMED),
    ],
)
def test_key_set_find(
    keys: list[VerificationKey],
    kid: str | None,
    algorithm: str,
    found: VerificationKey | None,
) -> None:
    """A kid picks its key; an unnamed key fits any kid; no kid needs a single fit."""
    assert KeySet(keys).find(kid, algorithm) == found


# --- parse_jwks ---------------------------------------------------------------


def test_parse_jwks_keeps_usable_keys() -> None:
    """Signature keys of accepted algorithms are kept, each with what it verifies."""
    ed = {**json.loads(OKPAlgorithm.to_jwk(ED_KEY.public_key())), "kid": "d1"}
    keys = parse_jwks(document(rsa_jwk(), ec_jwk(), ed), ALLOWED)
    assert [(key.kid, sorted(key.algorithms)) for key in keys.keys] == [
        ("r1", ["PS256", "RS256"]),
        ("e1", ["ES256"]),
        ("d1", ["EdDSA"]),
    ]
    assert keys.keys[0].key.public_numbers() == RSA_KEY.public_key().public_numbers()


@pytest.mark.parametrize(
    "unusable",
    [
        rsa_jwk(use="enc"),
        rsa_jwk(key_ops=["encrypt"]),
        rsa_jwk(alg="RS512"),
        rsa_jwk(kid=None, kty="oct", k="c2VjcmV0"),
        rsa_jwk(kid=None, n="not base64url!"),
        rsa_jwk(kid=7),
        "not an object",
    ],
)
def test_parse_jwks_leaves_out_unusable_keys(unusable: Any) -> None:
    """Encryption, symmetric, foreign-algorithm and broken keys are skipped."""
    keys = parse_jwks(document(ec_jwk(), unusable), ALLOWED)
    assert [key.kid for key in keys.keys] == ["e1"]


def test_parse_jwks_uses_only_the_public_half() -> None:
    """A key published with its private members still verifies, as a public key."""
    private = json.loads(RSAAlgorithm.to_jwk(RSA_KEY))
    del private["key_ops"]  # PyJWT marks it ["sign"]; a careless IdP would not
    (key,) = parse_jwks(document(private), ALLOWED).keys
    assert isinstance(key.key, rsa.RSAPublicKey)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (b"{", "not JSON"),
        (b"[]", "not a JWK Set"),
        (b'{"keys": {}}', "not a JWK Set"),
        (document(rsa_jwk(use="enc")), "no key in the set fits"),
    ],
)
def test_parse_jwks_errors(text: bytes, fragment: str) -> None:
    """A document that is not a JWK Set, or has no usable key, is an error."""
    with pytest.raises(ValueError, match=fragment):
        parse_jwks(text, ALLOWED)
