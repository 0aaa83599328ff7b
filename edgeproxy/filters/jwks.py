"""
The keys that verify JSON Web Tokens: a fixed key, a JWK Set file, a JWK Set URL.

:class:`KeySet` holds keys that are known when the filter is built (an HMAC
secret, a PEM public key, a JWKS file).  :class:`RemoteKeySet` holds the keys
of a JWKS URL: fetched when first needed (or when its service starts), fetched
again every ``cache_ttl`` while the service runs, and fetched again when a token
names a key it does not have, at most once per ``refresh_interval`` counted
from the last fetch of any kind (so a flood of made-up ``kid`` values costs the
identity provider one request per interval).  Only one fetch is ever in flight:
requests that need keys meanwhile wait on it together.  A failed fetch keeps
the keys already held (and is logged); a fetch that has not answered after
``timeout`` seconds is abandoned.  Until a first fetch succeeds (the identity
provider was down when edgeproxy started), fetches are retried sooner: 1 s
after a failure, doubling up to ``refresh_interval``.

The fetch is a function given to :class:`RemoteKeySet` (tests give a fake one);
:func:`http_fetch` makes the real one with treq on the environment's reactor.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jwt
import treq
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from treq.client import HTTPClient
from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import Agent

from edgeproxy.config.values import parse_duration
from edgeproxy.errors import EdgeproxyError
from edgeproxy.plugin_environment import PluginEnvironment

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

JWKS_SIZE_LIMIT = 1024 * 1024
"""The largest JWK Set document read from a URL, in bytes."""

Fetch = Callable[[], "Deferred[bytes]"]
"""A function that fetches the JWK Set document once."""

# The private members of RSA, EC and OKP keys (RFC 7518, section 6).
_PRIVATE = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth"})
_CURVES = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1, "ES512": ec.SECP521R1}

log = Logger()


class KeysUnavailable(EdgeproxyError):
    """No key set could be fetched yet: tokens cannot be checked at all."""


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


class RemoteKeySet:
    """
    The keys of a JWK Set URL, cached, refreshed, fetched one at a time.

    :ivar keys: the keys of the last successful fetch, or ``None``.
    """

    def __init__(
        self,
        fetch: Fetch,
        clock: IReactorTime,
        allowed: Collection[str],
        refresh_interval: float = 300.0,
        cache_ttl: float = 3600.0,
        timeout: float = 10.0,
        source: str = "the JWKS URL",
    ) -> None:
        """
        :param fetch: fetches the document; called with no fetch in flight only.
        :param clock: the reactor's time.
        :param allowed: the algorithms whose keys are kept.
        :param refresh_interval: the least time between two fetches caused by
            tokens naming unknown keys.
        :param cache_ttl: the period of the refresh while started.
        :param timeout: a fetch that takes longer is abandoned.
        :param source: where the keys come from, for log lines.
        """
        self._fetch = fetch
        self._clock = clock
        self._allowed = tuple(allowed)
        self.refresh_interval = refresh_interval
        self.cache_ttl = cache_ttl
        self.timeout = timeout
        self.source = source
        self.keys: KeySet | None = None
        self._fetching: Deferred[None] | None = None
        self._waiters: list[Deferred[None]] = []
        self._last_fetch: float | None = None
        self._failed_fetches = 0
        self._loop: LoopingCall | None = None

    def find(
        self, kid: str | None, algorithm: str
    ) -> VerificationKey | Deferred[VerificationKey | None] | None:
        """
        The key for a token, at once or after the fetch that may know it.

        :raises KeysUnavailable: (or the ``Deferred`` fails with it) when no
            key set has ever been fetched.
        """
        if self.keys is not None:
            key = self.keys.find(kid, algorithm)
            if key is not None:
                return key
        if self._fetching is None:
            if not self._may_fetch():
                return self._find_fetched(kid, algorithm)
            self._start_fetch()
            if self._fetching is None:  # the fetch answered at once
                return self._find_fetched(kid, algorithm)
        waiter: Deferred[None] = Deferred()
        self._waiters.append(waiter)
        return waiter.addCallback(lambda _: self._find_fetched(kid, algorithm))

    def start(self) -> None:
        """Fetch now, then every ``cache_ttl`` seconds until :meth:`stop`."""
        self._loop = LoopingCall(self._refresh)
        self._loop.clock = self._clock
        self._loop.start(self.cache_ttl, now=True)

    def stop(self) -> None:
        """Stop the periodic refresh and abandon a fetch in flight."""
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        if self._fetching is not None:
            self._fetching.cancel()

    def _refresh(self) -> None:
        # Never returns the fetch: a slow fetch must not stall the loop, and
        # the loop must never see an error (it would stop for good).
        if self._fetching is None:
            self._start_fetch()

    def _may_fetch(self) -> bool:
        if self._last_fetch is None:
            return True
        interval = self.refresh_interval
        if self.keys is None:
            # Nothing was ever fetched: every request fails until a fetch
            # works, so retry soon (1 s, doubling) rather than once per
            # refresh interval.
            interval = min(interval, 2.0 ** min(self._failed_fetches - 1, 16))
        return self._clock.seconds() - self._last_fetch >= interval

    def _find_fetched(self, kid: str | None, algorithm: str) -> VerificationKey | None:
        if self.keys is None:
            raise KeysUnavailable(f"no keys could be fetched from {self.source}")
        return self.keys.find(kid, algorithm)

    def _start_fetch(self) -> None:
        self._last_fetch = self._clock.seconds()
        try:
            fetched = self._fetch()
        except Exception:
            fetched = fail()
        outcome: Deferred[None] = (
            fetched.addTimeout(self.timeout, self._clock)
            .addCallback(self._loaded)
            .addErrback(self._failed)
        )
        if outcome.called:  # the fetch answered at once
            self._settle(None)
        else:
            self._fetching = outcome
            outcome.addBoth(self._settle)

    def _loaded(self, document: bytes) -> None:
        self.keys = parse_jwks(document, self._allowed)
        self._failed_fetches = 0

    def _failed(self, failure: Failure) -> None:
        if failure.check(CancelledError):
            return  # stopped on purpose
        self._failed_fetches += 1
        log.warn(
            "JWKS fetch from {source} failed, keeping the keys held: {reason}",
            source=self.source,
            reason=failure.getErrorMessage() or type(failure.value).__name__,
        )

    def _settle(self, _: object) -> None:
        self._fetching = None
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(None)


def _read_jwks(response: Any, limit: int) -> Deferred[bytes]:
    """The body of a JWKS response: at most ``limit`` bytes, and only with a 200."""
    chunks: list[bytes] = []
    size = 0

    def collect(data: bytes) -> None:
        nonlocal size
        size += len(data)
        if size > limit:
            raise ValueError(f"the JWK Set is larger than {limit} bytes")
        chunks.append(data)

    def done(_: None) -> bytes:
        if response.code != 200:
            raise ValueError(f"the JWKS URL answered {response.code}")
        return b"".join(chunks)

    collected: Deferred[None] = treq.collect(response, collect)
    return collected.addCallback(done)


def http_fetch(reactor: Any, url: str, limit: int = JWKS_SIZE_LIMIT) -> Fetch:
    """
    A :data:`Fetch` that GETs ``url`` with treq on ``reactor``.

    HTTPS URLs are verified against the platform's trust roots.
    """
    client = HTTPClient(Agent(reactor))
    accept: dict[bytes | str, list[bytes | str]] = {
        b"Accept": [b"application/jwk-set+json, application/json"]
    }

    def fetch() -> Deferred[bytes]:
        response: Deferred[Any] = client.get(url, headers=accept, unbuffered=True)
        return response.addCallback(_read_jwks, limit)

    return fetch


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

Fetcher = Callable[[Any, str], Fetch]
"""Makes the :data:`Fetch` of a URL on a reactor, like :func:`http_fetch`."""

Problems = list[tuple[str, str]]


def _read(path: str, environment: PluginEnvironment) -> bytes:
    try:
        return environment.resolve(path.strip()).read_bytes()
    except OSError as error:
        raise ValueError(f"cannot read {path.strip()!r}: {error}") from None


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
        return parse_jwks(_read(text, environment), algorithms), []
    key = load_public_key(_read(text, environment))
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
            durations[key] = parse_duration(options.get(key, f"{default}s"))
            if durations[key] <= 0:
                raise ValueError(f"{options[key].strip()!r} is not more than 0")
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
