"""
A controllable HTTP/1.1 origin server for integration tests, on 127.0.0.1.

    python origin.py PORT NAME [LOG]

It parses requests itself (leniently, keeping every header field in order, with
repeats) so that it can report exactly what a proxy sent it, and answers by path:

- ``/bytes/N``, ``/chunked/N``, ``/close-delimited/N``: N bytes of
  :data:`PATTERN` (byte ``i`` is ``i % 256``), streamed with flow control,
  framed by Content-Length, chunked, or by closing the connection;
- ``/upload``: the body's length and sha256, as JSON;
- ``/status/N``: status N with a short body (none for 204 and 304);
- ``/slow-head/S``: an answer after S seconds;
- ``/stall-body``: a head and part of the body, then nothing, forever;
- ``/die-mid-body``: a head and half the body, then the connection closes;
- ``/garbage``: bytes that are not HTTP (the connection stays open);
- ``/redirect-self``: a 302 whose Location and Refresh name this server;
- ``/headers-hop``: hop-by-hop fields that a proxy must not pass on;
- anything else (``/echo``): JSON of the method, target, header fields as
  ``[name, value]`` pairs, the body's length and sha256 and NAME.

Every response carries ``X-Origin: NAME``.  Connections are kept alive unless
the client (HTTP/1.0, or ``Connection: close``) says otherwise.  With LOG, each
request head received is appended to that file as one JSON line, and so is an
incomplete head left when a connection closes: a test can tell whether a
request reached the origin at all.  The test ends the process by its PID.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any, cast
from typing import Protocol as TypingProtocol

from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure

PATTERN = bytes(range(256)) * 256
"""The 64 KiB block that streamed bodies repeat: byte ``i`` is ``i % 256``."""

_MAX_HEAD = 256 * 1024
_NO_BODY_STATUSES = (204, 304)
_REASONS = {
    200: b"OK",
    204: b"No Content",
    302: b"Found",
    304: b"Not Modified",
    400: b"Bad Request",
    404: b"Not Found",
}

HeaderPairs = list[tuple[bytes, bytes]]


class Stream(TypingProtocol):
    """The parts of a TCP transport used here (ITransport leaves out producers)."""

    def write(self, data: bytes) -> None:
        """Send ``data``."""

    def loseConnection(self) -> None:
        """Close after sending what is buffered."""

    def pauseProducing(self) -> None:
        """Stop reading."""

    def resumeProducing(self) -> None:
        """Read again."""

    def registerProducer(self, producer: object, streaming: bool) -> None:
        """Let ``producer`` write as the socket drains."""

    def unregisterProducer(self) -> None:
        """Forget the producer."""


@dataclass
class Request:
    """One request as received: its head and a running digest of its body."""

    method: bytes
    target: bytes
    version: bytes
    headers: HeaderPairs
    body_length: int = 0
    body_digest: Any = field(default_factory=hashlib.sha256)

    def header(self, name: bytes) -> bytes | None:
        """The last value of field ``name`` (case-insensitive), or None."""
        values = [v for n, v in self.headers if n.lower() == name]
        return values[-1] if values else None

    @property
    def path(self) -> bytes:
        """The target without its query."""
        return self.target.partition(b"?")[0]

    def body_received(self, data: bytes) -> None:
        """Count and digest a piece of the body."""
        self.body_length += len(data)
        self.body_digest.update(data)


class OriginSite:
    """What the whole server shares: its name, port, log file and reactor."""

    def __init__(
        self, reactor: IReactorTime, port: int, name: str, log: IO[str] | None
    ) -> None:
        self.reactor = reactor
        self.port = port
        self.name = name.encode()
        self._log = log

    def record(self, event: str, raw: bytes) -> None:
        """Append one event with the raw bytes it is about to the log."""
        if self._log is not None:
            line = {"event": event, "raw": raw.decode("latin-1")}
            self._log.write(json.dumps(line) + "\n")
            self._log.flush()


class PatternBody:
    """
    A pull producer writing ``length`` bytes of :data:`PATTERN`.

    Twisted calls ``resumeProducing`` whenever the socket's buffer has drained,
    so at most one block waits in memory.
    """

    def __init__(
        self,
        connection: OriginConnection,
        length: int,
        chunked: bool,
        done: Callable[[], None],
    ) -> None:
        self._connection = connection
        self._remaining = length
        self._chunked = chunked
        self._done = done
        self._stopped = False

    def resumeProducing(self) -> None:
        """Write the next block, or the end."""
        if self._stopped:
            return
        transport = self._connection.stream
        size = min(len(PATTERN), self._remaining)
        self._remaining -= size
        if size and self._chunked:
            transport.write(b"%x\r\n" % size + PATTERN[:size] + b"\r\n")
        elif size:
            transport.write(PATTERN[:size])
        if not self._remaining:
            self._stopped = True
            transport.unregisterProducer()
            if self._chunked:
                transport.write(b"0\r\n\r\n")
            self._done()

    def stopProducing(self) -> None:
        """The connection is gone."""
        self._stopped = True


class OriginConnection(Protocol):
    """One client connection: parse requests one by one and answer each."""

    def __init__(self, site: OriginSite) -> None:
        self._site = site
        self._buffer = bytearray()
        self._request: Request | None = None
        self._body_left = 0  # Content-Length bytes still to come
        self._chunk_state = ""  # "", "size", "data", "data-end", "trailer"
        self._keep_alive = True
        self._responding = False
        self._timer: IDelayedCall | None = None

    @property
    def stream(self) -> Stream:
        """The connection's transport."""
        return cast(Stream, self.transport)

    def dataReceived(self, data: bytes) -> None:
        """Buffer the bytes and parse whatever is complete."""
        self._buffer += data
        self._parse()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Log an incomplete head; forget a pending answer."""
        if self._request is None and not self._responding and self._buffer:
            self._site.record("partial", bytes(self._buffer[:_MAX_HEAD]))
        if self._timer is not None and self._timer.active():
            self._timer.cancel()

    # --- parsing ---------------------------------------------------------

    def _parse(self) -> None:
        while not self._responding and self.transport is not None:
            if self._request is None:
                if not self._parse_head():
                    return
            elif not self._parse_body():
                return

    def _parse_head(self) -> bool:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > _MAX_HEAD:
                self._fail(b"head too large")
            return False
        raw = bytes(self._buffer[: end + 4])
        del self._buffer[: end + 4]
        self._site.record("head", raw)
        lines = raw[:end].split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3:
            self._fail(b"bad request line")
            return False
        headers: HeaderPairs = []
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon:
                self._fail(b"bad header line")
                return False
            headers.append((name, value.strip()))
        method, target, version = parts
        request = Request(method, target, version, headers)
        self._request = request
        connection = (request.header(b"connection") or b"").lower()
        if version == b"HTTP/1.0":
            self._keep_alive = b"keep-alive" in connection
        else:
            self._keep_alive = b"close" not in connection
        encoding = (request.header(b"transfer-encoding") or b"").lower()
        if b"chunked" in encoding:
            self._chunk_state = "size"
        else:
            self._body_left = int(request.header(b"content-length") or b"0")
        expects = (request.header(b"expect") or b"").lower() == b"100-continue"
        if expects and (self._chunk_state or self._body_left):
            self._write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return True

    def _parse_body(self) -> bool:
        request = self._request
        assert request is not None
        if self._chunk_state:
            return self._parse_chunked(request)
        if self._body_left:
            if not self._buffer:
                return False
            piece = bytes(self._buffer[: self._body_left])
            del self._buffer[: len(piece)]
            self._body_left -= len(piece)
            request.body_received(piece)
            if self._body_left:
                return False
        self._dispatch(request)
        return True

    def _parse_chunked(self, request: Request) -> bool:
        if self._chunk_state == "data":
            if not self._buffer:
                return False
            piece = bytes(self._buffer[: self._body_left])
            del self._buffer[: len(piece)]
            self._body_left -= len(piece)
            request.body_received(piece)
            if not self._body_left:
                self._chunk_state = "data-end"
            return True
        end = self._buffer.find(b"\r\n")
        if end < 0:
            return False
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 2]
        if self._chunk_state == "size":
            try:
                self._body_left = int(line.partition(b";")[0].strip(), 16)
            except ValueError:
                self._fail(b"bad chunk size")
                return False
            self._chunk_state = "data" if self._body_left else "trailer"
        elif self._chunk_state == "data-end":
            self._chunk_state = "size"
        elif not line:  # the empty line after the trailer fields
            self._chunk_state = ""
            self._dispatch(request)
        return True

    def _fail(self, why: bytes) -> None:
        self._keep_alive = False
        self._respond(400, [], why + b"\n")

    # --- answering -------------------------------------------------------

    def _dispatch(self, request: Request) -> None:
        self._responding = True
        # No more requests are read until this one is answered: back-pressure
        # for pipelining clients.
        self.stream.pauseProducing()
        path = request.path
        route = path.split(b"/")[1] if path.count(b"/") >= 2 else b""
        argument = path.split(b"/", 2)[2] if route else b""
        answers: dict[bytes, Callable[[Request, bytes], None]] = {
            b"bytes": self._pattern,
            b"chunked": self._pattern,
            b"close-delimited": self._pattern,
            b"status": self._status,
            b"slow-head": self._slow_head,
        }
        fixed: dict[bytes, Callable[[Request], None]] = {
            b"/upload": self._upload,
            b"/stall-body": self._stall_body,
            b"/die-mid-body": self._die_mid_body,
            b"/garbage": self._garbage,
            b"/redirect-self": self._redirect_self,
            b"/headers-hop": self._headers_hop,
        }
        if route in answers and argument.replace(b".", b"").isdigit():
            answers[route](request, argument)
        elif path in fixed:
            fixed[path](request)
        else:
            self._echo(request)

    def _write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def _head(self, status: int, headers: HeaderPairs) -> bytes:
        reason = _REASONS.get(status, b"Status")
        lines = [b"HTTP/1.1 %d %s" % (status, reason)]
        fields = [(b"X-Origin", self._site.name), *headers]
        if not self._keep_alive:
            fields.append((b"Connection", b"close"))
        lines += [name + b": " + value for name, value in fields]
        return b"\r\n".join(lines) + b"\r\n\r\n"

    def _respond(self, status: int, headers: HeaderPairs, body: bytes) -> None:
        """Send a whole response with Content-Length, then finish."""
        request = self._request
        length: HeaderPairs = []
        if status not in _NO_BODY_STATUSES:
            length = [(b"Content-Length", b"%d" % len(body))]
        else:
            body = b""
        if request is not None and request.method == b"HEAD":
            body = b""
        self._write(self._head(status, headers + length) + body)
        self._finish()

    def _finish(self) -> None:
        """The response is complete: read the next request, or close."""
        self._request = None
        self._responding = False
        self._chunk_state = ""
        self._body_left = 0
        if self.transport is None:
            return
        if not self._keep_alive:
            self.transport.loseConnection()
            return
        self.stream.resumeProducing()
        self._parse()

    def _json(self, value: dict[str, Any]) -> None:
        body = json.dumps(value).encode()
        self._respond(200, [(b"Content-Type", b"application/json")], body)

    def _echo(self, request: Request) -> None:
        body = json.dumps(
            {
                "method": request.method.decode("latin-1"),
                "target": request.target.decode("latin-1"),
                "version": request.version.decode("latin-1"),
                "headers": [
                    [n.decode("latin-1"), v.decode("latin-1")]
                    for n, v in request.headers
                ],
                "body_length": request.body_length,
                "body_sha256": request.body_digest.hexdigest(),
                "server": self._site.name.decode(),
            }
        ).encode()
        headers = [
            (b"Content-Type", b"application/json"),
            (b"Set-Cookie", b"first=1"),
            (b"Set-Cookie", b"second=2"),
        ]
        self._respond(200, headers, body)

    def _upload(self, request: Request) -> None:
        self._json(
            {
                "length": request.body_length,
                "sha256": request.body_digest.hexdigest(),
                "server": self._site.name.decode(),
            }
        )

    def _pattern(self, request: Request, argument: bytes) -> None:
        length = int(argument)
        route = request.path.split(b"/")[1]
        framing: HeaderPairs = [(b"Content-Type", b"application/octet-stream")]
        if route == b"bytes":
            framing.append((b"Content-Length", b"%d" % length))
        elif route == b"chunked":
            framing.append((b"Transfer-Encoding", b"chunked"))
        else:
            self._keep_alive = False
        self._write(self._head(200, framing))
        if request.method == b"HEAD":
            self._finish()
            return
        body = PatternBody(self, length, route == b"chunked", self._finish)
        self.stream.registerProducer(body, False)

    def _status(self, request: Request, argument: bytes) -> None:
        status = int(argument)
        self._respond(status, [], b"status %d\n" % status)

    def _slow_head(self, request: Request, argument: bytes) -> None:
        def answer() -> None:
            self._timer = None
            self._respond(200, [], b"slow\n")

        self._timer = self._site.reactor.callLater(float(argument), answer)

    def _stall_body(self, request: Request) -> None:
        self._write(self._head(200, [(b"Content-Length", b"1000")]) + b"s" * 100)

    def _die_mid_body(self, request: Request) -> None:
        self._write(self._head(200, [(b"Content-Length", b"1000")]) + b"d" * 500)
        assert self.transport is not None
        self.transport.loseConnection()

    def _garbage(self, request: Request) -> None:
        self._write(b"\x00\x01 this is not HTTP at all \xff\xfe\r\n\r\n")

    def _redirect_self(self, request: Request) -> None:
        own = b"http://127.0.0.1:%d" % self._site.port
        headers = [
            (b"Location", own + b"/echo"),
            (b"Refresh", b"0; url=" + own + b"/x"),
        ]
        self._respond(302, headers, b"elsewhere\n")

    def _headers_hop(self, request: Request) -> None:
        headers = [
            (b"Connection", b"X-Private"),
            (b"X-Private", b"secret"),
            (b"Keep-Alive", b"timeout=5"),
            (b"Proxy-Connection", b"keep-alive"),
            (b"X-Public", b"visible"),
        ]
        self._respond(200, headers, b"hop\n")


class OriginFactory(Factory):
    """Builds an :class:`OriginConnection` per client."""

    def __init__(self, site: OriginSite) -> None:
        self._site = site

    def buildProtocol(self, addr: object) -> OriginConnection:
        """A connection sharing this server's site."""
        return OriginConnection(self._site)


def main(reactor: Any, port: str, name: str, log_path: str = "") -> Deferred[None]:
    """Listen on 127.0.0.1:PORT and serve until killed."""
    log = open(log_path, "a", encoding="utf-8") if log_path else None  # noqa: SIM115
    site = OriginSite(reactor, int(port), name, log)
    endpoint = serverFromString(reactor, f"tcp:{port}:interface=127.0.0.1")
    endpoint.listen(OriginFactory(site))
    return Deferred()


if __name__ == "__main__":
    task.react(main, sys.argv[1:])
