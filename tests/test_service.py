"""Tests for edgeproxy.service: the service tree built from a snapshot."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from twisted.application.service import Service
from twisted.internet.address import IPv4Address
from twisted.internet.error import CannotListenError
from twisted.internet.testing import MemoryReactorClock
from twisted.plugin import IPlugin
from zope.interface import implementer

from edgeproxy.config.loader import load_config, parse_config
from edgeproxy.core.context import RequestContext
from edgeproxy.core.message import RequestHead, ResponseHead
from edgeproxy.errors import ConfigError
from edgeproxy.http.server import HTTPServerProtocol
from edgeproxy.interfaces import IFilter, IFilterFactory
from edgeproxy.plugin_environment import PluginEnvironment
from edgeproxy.registry import PluginInfo, PluginRegistry, discover
from edgeproxy.service import EdgeproxyService
from edgeproxy.snapshot import Snapshot, build_snapshot
from edgeproxy.testing import environment
from tests.http.test_proxy import Client, Upstreams
from tests.test_tunnel import TCPLikeTransport

CONFIG = """
[edgeproxy]
admin = tcp:9901:interface=127.0.0.1

[listener:web]
protocol = http
endpoint = tcp:8080
routes = site

[listener:db]
protocol = tcp
endpoint = tcp:5433
upstream = pg

[route:site]
path_prefix = /
upstream = web
filters = {filters}

[upstream:web]
servers = 10.0.0.1:80
health = tcp
health_interval = 10s

[upstream:pg]
servers = 10.0.0.5:5432
"""

SERVICE_FILTER = """
[filter:keys]
plugin = key_store
"""


@implementer(IFilter)
class KeyStoreFilter(Service):
    """A filter that is also a service (a key-set refresher, say)."""

    def on_request(self, context: RequestContext, request: RequestHead) -> None:
        """Pass every request."""

    def on_response(self, context: RequestContext, response: ResponseHead) -> None:
        """Pass every response."""


@implementer(IPlugin, IFilterFactory)
class KeyStoreFactory:
    """Builds KeyStoreFilters."""

    name = "key_store"
    description = "a filter that runs as a service (tests only)"

    def build(
        self, options: Mapping[str, str], environment: PluginEnvironment
    ) -> KeyStoreFilter:
        return KeyStoreFilter()


REGISTRY = PluginRegistry(
    [
        *discover().plugins,
        PluginInfo(
            "filter", "key_store", __name__, "a service filter", KeyStoreFactory()
        ),
    ]
)


class ListenRefusingReactor(MemoryReactorClock):
    """A memory reactor on which port 8080 is taken."""

    def listenTCP(self, port: int, *args: Any, **kwargs: Any) -> Any:
        if port == 8080:
            raise CannotListenError("", port, OSError("address in use"))
        return super().listenTCP(port, *args, **kwargs)


def make_snapshot(
    reactor: MemoryReactorClock, config: str = CONFIG, filters: str = ""
) -> Snapshot:
    """A snapshot of ``config`` on ``reactor``."""
    text = config.format(filters=filters)
    if filters:
        text += SERVICE_FILTER
    return build_snapshot(parse_config(text), REGISTRY, environment(reactor))


def make_service(
    reactor: MemoryReactorClock | None = None, **options: str
) -> tuple[EdgeproxyService, MemoryReactorClock]:
    """The service of the test configuration, and its reactor."""
    reactor = reactor or MemoryReactorClock()
    return EdgeproxyService(make_snapshot(reactor, **options), reactor), reactor


def test_children_are_named_for_what_they_serve() -> None:
    """One child per listener, per actively checked upstream, and the admin site."""
    service, _ = make_service()
    names = sorted(child.name for child in service)
    assert names == ["admin", "health:web", "listener:db", "listener:web"]


def test_no_admin_without_the_admin_key() -> None:
    """Without [edgeproxy] admin there is no admin child."""
    config = CONFIG.replace("admin = tcp:9901:interface=127.0.0.1\n", "")
    service, _ = make_service(config=config)
    assert "admin" not in [child.name for child in service]


def test_listener_children_serve_their_protocols() -> None:
    """The http listener's connections speak HTTP; the tcp listener's are balanced."""
    service, reactor = make_service()
    web = service.getServiceNamed("listener:web").factory.buildProtocol(None)
    assert isinstance(web, HTTPServerProtocol)
    peer = IPv4Address("TCP", "192.0.2.7", 40000)
    db = service.getServiceNamed("listener:db").factory.buildProtocol(peer)
    db.makeConnection(TCPLikeTransport(peerAddress=peer))
    assert [c[:2] for c in Upstreams(reactor).connects()] == [("10.0.0.5", 5432)]


def test_start_listens_on_every_endpoint() -> None:
    """startService listens on each listener's endpoint and the admin one."""
    service, reactor = make_service()
    service.startService()
    listening = sorted(
        (port, interface) for port, _, _, interface in reactor.tcpServers
    )
    assert listening == [(5433, ""), (8080, ""), (9901, "127.0.0.1")]
    assert service.getServiceNamed("health:web").running


def test_start_runs_the_health_probes() -> None:
    """Started, the health monitor probes its servers; stopped, it probes no more."""
    service, reactor = make_service()
    service.startService()
    probes = Upstreams(reactor)
    assert [c[:2] for c in probes.connects()] == [("10.0.0.1", 80)]
    service.stopService()
    reactor.advance(60)
    assert len(probes.connects()) == 1


def test_a_port_that_cannot_be_bound_fails_startup() -> None:
    """An endpoint that cannot listen raises at start, not just a log line."""
    service, _ = make_service(ListenRefusingReactor())
    with pytest.raises(CannotListenError):
        service.privilegedStartService()


def test_filters_that_are_services_run_with_the_tree() -> None:
    """A filter plugin that is a service is a child, started and stopped with it."""
    service, _ = make_service(filters="keys")
    child = service.getServiceNamed("filter:keys")
    assert isinstance(child, KeyStoreFilter)
    service.startService()
    assert child.running
    service.stopService()
    assert not child.running


def test_stop_closes_idle_upstream_connections() -> None:
    """stopService closes the idle keep-alive connections to upstream servers."""
    service, reactor = make_service()
    service.startService()
    factory = service.getServiceNamed("listener:web").factory
    protocol = factory.buildProtocol(None)
    assert isinstance(protocol, HTTPServerProtocol)
    client = Client(protocol)
    client.send(b"GET / HTTP/1.1\r\nHost: www.example.com\r\n\r\n")
    upstreams = Upstreams(reactor)
    upstream = upstreams.accept()
    assert upstreams.connects()[-1][:2] == ("10.0.0.1", 80)
    upstream.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert client.take().startswith(b"HTTP/1.1 200 OK\r\n")
    assert service.connections.idle_count("10.0.0.1:80") == 1
    assert not upstream.closing
    service.stopService()
    assert upstream.closing
    assert service.connections.idle_count("10.0.0.1:80") == 0


def test_holder_starts_with_the_snapshot() -> None:
    """The service's holder holds the snapshot it was built from."""
    reactor = MemoryReactorClock()
    snapshot = make_snapshot(reactor)
    service = EdgeproxyService(snapshot, reactor)
    assert service.holder.current is snapshot


# --- the access log ---------------------------------------------------------------


def access_logged_service(
    tmp_path: Path, access_log: str
) -> tuple[EdgeproxyService, MemoryReactorClock]:
    """The test service with ``access_log`` set, its config file in ``tmp_path``."""
    reactor = MemoryReactorClock()
    text = CONFIG.format(filters="").replace(
        "[edgeproxy]\n", f"[edgeproxy]\naccess_log = {access_log}\n"
    )
    config_path = tmp_path / "edgeproxy.ini"
    config_path.write_text(text)
    snapshot = build_snapshot(
        load_config(str(config_path)), REGISTRY, environment(reactor, tmp_path)
    )
    return EdgeproxyService(snapshot, reactor), reactor


def test_access_log_is_written_relative_to_the_config_file(tmp_path: Path) -> None:
    """access_log = logs/access.log writes beside the configuration file."""
    (tmp_path / "logs").mkdir()
    service, reactor = access_logged_service(tmp_path, "logs/access.log")
    protocol = service._listening["tcp:8080"].factory.buildProtocol(
        IPv4Address("TCP", "192.0.2.7", 40000)
    )
    assert isinstance(protocol, HTTPServerProtocol)
    client = Client(protocol)
    client.send(b"GET /x HTTP/1.1\r\nHost: a.example\r\n\r\n")
    Upstreams(reactor).refuse()
    line = (tmp_path / "logs" / "access.log").read_bytes()
    assert b"192.0.2.7 - - [" in line
    assert b'"GET /x HTTP/1.1" 502 ' in line
    assert b"route=site upstream=10.0.0.1:80" in line


def test_a_missing_access_log_directory_is_a_config_problem(tmp_path: Path) -> None:
    """The problem names the file, [edgeproxy] and access_log."""
    with pytest.raises(ConfigError) as raised:
        access_logged_service(tmp_path, "nowhere/access.log")
    [problem] = raised.value.problems
    assert (problem.section, problem.key) == ("edgeproxy", "access_log")
    assert "does not exist" in problem.message


def test_an_access_log_that_cannot_be_opened_is_a_config_problem(
    tmp_path: Path,
) -> None:
    """A path that cannot be opened for appending fails the start, naming the key."""
    (tmp_path / "taken").mkdir()
    with pytest.raises(ConfigError) as raised:
        access_logged_service(tmp_path, "taken")
    [problem] = raised.value.problems
    assert str(problem).startswith(
        f"{tmp_path / 'edgeproxy.ini'}: [edgeproxy] access_log"
    )
    assert "cannot be opened" in problem.message


def test_reload_opens_the_access_log_again(tmp_path: Path) -> None:
    """After logrotate moved the file, a reload writes to a new file at the path."""
    service, reactor = access_logged_service(tmp_path, "access.log")
    service.reloader = lambda previous: build_snapshot(
        load_config(str(tmp_path / "edgeproxy.ini")),
        REGISTRY,
        environment(reactor, tmp_path),
        previous=previous,
    )
    (tmp_path / "access.log").rename(tmp_path / "access.log.1")
    assert service.reload()
    protocol = service._listening["tcp:8080"].factory.buildProtocol(None)
    assert isinstance(protocol, HTTPServerProtocol)
    client = Client(protocol)
    client.send(b"GET /after HTTP/1.1\r\nHost: a.example\r\n\r\n")
    Upstreams(reactor).refuse()
    assert b"/after" in (tmp_path / "access.log").read_bytes()
    assert b"/after" not in (tmp_path / "access.log.1").read_bytes()
