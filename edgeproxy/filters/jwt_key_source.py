"""
The keys of a ``jwt`` filter from its options: a secret, a PEM file, a JWKS file or URL.

:func:`key_source` reads the options of :data:`KEY_OPTIONS` and checks the key
against the accepted algorithms, so that an algorithm the key cannot verify is
a configuration error rather than a token refused at run time (and HMAC can
never be tried with a public key).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import rsa

from edgeproxy.filters.jwks import Fetcher, RemoteKeySet, http_fetch
from edgeproxy.filters.jwt_keys import (
    HMAC_ALGORITHMS,
    MIN_RSA_BITS,
    PUBLIC_KEY_ALGORITHMS,
    KeySet,
    VerificationKey,
    algorithms_for_key,
    describe_key,
    load_public_key,
    parse_jwks,
)
from edgeproxy.options import Problems, parse_positive_duration, read_named_file
from edgeproxy.plugin_environment import PluginEnvironment

KEY_OPTIONS = (
    *("secret", "public_key_file", "jwks_file", "jwks_url"),
    *("jwks_refresh_interval", "jwks_cache_ttl", "jwks_timeout"),
)
"""The options of the ``jwt`` filter that :func:`key_source` reads."""

_SOURCES = KEY_OPTIONS[:4]
_URL_OPTIONS = {
    "jwks_refresh_interval": 300.0,
    "jwks_cache_ttl": 3600.0,
    "jwks_timeout": 10.0,
}


def _public_key_set(
    source: str,
    text: str,
    algorithms: frozenset[str],
    environment: PluginEnvironment,
    fetcher: Fetcher,
    durations: dict[str, float],
    strict: bool,
) -> tuple[KeySet | RemoteKeySet, Problems]:
    """
    The keys of a public-key ``source`` option and the problems of ``algorithms``.

    :param strict: whether ``algorithms`` were configured (and are checked
        against the key) rather than assumed.
    :raises ValueError: for the value of ``source`` itself.
    """
    if source == "jwks_url":
        url = urlsplit(text.strip())
        if url.scheme not in {"http", "https"} or not url.hostname:
            raise ValueError(f"{text.strip()!r} is not an http:// or https:// URL")
        fetch = fetcher(environment.reactor, url.geturl())
        timings = {key.removeprefix("jwks_"): value for key, value in durations.items()}
        remote = RemoteKeySet(
            fetch, environment.reactor, algorithms, source=url.geturl(), **timings
        )
        return remote, []
    if source == "jwks_file":
        return parse_jwks(read_named_file(text, environment), algorithms), []
    key = load_public_key(read_named_file(text, environment))
    fits = algorithms_for_key(key, algorithms)
    problems = []
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        problems.append((source, f"{describe_key(key)} is too short (2048 at least)"))
    elif strict and algorithms - fits:
        misfits = ", ".join(sorted(algorithms - fits))
        problems.append(
            ("algorithms", f"{misfits} cannot verify with {describe_key(key)}")
        )
    return KeySet([VerificationKey(key, fits)]), problems


def key_source(
    options: Mapping[str, str],
    algorithms: frozenset[str] | None,
    environment: PluginEnvironment,
    fetcher: Fetcher = http_fetch,
) -> tuple[KeySet | RemoteKeySet | None, Problems]:
    """
    The keys that the ``jwt`` filter's :data:`KEY_OPTIONS` describe, and their problems.

    :param algorithms: the accepted algorithms, or ``None`` when they are not
        known (their option is bad): the key is then checked on its own.
    :return: the keys (``None`` with problems) and every problem found,
        including algorithms that the key cannot verify.
    """
    given = [key for key in _SOURCES if key in options]
    if not given:
        return None, [("secret", "give one of " + ", ".join(_SOURCES))]
    source = given[0]
    problems: Problems = [
        (key, f"give only one of {source} and {key}") for key in given[1:]
    ]
    durations = {}
    for key, default in _URL_OPTIONS.items():
        if key in options and source != "jwks_url":
            problems.append((key, "only applies with jwks_url"))
        try:
            durations[key] = parse_positive_duration(options.get(key, f"{default}s"))
        except ValueError as error:
            problems.append((key, str(error)))
    known = algorithms if algorithms is not None else frozenset(PUBLIC_KEY_ALGORITHMS)
    hmac = frozenset(known & HMAC_ALGORITHMS.keys())
    if source == "secret":
        if known - hmac and algorithms is not None:
            misfits = ", ".join(sorted(known - hmac))
            problems.append(("algorithms", f"{misfits} need a public key, not secret"))
        secret = options["secret"].strip().encode("utf-8")
        needed = max((HMAC_ALGORITHMS[name] for name in hmac), default=32)
        if len(secret) < needed:
            problems.append(("secret", f"is {len(secret)} bytes; {needed} at least"))
        return KeySet([VerificationKey(secret, hmac)]), problems
    if hmac:
        problems.append(("algorithms", f"{', '.join(sorted(hmac))} need secret"))
    try:
        keys, more = _public_key_set(
            source,
            options[source],
            known - hmac,
            environment,
            fetcher,
            durations,
            strict=algorithms is not None,
        )
    except ValueError as error:
        return None, [*problems, (source, str(error))]
    return keys, problems + more
