"""
The ``http_get`` health check: one HTTP/1.1 request, judged by status and body.

Options (the upstream's ``health.KEY`` keys):

``path``
    The request target, starting with ``/`` (default ``/``).
``status``
    The statuses that count as up: codes and ranges, comma-separated, such as
    ``200``, ``200-299`` or ``200,204,301-302`` (default ``200-399``).
``body``
    Text the response body must contain (within its first 64 KiB).
``host``
    The ``Host`` header (default the server's ``host:port``).
``method``
    ``GET`` (the default) or ``HEAD``; ``HEAD`` cannot be combined with ``body``.

A probe sends the request with ``Connection: close`` and reads the answer with
httptools through the same bounded reader as the proxy.  It decides as soon as
it can (at the head, unless ``body`` is set) and then closes the connection.
``https://`` servers are probed over TLS, verified against the platform's
trust roots for the server's ``server_name`` (as the proxy does).

The client is written here rather than taken from ``treq``: an Agent brings a
connection pool, redirects and body collection that a probe must then undo,
while these few lines make the timeout exact, bound every read, and run on a
``MemoryReactorClock`` in tests.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import httptools
from OpenSSL import SSL
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import wrapClientTLS
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IProtocol,
    IStreamClientEndpoint,
    ITCPTransport,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.ssl import optionsForClientTLS
from twisted.plugin import IPlugin
from twisted.python.failure import Failure
from zope.interface import implementer

from edgeproxy.core.health import HealthResult
from edgeproxy.errors import OptionError
from edgeproxy.health.tcp import (
    describe_connect_failure,
    probe_within,
    server_endpoint,
    unknown_option_problems,
)
from edgeproxy.http.message_reader import MessageError, MessageReader
from edgeproxy.interfaces import IHealthCheck, IHealthCheckFactory, IUpstreamServer
from edgeproxy.plugin_environment import PluginEnvironment

BODY_LIMIT = 64 * 1024
"""Bytes of a body searched for the ``body`` text; the rest is never read."""

_HEAD_LIMIT = 16 * 1024
_FIELD_LIMIT = 100
_OPTIONS = ("path", "status", "body", "host", "method")
_METHODS = ("GET", "HEAD")
# Visible ASCII only: the values go into the request line and a header field.
_TOKEN_TEXT = re.compile(r"[\x21-\x7e]+")
_STATUS_ITEM = re.compile(r"(\d{3})(?:-(\d{3}))?")


@dataclass(frozen=True)
class StatusRanges:
    """
    The statuses that count as up, as the ``status`` option writes them.

    :ivar ranges: inclusive ``(low, high)`` pairs.
    :ivar text: the option's text without blanks, for reasons such as
        ``status 503, expected 200-399``.
    """

    ranges: tuple[tuple[int, int], ...]
    text: str

    def includes(self, status: int) -> bool:
        """Whether ``status`` is one of these."""
        return any(low <= status <= high for low, high in self.ranges)


def parse_status_ranges(text: str) -> StatusRanges:
    """
    Parse ``200``, ``200-299`` or ``200,204,301-302`` (codes 100 to 599).

    :raises ValueError: saying what is wrong.
    """
    items = [item.strip() for item in text.split(",")]
    ranges = []
    for item in items:
        match = _STATUS_ITEM.fullmatch(item)
        if match is None:
            raise ValueError(
                f"{item!r} is not a status or a range (write e.g. 200-399, 204)"
            )
        low = int(match.group(1))
        high = int(match.group(2) or low)
        if not 100 <= low <= high <= 599:
            raise ValueError(f"{item!r} is not a range of statuses within 100-599")
        ranges.append((low, high))
    return StatusRanges(tuple(ranges), ",".join(items))


@dataclass(frozen=True)
class HttpGetSettings:
    """
    What an ``http_get`` check sends and expects.

    :ivar method: ``b"GET"`` or ``b"HEAD"``.
    :ivar path: the request target.
    :ivar statuses: the statuses that count as up.
    :ivar body: text the body must contain, or ``None``.
    :ivar host: the ``Host`` header, or ``None`` for the server's ``host:port``.
    """

    method: bytes = b"GET"
    path: bytes = b"/"
    statuses: StatusRanges = StatusRanges(((200, 399),), "200-399")
    body: str | None = None
    host: bytes | None = None

    def request_for(self, server: IUpstreamServer) -> bytes:
        """The request to send to ``server``."""
        host = self.host
        if host is None:
            name: str = server.host
            if ":" in name:
                name = f"[{name}]"
            host = f"{name}:{server.port}".encode("ascii", "replace")
        return b"".join(
            [
                self.method + b" " + self.path + b" HTTP/1.1\r\n",
                b"Host: " + host + b"\r\n",
                b"User-Agent: edgeproxy-health-check\r\n",
                b"Accept: */*\r\n",
                b"Connection: close\r\n\r\n",
            ]
        )


def read_settings(options: Mapping[str, str]) -> HttpGetSettings:
    """
    Read and check the ``http_get`` options.

    :raises OptionError: listing every bad option, then every unknown one.
    """
    problems: list[tuple[str, str]] = []
    defaults = HttpGetSettings()

    def token(key: str, what: str) -> bytes | None:
        value = options.get(key)
        if value is None:
            return None
        value = value.strip()
        if not _TOKEN_TEXT.fullmatch(value):
            problems.append((key, f"{what} must be visible ASCII without spaces"))
            return None
        return value.encode("ascii")

    path = token("path", "a path")
    if path is not None and not path.startswith(b"/"):
        problems.append(("path", "must start with /"))
        path = None
    host = token("host", "a host")
    method = options.get("method", "GET").strip().upper()
    if method not in _METHODS:
        problems.append(("method", f"{method!r} is not GET or HEAD"))
    statuses = defaults.statuses
    if "status" in options:
        try:
            statuses = parse_status_ranges(options["status"])
        except ValueError as error:
            problems.append(("status", str(error)))
    body = options.get("body")
    if body is not None:
        body = body.strip()
        if not body:
            problems.append(("body", "must not be empty"))
        elif method == "HEAD":
            problems.append(("body", "a HEAD response has no body (use method GET)"))
    problems.extend(unknown_option_problems(options, _OPTIONS))
    if problems:
        raise OptionError(problems)
    return HttpGetSettings(
        method=method.encode("ascii"),
        path=path or defaults.path,
        statuses=statuses,
        body=body,
        host=host,
    )


class HttpProbeProtocol(Protocol):
    """
    Sends one request and judges the response as soon as it can.

    :ivar verdict: fires with the :class:`HealthResult` (without latency);
        cancelling it drops the connection.
    """

    def __init__(self, settings: HttpGetSettings, request: bytes) -> None:
        self._settings = settings
        self._request = request
        self._needle = None if settings.body is None else settings.body.encode()
        self._status = 0
        self._body = b""
        self._awaiting_body = False
        self._reader = MessageReader(
            httptools.HttpResponseParser,
            self._begun,
            self._head,
            self._body_piece,
            self._complete,
            max_head_size=_HEAD_LIMIT,
            max_field_count=_FIELD_LIMIT,
        )
        self.verdict: Deferred[HealthResult] = Deferred(self._cancel)

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self._request)

    def dataReceived(self, data: bytes) -> None:
        if self.verdict.called:
            return
        try:
            self._reader.feed(data)
        except MessageError as error:
            self._decide(False, f"malformed response: {error.reason}")
        except httptools.HttpParserUpgrade:
            # Only a 101 gets here, and it was judged at its head.
            self._decide(False, "the server switched protocols")
        except httptools.HttpParserError as error:
            self._decide(False, f"malformed response: {error}")

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.connected = False
        if self.verdict.called:
            return
        if self._awaiting_body:
            # A body delimited by the end of the connection ends here.
            self._complete()
        elif reason.check(SSL.Error):
            self._decide(False, f"TLS failed: {_ssl_reason(reason)}")
        elif reason.check(ConnectionDone):
            self._decide(False, "connection closed before a complete response")
        else:
            self._decide(False, "connection lost before a complete response")

    def _begun(self) -> None:
        self._status = 0

    def _head(self) -> None:
        status: int = self._reader.parser.get_status_code()
        self._status = status
        if 100 <= status < 200 and status != 101:
            return  # an interim response (103 Early Hints): the real one follows
        statuses = self._settings.statuses
        if not statuses.includes(status):
            self._decide(False, f"status {status}, expected {statuses.text}")
        elif self._needle is None or self._settings.method == b"HEAD":
            self._decide(True, f"status {status}")
        else:
            self._awaiting_body = True

    def _body_piece(self, data: bytes) -> None:
        if not self._awaiting_body or self.verdict.called:
            return
        needle = self._needle
        assert needle is not None
        # Search only where a match could end in the new piece.
        start = max(0, len(self._body) - len(needle) + 1)
        self._body += data[: BODY_LIMIT - len(self._body)]
        if needle in self._body[start:]:
            found = f"status {self._status}, body has {self._settings.body!r}"
            self._decide(True, found)
        elif len(self._body) >= BODY_LIMIT:
            self._decide(
                False,
                f"body lacks {self._settings.body!r} in its first {BODY_LIMIT} bytes",
            )

    def _complete(self) -> None:
        if self._awaiting_body and not self.verdict.called:
            self._decide(False, f"body lacks {self._settings.body!r}")

    def _decide(self, up: bool, reason: str) -> None:
        """Fire the verdict once and stop reading."""
        self._awaiting_body = False
        if self.connected and self.transport is not None:
            self.transport.loseConnection()
        if not self.verdict.called:
            self.verdict.callback(HealthResult(up, reason))

    def _cancel(self, verdict: Deferred[HealthResult]) -> None:
        if self.transport is not None:
            # Every stream transport (TCP, TLS) can abort; the interface
            # the protocol is given only promises loseConnection, which would
            # wait for a peer that does not read.
            cast(ITCPTransport, self.transport).abortConnection()


def _ssl_reason(failure: Failure) -> str:
    """The most telling words of an OpenSSL error (``certificate verify failed``)."""
    error = failure.value
    if error is None:
        return "unknown error"
    details = error.args[0] if error.args else None
    if isinstance(details, list) and details:
        last = details[-1]
        if isinstance(last, tuple) and last:
            return str(last[-1])
    return str(error) or type(error).__name__


class _ProbeFactory(Factory):
    """Makes one :class:`HttpProbeProtocol`, without a log line per probe."""

    noisy = False

    def __init__(self, settings: HttpGetSettings, request: bytes) -> None:
        self._settings = settings
        self._request = request

    def buildProtocol(self, addr: object) -> HttpProbeProtocol:
        protocol = HttpProbeProtocol(self._settings, self._request)
        protocol.factory = self
        return protocol


def _verdict_of(protocol: IProtocol) -> Deferred[HealthResult]:
    """The verdict of the probe protocol that ``_ProbeFactory`` built."""
    if not isinstance(protocol, HttpProbeProtocol):
        raise TypeError(f"expected an HttpProbeProtocol, got {protocol!r}")
    return protocol.verdict


@implementer(IHealthCheck)
class HttpGetCheck:
    """
    Probe a server with one HTTP request.

    :param settings: what to send and expect.
    :param reactor: the reactor to connect and time with.
    """

    def __init__(self, settings: HttpGetSettings, reactor: Any) -> None:
        self.settings = settings
        self._reactor = reactor
        # One TLS context per server name: making one loads the trust roots.
        self._tls: dict[str, IOpenSSLClientConnectionCreator] = {}

    def __repr__(self) -> str:
        settings = self.settings
        return f"<HttpGetCheck {settings.method.decode()} {settings.path.decode()}>"

    def check(self, server: IUpstreamServer, timeout: float) -> Deferred[HealthResult]:
        """
        Send the request to ``server`` and judge the response.

        Up (``status 200``) when the status is expected and the body (if
        asked) has the text; down with ``status 503, expected 200-399``,
        ``body lacks 'ok'``, ``connection refused``, ``timed out after
        2.0s``, ``malformed response: ...`` or ``TLS failed: ...`` otherwise.
        """
        host: str = server.host

        def attempt() -> Deferred[HealthResult]:
            endpoint = self._endpoint(server)
            factory = _ProbeFactory(self.settings, self.settings.request_for(server))
            return endpoint.connect(factory).addCallback(_verdict_of)

        def explain(failure: Failure) -> str:
            return describe_connect_failure(failure, host)

        return probe_within(self._reactor, timeout, attempt, explain)

    def _endpoint(self, server: IUpstreamServer) -> IStreamClientEndpoint:
        endpoint = server_endpoint(self._reactor, server.host, server.port)
        if not server.tls:
            return endpoint
        name: str = server.server_name
        creator = self._tls.get(name)
        if creator is None:
            creator = self._tls[name] = optionsForClientTLS(name)
        return wrapClientTLS(creator, endpoint)


@implementer(IPlugin, IHealthCheckFactory)
class HttpGetCheckFactory:
    """
    The ``http_get`` health-check plugin (options: see the module's docstring).

    :ivar name: ``"http_get"``.
    :ivar description: one line for ``--list-plugins``.
    """

    name = "http_get"
    description = (
        "Up when an HTTP request answers with an expected status (and body text)."
    )

    def __repr__(self) -> str:
        return "<HttpGetCheckFactory http_get>"

    def build(
        self, options: Mapping[str, str], environment: PluginEnvironment
    ) -> HttpGetCheck:
        """
        Make an ``http_get`` check that uses the environment's reactor.

        :raises OptionError: listing every bad or unknown option.
        """
        return HttpGetCheck(read_settings(options), environment.reactor)


http_get_check_factory = HttpGetCheckFactory()
"""The ``http_get`` plugin object."""
