"""Tests for edgeproxy.health.http_get: options, the request, judging responses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.error import (
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
)
from twisted.internet.interfaces import IProtocol
from twisted.internet.protocol import ClientFactory
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from edgeproxy.core.health import HealthResult
from edgeproxy.errors import OptionError
from edgeproxy.health.http_get import (
    BODY_LIMIT,
    StatusRanges,
    http_get_check_factory,
    parse_status_ranges,
)
from edgeproxy.interfaces import IUpstreamServer
from edgeproxy.testing import FakeServer, environment
from edgeproxy.upstream.server import UpstreamServer
from edgeproxy.upstream.server_list import parse_servers

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@dataclass
class Probe:
    """One http_get probe on a fake reactor, connected by hand."""

    reactor: MemoryReactorClock
    results: list[HealthResult]
    transport: StringTransport | None = None
    protocol: IProtocol | None = None

    def connect(self) -> StringTransport:
        """Complete the probe's connection; return its transport."""
        [(host, port, factory, _timeout, _bind)] = self.reactor.tcpClients
        self.transport = StringTransport()
        self.protocol = factory.buildProtocol(IPv4Address("TCP", host, port))
        assert self.protocol is not None
        self.protocol.makeConnection(self.transport)
        return self.transport

    def answer(self, *pieces: bytes) -> list[HealthResult]:
        """Connect, deliver the response in pieces, and return the results."""
        self.connect()
        assert self.protocol is not None
        for piece in pieces:
            self.protocol.dataReceived(piece)
        return self.results

    def close(self, reason: Failure) -> None:
        """The connection ends."""
        assert self.protocol is not None
        self.protocol.connectionLost(reason)


def start_probe(
    options: Mapping[str, str] | None = None,
    server: IUpstreamServer | None = None,
    timeout: float = 2.0,
) -> Probe:
    """Build an http_get check with ``options`` and start one probe."""
    reactor = MemoryReactorClock()
    check = http_get_check_factory.build(options or {}, environment(reactor))
    results: list[HealthResult] = []
    target = server if server is not None else FakeServer("10.0.0.1", 9001)
    check.check(target, timeout).addCallback(results.append)
    return Probe(reactor, results)


def option_problems(**options: str) -> tuple[tuple[str, str], ...]:
    """The problems that building http_get with ``options`` reports."""
    with pytest.raises(OptionError) as raised:
        http_get_check_factory.build(options, environment())
    return raised.value.problems


# --- the plugin and its options -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ranges", "normal"),
    [
        ("200", ((200, 200),), "200"),
        ("200-299", ((200, 299),), "200-299"),
        (
            " 200, 204 ,301-302 ",
            ((200, 200), (204, 204), (301, 302)),
            "200,204,301-302",
        ),
        ("100-599", ((100, 599),), "100-599"),
    ],
)
def test_status_ranges_are_parsed(
    text: str, ranges: tuple[tuple[int, int], ...], normal: str
) -> None:
    """Codes and ranges, comma-separated, are read; the text is kept for reasons."""
    assert parse_status_ranges(text) == StatusRanges(ranges, normal)


@pytest.mark.parametrize(
    ("status", "included"),
    [(199, False), (200, True), (204, True), (205, False), (302, True), (303, False)],
)
def test_status_ranges_include_their_codes(status: int, included: bool) -> None:
    """A status is included when it falls in any of the ranges."""
    assert parse_status_ranges("200,204,301-302").includes(status) is included


@pytest.mark.parametrize(
    ("options", "problems"),
    [
        ({"path": "health"}, [("path", "must start with /")]),
        (
            {"path": "/a b"},
            [("path", "a path must be visible ASCII without spaces")],
        ),
        (
            {"status": "2xx"},
            [("status", "'2xx' is not a status or a range (write e.g. 200-399, 204)")],
        ),
        (
            {"status": "300-200"},
            [("status", "'300-200' is not a range of statuses within 100-599")],
        ),
        (
            {"status": "600"},
            [("status", "'600' is not a range of statuses within 100-599")],
        ),
        (
            {"status": "200,"},
            [("status", "'' is not a status or a range (write e.g. 200-399, 204)")],
        ),
        ({"method": "POST"}, [("method", "'POST' is not GET or HEAD")]),
        (
            {"method": "HEAD", "body": "ok"},
            [("body", "a HEAD response has no body (use method GET)")],
        ),
        ({"body": "  "}, [("body", "must not be empty")]),
        ({"host": "a b"}, [("host", "a host must be visible ASCII without spaces")]),
        (
            {"path": "x", "method": "PUT", "timeout": "2s"},
            [
                ("path", "must start with /"),
                ("method", "'PUT' is not GET or HEAD"),
                (
                    "timeout",
                    "unknown option (known options: path, status, body, host, method)",
                ),
            ],
        ),
    ],
)
def test_bad_options_are_all_reported(
    options: dict[str, str], problems: list[tuple[str, str]]
) -> None:
    """Every bad or unknown option is reported at once, naming its key."""
    assert option_problems(**options) == tuple(problems)


# --- the request -------------------------------------------------------------------


def sent_request(
    options: Mapping[str, str] | None = None, server: IUpstreamServer | None = None
) -> bytes:
    """The bytes a probe with ``options`` sends to ``server``."""
    sent: bytes = start_probe(options, server).connect().value()
    return sent


def test_the_default_request() -> None:
    """By default: GET / with Host host:port and Connection: close."""
    assert sent_request() == (
        b"GET / HTTP/1.1\r\n"
        b"Host: 10.0.0.1:9001\r\n"
        b"User-Agent: edgeproxy-health-check\r\n"
        b"Accept: */*\r\n"
        b"Connection: close\r\n\r\n"
    )


def test_the_options_shape_the_request() -> None:
    """path, host and method go into the request line and the Host header."""
    request = sent_request({"path": "/health?full=1", "host": "api", "method": "head"})
    assert request.startswith(b"HEAD /health?full=1 HTTP/1.1\r\nHost: api\r\n")


def test_an_ipv6_host_header_is_bracketed() -> None:
    """The default Host of an IPv6 server puts its address in brackets."""
    assert b"\r\nHost: [::1]:9001\r\n" in sent_request(server=FakeServer("::1", 9001))


# --- judging the response ---------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "pieces", "expected"),
    [
        ({}, [OK], (True, "status 200")),
        ({}, [b"HTTP/1.1 301 Moved\r\nLocation: /x\r\n\r\n"], (True, "status 301")),
        (
            {},
            [b"HTTP/1.1 503 Unavailable\r\nContent-Length: 0\r\n\r\n"],
            (False, "status 503, expected 200-399"),
        ),
        (
            {"status": "200-299"},
            [b"HTTP/1.1 301 Moved\r\nContent-Length: 0\r\n\r\n"],
            (False, "status 301, expected 200-299"),
        ),
        (
            {"status": "200, 204"},
            [b"HTTP/1.1 204 No Content\r\n\r\n"],
            (True, "status 204"),
        ),
        ({"body": "ok"}, [OK], (True, "status 200, body has 'ok'")),
        (
            {"body": "ok"},
            [b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfine"],
            (False, "body lacks 'ok'"),
        ),
        (
            {"body": "ok"},
            [b"HTTP/1.1 500 Oops\r\nContent-Length: 2\r\n\r\nok"],
            (False, "status 500, expected 200-399"),
        ),
        (
            {"body": "ready"},
            [
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                b"3\r\nrea\r\n",
                b"2\r\ndy\r\n0\r\n\r\n",
            ],
            (True, "status 200, body has 'ready'"),
        ),
        (
            {"method": "HEAD"},
            [b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"],
            (True, "status 200"),
        ),
        (
            {},
            [b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n", OK],
            (True, "status 200"),
        ),
        (
            {},
            [
                b"HTTP/1.1 101 Switching Protocols\r\n"
                b"Upgrade: x\r\nConnection: Upgrade\r\n\r\n"
            ],
            (False, "status 101, expected 200-399"),
        ),
        (
            {},
            [b"HTTP/1.1 200 OK\r\nX: " + b"a" * 20000 + b"\r\n\r\n"],
            (False, "malformed response: header section too large"),
        ),
    ],
)
def test_responses_are_judged(
    options: dict[str, str], pieces: list[bytes], expected: tuple[bool, str]
) -> None:
    """Status, body text and well-formedness decide up or down, with a reason."""
    probe = start_probe(options)
    [result] = probe.answer(*pieces)
    assert (result.up, result.reason) == expected
    assert probe.transport is not None and probe.transport.disconnecting


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"HTTP/1.1 200 OK\nBare: lf\n\n",
    ],
)
def test_malformed_responses_are_down(response: bytes) -> None:
    """A response the strict parser refuses is down, saying what the parser found."""
    probe = start_probe()
    [result] = probe.answer(response)
    assert not result.up
    assert result.reason.startswith("malformed response: ")
    assert probe.transport is not None and probe.transport.disconnecting


def test_the_verdict_comes_as_soon_as_it_can() -> None:
    """Without body text the probe decides at the head and reads no further."""
    probe = start_probe()
    probe.reactor.advance(0.125)
    assert probe.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n") == [
        HealthResult(True, "status 200", 0.125)
    ]
    assert probe.reactor.getDelayedCalls() == []


def test_body_text_is_found_across_pieces() -> None:
    """The body text is found even when it arrives one byte at a time."""
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nstatus=ready"
    probe = start_probe({"body": "ready"})
    [result] = probe.answer(*(response[i : i + 1] for i in range(len(response))))
    assert result.reason == "status 200, body has 'ready'"


def test_only_a_bounded_body_is_searched() -> None:
    """The body text must be within the first 64 KiB; the probe stops reading there."""
    size = BODY_LIMIT + 100
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode()
    probe = start_probe({"body": "ok"})
    [result] = probe.answer(head, b"x" * BODY_LIMIT, b"ok" + b"x" * 98)
    assert result.reason == f"body lacks 'ok' in its first {BODY_LIMIT} bytes"
    assert not result.up


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"all ok", (True, "status 200, body has 'ok'")),
        (b"bad", (False, "body lacks 'ok'")),
    ],
)
def test_a_body_ended_by_closing_is_judged_at_the_close(
    body: bytes, expected: tuple[bool, str]
) -> None:
    """A body without a length ends with the connection; it is judged then."""
    probe = start_probe({"body": "ok"})
    probe.answer(b"HTTP/1.0 200 OK\r\n\r\n", body)
    probe.close(Failure(ConnectionDone()))
    [result] = probe.results
    assert (result.up, result.reason) == expected


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        (ConnectionDone(), "connection closed before a complete response"),
        (ConnectionLost(), "connection lost before a complete response"),
    ],
)
def test_a_connection_that_ends_early_is_down(reason: Exception, words: str) -> None:
    """A connection that ends before a complete head is a down result."""
    probe = start_probe()
    probe.answer(b"HTTP/1.1 200 O")
    probe.close(Failure(reason))
    assert [(r.up, r.reason) for r in probe.results] == [(False, words)]


def test_a_refused_connection_is_down() -> None:
    """A refused connection is reported as such."""
    probe = start_probe()
    [(_host, _port, factory, _timeout, _bind)] = probe.reactor.tcpClients
    assert isinstance(factory, ClientFactory)
    factory.clientConnectionFailed(
        probe.reactor.connectors[0], Failure(ConnectionRefusedError())
    )
    assert probe.results == [HealthResult(False, "connection refused", 0.0)]


def test_a_slow_response_times_out_and_drops_the_connection() -> None:
    """A response still incomplete at the timeout aborts the connection."""
    probe = start_probe({"body": "ok"}, timeout=2.0)
    probe.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nwait")
    probe.reactor.advance(2.0)
    assert probe.results == [HealthResult(False, "timed out after 2.0s", 2.0)]
    assert probe.transport is not None and probe.transport.disconnected
    # The close that follows the abort changes nothing.
    probe.close(Failure(ConnectionLost()))
    assert len(probe.results) == 1


def test_a_tls_server_is_probed_over_tls_with_its_server_name() -> None:
    """An https server gets a TLS handshake sending its server_name, not plain HTTP."""
    [spec], problems = parse_servers(
        "https://10.0.0.1:8443 server_name=api.internal", allow_tls=True
    )
    assert problems == ()
    transport = start_probe(server=UpstreamServer(spec)).connect()
    hello = transport.value()
    assert hello[:1] == b"\x16"  # a TLS handshake record
    assert b"api.internal" in hello  # the SNI extension
    assert b"GET" not in hello
