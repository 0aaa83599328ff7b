"""
Tests for edgeproxy.http.access: what the access log says of each request.

The proxy of tests/http/test_proxy.py serves a client; the records reach an
observer on the access log's publisher.
"""

from __future__ import annotations

from typing import Any

import pytest

from edgeproxy.access_log.record import AccessRecord
from edgeproxy.access_log.sink import AccessLog
from edgeproxy.http.access import ExchangeLogger
from edgeproxy.http.server import HTTPServerProtocol
from tests.http.test_proxy import (
    OK,
    SITE_GET,
    A,
    Client,
    ProxyHarness,
    headers_of,
    make_config,
    status_of,
)


class LoggedProxy:
    """A proxy harness whose clients' requests are logged."""

    def __init__(self, config: str | None = None) -> None:
        self.proxy = ProxyHarness(config)
        self.access_log = AccessLog()
        self.events: list[Any] = []
        self.access_log.add_observer(self.events.append)

    def client(self, host: str = "192.0.2.7") -> Client:
        """A new client connection, logged."""
        proxy = self.proxy
        access = ExchangeLogger(self.access_log, proxy.reactor)
        protocol = HTTPServerProtocol(proxy.reactor, proxy.handler, None, access)
        return Client(protocol, host)

    @property
    def records(self) -> list[AccessRecord]:
        """The records logged so far."""
        return [event["record"] for event in self.events]


@pytest.fixture
def logged() -> LoggedProxy:
    """A logged proxy over the default test configuration."""
    return LoggedProxy()


def test_proxied_request_is_logged_when_its_response_ends(logged: LoggedProxy) -> None:
    """The record has the request, status, body bytes, route, server and duration."""
    client = logged.client()
    client.send(SITE_GET.replace(b"\r\n\r\n", b"\r\nUser-Agent: t/1\r\n\r\n"))
    upstream = logged.proxy.upstreams.accept()
    logged.proxy.reactor.advance(0.25)
    assert logged.records == []
    upstream.respond(OK)
    [record] = logged.records
    assert (record.method, record.target, record.version) == (b"GET", b"/page", b"1.1")
    assert (record.status, record.body_bytes) == (200, 2)
    assert (record.route, record.upstream, record.reason) == ("site", A, None)
    assert (record.client, record.host, record.user_agent) == (
        "192.0.2.7",
        b"www.example.com",
        b"t/1",
    )
    assert record.duration == pytest.approx(0.25)
    assert logged.events[0]["log_time"] == logged.proxy.reactor.seconds()


def test_a_filters_answer_names_the_filter_and_its_reason() -> None:
    """A local answer from a filter logs "filter NAME: reason", no server."""
    logged = LoggedProxy(make_config(filters={"a": "", "deny": "answer = 403"}))
    logged.client().send(SITE_GET)
    [record] = logged.records
    assert (record.status, record.route, record.upstream) == (403, "site", None)
    assert record.reason == "filter deny: local"
    assert record.body_bytes == len(b"local\n")


def test_request_id_and_consumer_are_logged() -> None:
    """The request_id filter's identity (the one the client gets) is in the record."""
    config = (
        make_config(filters={}).replace("filters = \n", "filters = ids\n")
        + "\n[filter:ids]\nplugin = request_id\n"
    )
    logged = LoggedProxy(config)
    client = logged.client()
    client.send(SITE_GET)
    logged.proxy.upstreams.accept().respond(OK)
    sent = headers_of(client.take()).get(b"X-Request-ID")
    assert sent is not None
    [record] = logged.records
    assert record.request_id == sent.decode("ascii")


def test_no_route_is_logged_with_its_reason() -> None:
    """A request no route serves logs 404 and why."""
    logged = LoggedProxy(make_config(routes="api"))
    client = logged.client()
    client.send(SITE_GET)
    assert status_of(client.take()) == 404
    [record] = logged.records
    assert (record.status, record.route) == (404, None)
    assert record.reason == "Not Found: no route serves this request"


def test_upstream_failure_is_logged_with_the_servers_reason() -> None:
    """A 502 after the servers refused names the last server and the failure."""
    logged = LoggedProxy(make_config(servers=A))
    client = logged.client()
    client.send(SITE_GET)
    logged.proxy.upstreams.refuse()
    assert status_of(client.take()) == 502
    [record] = logged.records
    assert record.status == 502
    assert record.reason is not None and "refused" in record.reason


def test_client_leaving_before_the_answer_is_logged_499(logged: LoggedProxy) -> None:
    """A client that closes before any response byte is logged 499, as nginx does."""
    client = logged.client()
    client.send(SITE_GET)
    logged.proxy.upstreams.accept()
    client.leave()
    [record] = logged.records
    assert record.status == 499
    assert record.reason == "the client closed the connection"


def test_malformed_request_is_logged_without_a_request_line(
    logged: LoggedProxy,
) -> None:
    """Garbage that is not a request is logged as a 400 with its reason."""
    client = logged.client()
    client.send(b"GET /a b c\r\n\r\n")
    assert status_of(client.take()) == 400
    [record] = logged.records
    assert (record.status, record.method, record.client) == (400, b"", "192.0.2.7")
    assert record.reason


def test_every_request_of_a_connection_is_logged_once(logged: LoggedProxy) -> None:
    """Two requests on one kept-alive connection make two records."""
    client = logged.client()
    client.send(SITE_GET)
    upstream = logged.proxy.upstreams.accept()
    upstream.respond(OK)
    client.send(SITE_GET.replace(b"/page", b"/second"))
    upstream.respond(OK)
    client.leave()
    assert [record.target for record in logged.records] == [b"/page", b"/second"]


def test_nothing_is_made_while_no_one_observes() -> None:
    """A listener whose access log has no observer makes no records at all."""
    proxy = ProxyHarness()
    access_log = AccessLog()
    protocol = HTTPServerProtocol(
        proxy.reactor, proxy.handler, None, ExchangeLogger(access_log, proxy.reactor)
    )
    client = Client(protocol)
    client.send(SITE_GET)
    seen: list[Any] = []
    access_log.add_observer(seen.append)
    upstream = proxy.upstreams.accept()
    upstream.respond(OK)
    assert seen == []
    client.send(SITE_GET)
    upstream.respond(OK)
    assert len(seen) == 1
