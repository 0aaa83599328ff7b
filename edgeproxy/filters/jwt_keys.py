"""
The keys that verify JSON Web Tokens, and the algorithms each may verify.

A :class:`VerificationKey` is an HMAC secret or a public key with the
algorithms it may verify; a :class:`KeySet` finds the key for a token's
``kid`` and ``alg``.  Keys come from a PEM file (:func:`load_public_key`) or a
JWK Set document (:func:`parse_jwks`); an RSA key shorter than
:data:`MIN_RSA_BITS` verifies nothing.  Fetching a JWK Set from a URL is
:mod:`edgeproxy.filters.jwks`.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

HMAC_ALGORITHMS = {"HS256": 32, "HS384": 48, "HS512": 64}
"""The HMAC algorithms, each with its shortest secret in bytes (RFC 7518, 3.2)."""

PUBLIC_KEY_ALGORITHMS = frozenset(
    {
        *("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"),
        *("ES256", "ES384", "ES512", "EdDSA"),
    }
)
"""The public-key signature algorithms a filter may accept."""

MIN_RSA_BITS = 2048
"""RSA keys shorter than this are refused (NIST SP 800-131A)."""

# The private members of RSA, EC and OKP keys (RFC 7518, section 6).
_PRIVATE = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth"})
_CURVES = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1, "ES512": ec.SECP521R1}


def algorithms_for_key(key: Any, allowed: Collection[str]) -> frozenset[str]:
    """The algorithms of ``allowed`` that can verify with public ``key``."""
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            return frozenset()
        fits = {name for name in allowed if name[:2] in {"RS", "PS"}}
    elif isinstance(key, ec.EllipticCurvePublicKey):
        fits = {
            name
            for name, curve in _CURVES.items()
            if name in allowed and isinstance(key.curve, curve)
        }
    elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        fits = {"EdDSA"} & set(allowed)
    else:
        fits = set()
    return frozenset(fits & PUBLIC_KEY_ALGORITHMS)


def describe_key(key: Any) -> str:
    """A public key's kind in words: ``an RSA key of 2048 bits``."""
    if isinstance(key, rsa.RSAPublicKey):
        return f"an RSA key of {key.key_size} bits"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"an EC key on {key.curve.name}"
    return f"an {type(key).__name__.removesuffix('PublicKey')} key"


def load_public_key(pem: bytes) -> Any:
    """
    The public key of a PEM public key or certificate.

    :raises ValueError: if ``pem`` is neither (a private key is refused).
    """
    if b"PRIVATE KEY-----" in pem:
        raise ValueError("holds a private key; give the public key only")
    if b"-----BEGIN CERTIFICATE-----" in pem:
        return x509.load_pem_x509_certificate(pem).public_key()
    return load_pem_public_key(pem)


@dataclass(frozen=True)
class VerificationKey:
    """
    A key and the algorithms it may verify.

    :ivar key: an HMAC secret (bytes) or a ``cryptography`` public key.
    :ivar algorithms: the algorithm names this key may verify.
    :ivar kid: the key's ``kid``; ``None`` matches any token ``kid``.
    """

    key: Any
    algorithms: frozenset[str]
    kid: str | None = None


class KeySet:
    """Keys known in advance, found by a token's ``kid`` and ``alg``."""

    def __init__(self, keys: Iterable[VerificationKey]) -> None:
        self.keys = tuple(keys)

    def __len__(self) -> int:
        return len(self.keys)

    def find(self, kid: str | None, algorithm: str) -> VerificationKey | None:
        """
        The key for a token with ``kid`` (or none) signed with ``algorithm``.

        A key with that ``kid`` wins; otherwise the one key without a ``kid``
        that fits.  A token without a ``kid`` needs exactly one fitting key.
        """
        fitting = [key for key in self.keys if algorithm in key.algorithms]
        if kid is not None:
            named = [key for key in fitting if key.kid == kid]
            if named:
                return named[0]
            fitting = [key for key in fitting if key.kid is None]
        return fitting[0] if len(fitting) == 1 else None


def _jwk_key(jwk: Any, allowed: Collection[str]) -> VerificationKey | None:
    """The key of one JWK, or ``None`` when it cannot verify ``allowed`` tokens."""
    if not isinstance(jwk, dict) or jwk.get("kty") not in {"RSA", "EC", "OKP"}:
        return None  # symmetric keys do not belong in a published set
    if jwk.get("use", "sig") != "sig" or "verify" not in jwk.get("key_ops", ["verify"]):
        return None
    kid = jwk.get("kid")
    if kid is not None and not isinstance(kid, str):
        return None
    public = {name: value for name, value in jwk.items() if name not in _PRIVATE}
    try:
        key = jwt.PyJWK(public).key
    except (jwt.PyJWTError, ValueError, TypeError):
        return None
    algorithms = algorithms_for_key(key, allowed)
    if "alg" in jwk:
        algorithms &= {jwk["alg"]}
    return VerificationKey(key, algorithms, kid) if algorithms else None


def parse_jwks(document: bytes, allowed: Collection[str]) -> KeySet:
    """
    The keys of a JWK Set document that can verify tokens signed with ``allowed``.

    Keys for encryption, symmetric keys, keys of other algorithms and keys
    that cannot be read are left out.

    :raises ValueError: if the document is not a JWK Set or no key is left.
    """
    try:
        parsed = json.loads(document)
    except (ValueError, UnicodeError) as error:
        raise ValueError(f"not JSON: {error}") from None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("keys"), list):
        raise ValueError('not a JWK Set (an object with a "keys" list)')
    keys = [key for key in (_jwk_key(jwk, allowed) for jwk in parsed["keys"]) if key]
    if not keys:
        raise ValueError(f"no key in the set fits the algorithms {', '.join(allowed)}")
    return KeySet(keys)
