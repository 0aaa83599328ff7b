"""
A raw-socket HTTP/1.1 client for integration tests: exact bytes out, strict parsing in.

Every socket operation is bounded by a timeout; a response that does not come
in time fails the test instead of hanging it.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.integration.conftest import free_port, stop, wait_for_port

ORIGIN_SCRIPT = Path(__file__).resolve().parent / "servers" / "origin.py"
PATTERN = bytes(range(256)) * 256
"""The 64 KiB block the origin's streamed bodies repeat (see servers/origin.py)."""

TIMEOUT = 10.0
"""Seconds any one read or write may take, unless a caller says otherwise."""

_MAX_HEAD = 1024 * 1024
_NO_BODY_STATUSES = (204, 304)

HeaderPairs = list[tuple[bytes, bytes]]


def pattern(size: int) -> bytes:
    """The first ``size`` bytes the origin streams for ``/bytes/SIZE``."""
    return (PATTERN * (size // len(PATTERN) + 1))[:size]


@dataclass
class Response:
    """A response as received: status line, fields in order, decoded body."""

    version: bytes
    status: int
    reason: bytes
    headers: HeaderPairs
    body: bytes = b""

    def values(self, name: bytes) -> list[bytes]:
        """Every value of field ``name`` (case-insensitive), in order."""
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def header(self, name: bytes) -> bytes | None:
        """The only value of field ``name``, or None; fails if it is repeated."""
        values = self.values(name)
        assert len(values) <= 1, f"{name!r} repeated: {values}"
        return values[0] if values else None

    def names(self) -> set[bytes]:
        """The field names present, lower case."""
        return {n.lower() for n, _ in self.headers}

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


def request_bytes(
    method: bytes,
    target: bytes,
    host: bytes | None = b"a.example",
    headers: Sequence[tuple[bytes, bytes]] = (),
    body: bytes | None = None,
    version: bytes = b"HTTP/1.1",
) -> bytes:
    """
    A request's bytes: request line, Host (unless None), ``headers``, body.

    A ``body`` gets a Content-Length field (write the framing into ``headers``
    and the body yourself for anything else).
    """
    lines = [method + b" " + target + b" " + version]
    if host is not None:
        lines.append(b"Host: " + host)
    lines += [name + b": " + value for name, value in headers]
    if body is not None:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")


def chunked(*pieces: bytes) -> bytes:
    """``pieces`` in chunked coding, with the last chunk."""
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


class ClientConnection:
    """
    One client connection with a read buffer, so that pipelined responses and
    bytes after a response are never lost between calls.
    """

    def __init__(self, port: int, timeout: float = TIMEOUT) -> None:
        self.socket = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.socket.settimeout(timeout)
        self._buffer = bytearray()
        self._eof = False

    def __enter__(self) -> ClientConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close our side."""
        self.socket.close()

    def send(self, data: bytes) -> None:
        """Send all of ``data`` (each write bounded by the socket's timeout)."""
        self.socket.sendall(data)

    # --- reading ---------------------------------------------------------

    def _fill(self, deadline: float) -> bool:
        """Read more bytes into the buffer; False at EOF."""
        if self._eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no complete response in time")
        self.socket.settimeout(left)
        try:
            data = self.socket.recv(1024 * 1024)
        except ConnectionResetError:
            data = b""
        if not data:
            self._eof = True
            return False
        self._buffer += data
        return True

    def _take(self, size: int) -> bytes:
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def _line(self, deadline: float) -> bytes:
        while (end := self._buffer.find(b"\r\n")) < 0:
            if not self._fill(deadline):
                raise EOFError(
                    f"the connection closed mid-line: {bytes(self._buffer)!r}"
                )
        line = self._take(end)
        self._take(2)
        return line

    def read_head(self, timeout: float = TIMEOUT) -> Response:
        """Read one response head (a 1xx one too); its body is left unread."""
        deadline = time.monotonic() + timeout
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            if len(self._buffer) > _MAX_HEAD:
                raise AssertionError("a response head over 1 MiB")
            if not self._fill(deadline):
                raise EOFError(
                    f"the connection closed before a head: {bytes(self._buffer)!r}"
                )
        raw = self._take(end + 4)[:-4]
        assert b"\n" not in raw.replace(b"\r\n", b""), f"bare LF in {raw!r}"
        status_line, *lines = raw.split(b"\r\n")
        version, status, reason = [*status_line.split(b" ", 2), b""][:3]
        assert version in (b"HTTP/1.1", b"HTTP/1.0"), f"bad status line {raw!r}"
        headers: HeaderPairs = []
        for line in lines:
            name, colon, value = line.partition(b":")
            assert colon and name == name.strip(), f"bad field line {line!r}"
            headers.append((name, value.strip(b" \t")))
        return Response(version, int(status), reason, headers)

    def body_pieces(
        self, head: Response, method: bytes = b"GET", timeout: float = TIMEOUT
    ) -> Iterator[bytes]:
        """
        The body of the response ``head`` as it arrives, framed as RFC 9112
        section 6.3 says; ``timeout`` bounds the wait for each piece.
        """
        if method == b"HEAD" or head.status < 200 or head.status in _NO_BODY_STATUSES:
            return
        encoding = b",".join(head.values(b"transfer-encoding")).lower()
        if encoding:
            assert encoding.rsplit(b",", 1)[-1].strip() == b"chunked", encoding
            yield from self._chunked_pieces(timeout)
            return
        lengths = head.values(b"content-length")
        if lengths:
            assert len(set(lengths)) == 1, f"Content-Length fields {lengths}"
            left = int(lengths[0])
            while left:
                if not self._buffer and not self._fill(time.monotonic() + timeout):
                    raise EOFError(f"the connection closed with {left} bytes to come")
                piece = self._take(min(left, len(self._buffer)))
                left -= len(piece)
                yield piece
            return
        while self._buffer or self._fill(time.monotonic() + timeout):
            yield self._take(len(self._buffer))

    def _chunked_pieces(self, timeout: float) -> Iterator[bytes]:
        while True:
            size_line = self._line(time.monotonic() + timeout)
            size = int(size_line.partition(b";")[0].strip(), 16)
            if not size:
                break
            while size:
                if not self._buffer and not self._fill(time.monotonic() + timeout):
                    raise EOFError("the connection closed inside a chunk")
                piece = self._take(min(size, len(self._buffer)))
                size -= len(piece)
                yield piece
            assert self._line(time.monotonic() + timeout) == b"", "no CRLF after chunk"
        while self._line(time.monotonic() + timeout):
            pass  # trailer fields

    def read_response(
        self, method: bytes = b"GET", timeout: float = TIMEOUT, interim: bool = False
    ) -> Response:
        """
        Read one whole response; 1xx ones are skipped unless ``interim``.

        ``method`` is the request's (a HEAD response has no body).
        """
        deadline = time.monotonic() + timeout
        while True:
            head = self.read_head(max(0.0, deadline - time.monotonic()))
            if interim or head.status >= 200:
                break
        head.body = b"".join(self.body_pieces(head, method, timeout))
        return head

    def closed_by_peer(self, timeout: float = 5.0) -> bool:
        """
        Whether the peer closes the connection within ``timeout`` with nothing
        more sent; False if it stays open or sends more bytes.
        """
        if self._buffer:
            return False
        try:
            return not self._fill(time.monotonic() + timeout) and not self._buffer
        except TimeoutError:
            return False
        except OSError:
            return True

    def pending(self) -> bytes:
        """Bytes received but not yet read as part of a response."""
        return bytes(self._buffer)


def exchange(
    port: int, data: bytes, method: bytes = b"GET", timeout: float = TIMEOUT
) -> Response:
    """Send ``data`` on a new connection and read one response."""
    with ClientConnection(port, timeout) as connection:
        connection.send(data)
        return connection.read_response(method, timeout)


def get(
    port: int,
    target: bytes,
    host: bytes = b"a.example",
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> Response:
    """A GET on a new connection."""
    return exchange(port, request_bytes(b"GET", target, host, headers))


class OriginProcess:
    """A running ``servers/origin.py`` on a free port, logging request heads."""

    def __init__(self, name: str, log: Path) -> None:
        self.name = name
        self.port = free_port()
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, str(ORIGIN_SCRIPT), str(self.port), name, str(log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(self.port, self.process)
        except AssertionError:
            stop(self.process)
            raise

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, as written in ``servers``."""
        return f"127.0.0.1:{self.port}"

    def received(self) -> str:
        """Every request head (and incomplete head) received so far, as logged."""
        return self.log.read_text(encoding="utf-8") if self.log.exists() else ""

    def stop(self) -> None:
        """End the process."""
        stop(self.process)
