"""
A small Redis client on Twisted: one pipelined connection, reconnected, failing fast.

The client pipelines commands on one connection and matches replies to commands
in order.  It reconnects with backoff and jitter and, while it is not
connected, fails every command at once: a rate limiter must never make requests
wait for a Redis that is down.  A command that gets no reply within ``timeout``
fails, and the connection is dropped and made again (its later replies could no
longer be matched).  The wire format is :mod:`edgeproxy.store.resp`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from twisted.application.internet import backoffPolicy
from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import (
    IDelayedCall,
    IProtocol,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from edgeproxy.store import StoreUnavailable
from edgeproxy.store.resp import (
    RedisReplyError,
    Reply,
    RespError,
    RespParser,
    encode_command,
)

log = Logger()

MAX_PENDING = 10_000
"""The most commands waiting for replies on one connection."""

CONNECT_TIMEOUT = 2.0
"""Seconds a connection attempt may take."""


class RedisConnection(Protocol):
    """One connection: commands written at once, replies matched in order."""

    def __init__(self, client: RedisClient) -> None:
        self._client = client
        self._parser = RespParser()
        # Each waiting command with its deadline; replies come in order, so
        # one timer watching the oldest deadline covers them all.
        self._pending: deque[tuple[Deferred[Reply], float]] = deque()
        self._watchdog: IDelayedCall | None = None
        self._lost_because = "the connection to Redis was lost"

    def execute(self, *arguments: bytes | str | int) -> Deferred[Reply]:
        """
        Send one command; the ``Deferred`` fires with its reply.

        It fails with :class:`RedisReplyError` for an error reply and with
        :class:`StoreUnavailable` when no reply comes in time or the connection
        ends first.
        """
        if self.transport is None or not self.connected:
            return fail(StoreUnavailable("not connected to Redis"))
        if len(self._pending) >= self._client.max_pending:
            return fail(StoreUnavailable("too many commands are waiting for Redis"))
        result: Deferred[Reply] = Deferred()
        reactor, timeout = self._client.reactor, self._client.timeout
        self._pending.append((result, reactor.seconds() + timeout))
        if self._watchdog is None:
            self._watchdog = reactor.callLater(timeout, self._check_deadline)
        self.transport.write(encode_command(*arguments))
        return result

    def handshake(self) -> Deferred[None]:
        """Authenticate and select the database, then offer this connection."""
        ready: Deferred[Any] = succeed(None)
        options = self._client.options
        if options.password is not None:
            credentials = [options.password]
            if options.username is not None:
                credentials.insert(0, options.username)
            ready.addCallback(lambda _: self.execute("AUTH", *credentials))
        if options.db:
            ready.addCallback(lambda _: self.execute("SELECT", options.db))
        ready.addCallback(lambda _: self._client.connection_ready(self))
        return ready

    def dataReceived(self, data: bytes) -> None:
        """Fire the waiting commands whose replies arrived."""
        try:
            replies = self._parser.feed(data)
        except RespError as error:
            self._drop(f"Redis sent bad data: {error}")
            return
        for reply in replies:
            if not self._pending:
                self._drop("Redis sent a reply to no command")
                return
            result, _ = self._pending.popleft()
            if result.called:  # cancelled by its caller
                continue
            if isinstance(reply, RedisReplyError):
                result.errback(reply)
            else:
                result.callback(reply)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Fail every command still waiting; the client stops using this one."""
        self.connected = 0
        self._client.connection_lost(self, self._lost_because)
        if self._watchdog is not None and self._watchdog.active():
            self._watchdog.cancel()
        self._watchdog = None
        pending, self._pending = self._pending, deque()
        for result, _ in pending:
            if not result.called:
                result.errback(StoreUnavailable(self._lost_because))

    def close(self, why: str) -> None:
        """Close the connection; commands still waiting fail, saying ``why``."""
        self._drop(why)

    def _check_deadline(self) -> None:
        self._watchdog = None
        if not self._pending:
            return
        reactor = self._client.reactor
        late = reactor.seconds() - self._pending[0][1]
        if late >= 0:
            self._drop(f"Redis did not answer within {self._client.timeout} s")
        else:
            self._watchdog = reactor.callLater(-late, self._check_deadline)

    def _drop(self, why: str) -> None:
        self._lost_because = why
        if self.transport is not None and self.connected:
            self.transport.abortConnection()  # type: ignore[attr-defined]


class _ConnectionFactory(Factory):
    noisy = False  # reconnecting every few seconds would log each attempt

    def __init__(self, client: RedisClient) -> None:
        self._client = client

    def buildProtocol(self, addr: object) -> RedisConnection:
        return RedisConnection(self._client)


@dataclass(frozen=True)
class RedisOptions:
    """Where a Redis server is: ``redis://[[user]:password@]host[:port][/db]``."""

    host: str
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_url(cls, url: str) -> RedisOptions:
        """
        Parse a ``redis://`` URL.

        :raises ValueError: naming what is wrong.
        """
        parts = urlsplit(url.strip())
        if parts.scheme != "redis" or not parts.hostname:
            raise ValueError(f"{url.strip()!r} is not redis://host[:port][/db]")
        try:
            port = parts.port or 6379
        except ValueError:
            raise ValueError(f"{url.strip()!r} has a bad port") from None
        path = parts.path.strip("/")
        if path and not path.isdigit():
            raise ValueError(f"{url.strip()!r}: the database must be a number")
        if parts.query or parts.fragment:
            raise ValueError(f"{url.strip()!r}: no query or fragment is accepted")
        return cls(
            parts.hostname,
            port,
            int(path or "0"),
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password is not None else None,
        )


class RedisClient(Service):
    """
    A reconnecting Redis client that fails commands fast while disconnected.

    Connects when started and, after a failed attempt or a lost connection,
    tries again after the delays of ``retry_policy`` (a backoff with jitter by
    default) until stopped.

    :ivar timeout: seconds a command may wait for its reply.
    :ivar max_pending: the most commands waiting for replies at once.
    :ivar connection: the connection in use, or ``None`` while disconnected.
    """

    def __init__(
        self,
        endpoint: IStreamClientEndpoint,
        reactor: Any,
        options: RedisOptions,
        timeout: float = 0.5,
        retry_policy: Callable[[int], float] | None = None,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.reactor = reactor
        self.max_pending = max_pending
        self.options = options
        self.timeout = timeout
        self.connection: RedisConnection | None = None
        self._endpoint = endpoint
        self._retry_policy = retry_policy or backoffPolicy(0.1, 2.0, 2.0)
        self._failures = 0
        self._attempt: Deferred[Any] | None = None
        self._retry: IDelayedCall | None = None
        self._connected: RedisConnection | None = None

    @classmethod
    def from_url(cls, url: str, reactor: Any, timeout: float = 0.5) -> RedisClient:
        """A client for ``redis://...`` (:class:`RedisOptions`); no I/O yet."""
        options = RedisOptions.from_url(url)
        endpoint = HostnameEndpoint(
            reactor, options.host, options.port, timeout=CONNECT_TIMEOUT
        )
        return cls(endpoint, reactor, options, timeout)

    def execute(self, *arguments: bytes | str | int) -> Deferred[Reply]:
        """Run a command; fails at once with :class:`StoreUnavailable` if offline."""
        if self.connection is None:
            return fail(StoreUnavailable("not connected to Redis"))
        return self.connection.execute(*arguments)

    def startService(self) -> None:
        """Start connecting."""
        super().startService()
        self._connect()

    def stopService(self) -> None:
        """Stop reconnecting and close the connection (waiting commands fail)."""
        super().stopService()
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        if self._attempt is not None:
            self._attempt.cancel()
        if self._connected is not None:
            self._connected.close("the Redis client was stopped")

    def _connect(self) -> None:
        self._retry = None
        attempt = self._endpoint.connect(_ConnectionFactory(self))
        self._attempt = attempt
        attempt.addCallback(self._handshake)
        attempt.addErrback(self._attempt_failed)

    def _handshake(self, connection: IProtocol) -> Deferred[None]:
        assert isinstance(connection, RedisConnection)  # built by our factory
        self._connected = connection
        return connection.handshake()

    def _attempt_failed(self, failure: Failure) -> None:
        self._attempt = None
        if self._connected is not None:
            # The handshake failed on an open connection: its loss retries.
            if self.running:
                log.warn("Redis refused the handshake: {error}", error=failure.value)
            self._connected.close(f"the handshake failed: {failure.value}")
            return
        if self.running:
            self._schedule_retry(failure.getErrorMessage())

    def _schedule_retry(self, why: str) -> None:
        self._failures += 1
        delay = self._retry_policy(self._failures)
        log.info(
            "cannot reach Redis at {host}:{port} ({why}); retrying in {delay:.1f} s",
            host=self.options.host,
            port=self.options.port,
            why=why,
            delay=delay,
        )
        self._retry = self.reactor.callLater(delay, self._connect)

    def connection_ready(self, connection: RedisConnection) -> None:
        """A connection finished its handshake: use it."""
        self._attempt = None
        self._failures = 0
        self.connection = connection
        log.info(
            "connected to Redis at {host}:{port}",
            host=self.options.host,
            port=self.options.port,
        )

    def connection_lost(self, connection: RedisConnection, why: str) -> None:
        """A connection ended: stop using it, and connect again if running."""
        if self._connected is not connection:
            return
        self._connected = None
        if self.connection is connection:
            self.connection = None
            log.warn(
                "lost the connection to Redis at {host}:{port}: {why}",
                host=self.options.host,
                port=self.options.port,
                why=why,
            )
        if self.running and self._attempt is None:
            self._schedule_retry(why)
