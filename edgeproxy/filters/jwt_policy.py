"""
What a ``jwt`` filter checks in a token besides its signature, and its options.

:class:`TokenPolicy` holds it; :func:`claims_problem` and :func:`granted_scopes`
check a verified token's claims against it, with the time given as an argument
(the filter passes its reactor's); :data:`POLICY_PARSERS` read the options.
The filter itself is :mod:`edgeproxy.filters.jwt`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from edgeproxy.balancing.request_keys import is_token
from edgeproxy.config.values import parse_bool, parse_duration, parse_list
from edgeproxy.filters.answers import parse_realm
from edgeproxy.filters.api_key import BEARER, CredentialLocation
from edgeproxy.filters.jwt_keys import HMAC_ALGORITHMS, PUBLIC_KEY_ALGORITHMS


@dataclass(frozen=True)
class TokenPolicy:
    """
    Everything the ``jwt`` filter checks and does besides verifying signatures.

    :ivar algorithms: accepted ``alg`` values.
    :ivar issuer: the required ``iss``, or ``None``.
    :ivar audience: ``aud`` must hold one of these (when not empty).
    :ivar leeway: seconds of clock skew allowed on ``exp``, ``nbf``, ``iat``.
    :ivar required_claims: claims that must be present and not null.
    :ivar scopes: scopes the token must grant.
    :ivar token_from: where the token is.
    :ivar consumer_claim: the claim naming the consumer, or ``None``.
    :ivar claims_to_headers: ``(claim, header name)`` pairs to forward.
    :ivar strip_token: whether to remove the token before forwarding.
    :ivar realm: the realm of the challenges.
    """

    algorithms: frozenset[str]
    issuer: str | None = None
    audience: frozenset[str] = frozenset()
    leeway: float = 0.0
    required_claims: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    token_from: CredentialLocation = BEARER
    consumer_claim: str | None = "sub"
    claims_to_headers: tuple[tuple[str, bytes], ...] = ()
    strip_token: bool = False
    realm: str = "edgeproxy"


def _is_number(value: object) -> bool:
    # JSON as Python reads it allows NaN and Infinity, which no comparison stops.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value)


def claims_problem(
    claims: Mapping[str, Any], policy: TokenPolicy, now: float
) -> str | None:
    """
    Why ``claims`` are not acceptable at time ``now`` (seconds), or ``None``.

    ``exp`` must be after ``now``, ``nbf`` and ``iat`` not after it, each
    within ``policy.leeway``; then the issuer, audience and required claims.
    """
    for name in ("exp", "nbf", "iat"):
        if name in claims and not _is_number(claims[name]):
            return f"the {name} claim is not a number"
    if "exp" in claims and now >= claims["exp"] + policy.leeway:
        return "the token has expired"
    if "nbf" in claims and now + policy.leeway < claims["nbf"]:
        return "the token is not valid yet"
    if "iat" in claims and now + policy.leeway < claims["iat"]:
        return "the token was issued in the future"
    if policy.issuer is not None and claims.get("iss") != policy.issuer:
        return "the token's issuer is not accepted"
    if policy.audience:
        audience = claims.get("aud")
        held = [audience] if isinstance(audience, str) else audience
        if not isinstance(held, list) or not policy.audience.intersection(
            item for item in held if isinstance(item, str)
        ):
            return "the token's audience is not accepted"
    for name in policy.required_claims:
        if claims.get(name) is None:
            return f"the token has no {name} claim"
    return None


def granted_scopes(claims: Mapping[str, Any]) -> set[str]:
    """The scopes of ``scope`` and ``scp``, each a space-separated string or a list."""
    granted: set[str] = set()
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            granted.update(value.split())
        elif isinstance(value, list):
            granted.update(item for item in value if isinstance(item, str))
    return granted


def claim_header_value(value: object) -> bytes | None:
    """
    A claim's value as a header value; ``None`` when it cannot be one.

    Strings go as they are (UTF-8), lists of strings comma-joined, anything
    else as compact JSON; a control character (a header injection) refuses.
    """
    if isinstance(value, str):
        text = value
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        text = ", ".join(value)
    else:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in text):
        return None
    return text.encode("utf-8")


def _algorithms(text: str) -> frozenset[str]:
    names = parse_list(text)
    for name in names:
        if name.lower() == "none":
            raise ValueError("none is refused: tokens must be signed")
        if name not in HMAC_ALGORITHMS and name not in PUBLIC_KEY_ALGORITHMS:
            known = ", ".join([*HMAC_ALGORITHMS, *sorted(PUBLIC_KEY_ALGORITHMS)])
            raise ValueError(f"{name!r} is not an algorithm (use {known})")
    if not names:
        raise ValueError("list the accepted algorithms")
    return frozenset(names)


def _words(text: str) -> tuple[str, ...]:
    words = tuple(word for word in re.split(r"[,\s]+", text) if word)
    if not words:
        raise ValueError("give at least one")
    return words


def _text(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text.strip()


def _token_from(text: str) -> CredentialLocation:
    if text.strip() == "header":
        return BEARER
    try:
        return CredentialLocation.parse(text, ("cookie", "query"))
    except ValueError:
        pass
    raise ValueError(f"{text.strip()!r} is not header, cookie:NAME or query:NAME")


def _claims_to_headers(text: str) -> tuple[tuple[str, bytes], ...]:
    pairs = []
    for item in text.replace("\n", ",").split(","):
        claim, colon, name = (part.strip() for part in item.partition(":"))
        if not item.strip():
            continue
        if not colon or not claim or not is_token(name):
            raise ValueError(f"{item.strip()!r} is not 'claim: Header-Name'")
        pairs.append((claim, name.encode("ascii")))
    return tuple(pairs)


POLICY_PARSERS: dict[str, Callable[[str], Any]] = {
    "algorithms": _algorithms,
    "issuer": _text,
    "audience": lambda text: frozenset(_words(text)),
    "leeway": parse_duration,
    "required_claims": _words,
    "scopes": _words,
    "token_from": _token_from,
    "consumer_claim": lambda text: text.strip() or None,
    "claims_to_headers": _claims_to_headers,
    "strip_token": parse_bool,
    "realm": parse_realm,
}
"""
The parsers of the ``jwt`` filter's options besides its keys.

Each option sets the :class:`TokenPolicy` field of its name.
"""
