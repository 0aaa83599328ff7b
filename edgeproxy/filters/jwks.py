"""
The keys of a JWK Set URL: fetched, cached and refreshed.

Keys known when the filter is built (an HMAC secret, a PEM public key, a JWKS
file) are a :class:`~edgeproxy.filters.jwt_keys.KeySet`.  :class:`RemoteKeySet`
holds the keys of a JWKS URL: fetched when first needed (or when its service
starts), fetched again every ``cache_ttl`` while the service runs, and fetched
again when a token names a key it does not have, at most once per
``refresh_interval`` counted from the last fetch of any kind (so a flood of
made-up ``kid`` values costs the identity provider one request per interval).
Only one fetch is ever in flight: requests that need keys meanwhile wait on it
together.  A failed fetch keeps the keys already held (and is logged); a fetch
that has not answered after ``timeout`` seconds is abandoned.  Until a first
fetch succeeds (the identity provider was down when edgeproxy started), fetches
are retried sooner: 1 s after a failure, doubling up to ``refresh_interval``.

The fetch is a function given to :class:`RemoteKeySet` (tests give a fake one);
:func:`http_fetch` makes the real one with treq on the environment's reactor.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import treq
from treq.client import HTTPClient
from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import Agent

from edgeproxy.errors import EdgeproxyError
from edgeproxy.filters.jwt_keys import KeySet, VerificationKey, parse_jwks

JWKS_SIZE_LIMIT = 1024 * 1024
"""The largest JWK Set document read from a URL, in bytes."""

Fetch = Callable[[], "Deferred[bytes]"]
"""A function that fetches the JWK Set document once."""

Fetcher = Callable[[Any, str], Fetch]
"""Makes the :data:`Fetch` of a URL on a reactor, like :func:`http_fetch`."""

log = Logger()


class KeysUnavailable(EdgeproxyError):
    """No key set could be fetched yet: tokens cannot be checked at all."""


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
