"""Keys and JWK Set documents that the tests of the jwt filter's keys share."""

from __future__ import annotations

import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()
ALLOWED = ("RS256", "PS256", "ES256", "EdDSA")


def rsa_jwk(kid: str | None = "r1", **members: Any) -> dict[str, Any]:
    """The public JWK of RSA_KEY."""
    jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(RSA_KEY.public_key()))
    if kid is not None:
        jwk["kid"] = kid
    return {**jwk, **members}


def ec_jwk(kid: str = "e1") -> dict[str, Any]:
    """The public JWK of EC_KEY."""
    return {**json.loads(ECAlgorithm.to_jwk(EC_KEY.public_key())), "kid": kid}


def document(*keys: dict[str, Any]) -> bytes:
    """A JWK Set document."""
    return json.dumps({"keys": list(keys)}).encode()
