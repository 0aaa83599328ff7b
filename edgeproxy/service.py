"""
From a snapshot to the running service tree, and reloads of it.

``EdgeproxyService`` is a ``MultiService`` with one child per listener
(``listener:web``), one health monitor per upstream with an active check
(``health:users``), the admin site, and the plugin objects that are services
themselves (``filter:NAME``).  The reactor is passed in; nothing here imports
the global one.

A reload builds a new snapshot beside the running one (servers keep their
health, admin state and counters), swaps the holder, and reconciles the
children: a listener whose endpoint is unchanged keeps its socket and gets the
new configuration for its next connections; health monitors and plugin
services are replaced.  A configuration that fails to load changes nothing.
"""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Callable
from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService, MultiService, Service
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IAddress, IProtocolFactory
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger

from edgeproxy.access_log.sink import AccessLog
from edgeproxy.admin.status import admin_site
from edgeproxy.config.model import ListenerConfig
from edgeproxy.errors import ConfigError, ConfigProblem, PluginError
from edgeproxy.http.connection_pool import ConnectionPool
from edgeproxy.http.listener import http_listener_factory
from edgeproxy.snapshot import Snapshot, SnapshotHolder
from edgeproxy.tcp import ConnectionCounts, TCPListenerFactory, TCPListenerSettings
from edgeproxy.upstream.monitor import HealthMonitor
from edgeproxy.upstream.server import ServerTransition

log = Logger()

Reloader = Callable[[Snapshot], Snapshot]


def log_transition(transition: ServerTransition) -> None:
    """Log a server's change of health or admin state."""
    log.info("{transition}", transition=str(transition))


class SwitchingFactory(Factory):
    """
    A listening socket's factory whose configuration can be replaced.

    New connections are built by the current ``inner`` factory; connections
    already open keep the protocol (and configuration) they started with.
    """

    noisy = False

    def __init__(self, inner: IProtocolFactory) -> None:
        self.inner = inner

    def buildProtocol(self, addr: IAddress | None) -> Protocol | None:
        """A protocol from the current configuration's factory."""
        return self.inner.buildProtocol(addr)  # type: ignore[arg-type, return-value]


@dataclasses.dataclass
class _Listening:
    """A listener's socket service and the factory behind it."""

    protocol: str
    factory: SwitchingFactory
    service: StreamServerEndpointService
    counts: ConnectionCounts


class EdgeproxyService(MultiService):
    """
    The whole of a running edgeproxy.

    :ivar holder: the one holder of the current snapshot.
    :ivar connections: the upstream connection pool shared by every listener.
    """

    def __init__(
        self, snapshot: Snapshot, reactor: Any, reloader: Reloader | None = None
    ) -> None:
        super().__init__()
        self.reactor = reactor
        self.reloader = reloader
        self.holder = SnapshotHolder(snapshot)
        self.connections = ConnectionPool(reactor)
        self.access_log = AccessLog()
        self._use_access_log(snapshot)
        self._listening: dict[str, _Listening] = {}
        self._snapshot_services: list[IService] = []
        for listener in snapshot.config.listeners.values():
            self._listen(listener)
        self._admin = snapshot.config.settings.admin
        if self._admin is not None:
            site = admin_site(self.holder, reactor, reload=self.reload)
            self._add_endpoint_service("admin", self._admin, site)
        self._attach_snapshot_services(snapshot)
        self._warn_unverified(snapshot)

    def stopService(self) -> Any:
        """Stop the children, then close idle upstream connections."""
        result = super().stopService()
        self.connections.close_idle()
        self.access_log.close()
        return result

    # --- reload -------------------------------------------------------------

    def reload(self) -> bool:
        """
        Load the configuration again and apply it without closing a connection.

        :return: whether the new configuration is now running; when it is
            not, the reason is logged and the running one is kept.
        """
        if self.reloader is None:
            log.warn("reload asked for, but this service has no configuration file")
            return False
        try:
            snapshot = self.reloader(self.holder.current)
            self._use_access_log(snapshot)
        except (ConfigError, PluginError) as error:
            log.error(
                "reload refused, the running configuration is kept:\n{error}",
                error=str(error),
            )
            return False
        self.apply(snapshot)
        log.info("configuration reloaded from {path}", path=snapshot.config.path)
        return True

    def apply(self, snapshot: Snapshot) -> None:
        """Make ``snapshot`` the running configuration."""
        self.holder.swap(snapshot)
        wanted = {
            listener.endpoint: listener
            for listener in snapshot.config.listeners.values()
        }
        for endpoint in list(self._listening):
            listening = self._listening[endpoint]
            listener = wanted.get(endpoint)
            if listener is None or listener.protocol != listening.protocol:
                del self._listening[endpoint]
                listening.service.disownServiceParent()
            else:
                listening.factory.inner = self._protocol_factory(
                    listener, listening.counts
                )
        for endpoint, listener in wanted.items():
            if endpoint not in self._listening:
                self._listen(listener)
        if snapshot.config.settings.admin != self._admin:
            log.warn("the admin endpoint changes only on restart")
        for service in self._snapshot_services:
            service.disownServiceParent()
        self._attach_snapshot_services(snapshot)
        self._warn_unverified(snapshot)

    def _use_access_log(self, snapshot: Snapshot) -> None:
        """
        Write the access log where ``snapshot`` says, opening its file (again).

        :raises ConfigError: when the file cannot be opened; nothing changes.
        """
        settings = snapshot.config.settings
        try:
            self.access_log.use_file(snapshot.access_log, settings.access_log_format)
        except OSError as error:
            problem = ConfigProblem(
                snapshot.config.path,
                "edgeproxy",
                "access_log",
                f"cannot be opened: {error.strerror or error}",
            )
            raise ConfigError([problem]) from None

    # --- children ---------------------------------------------------------------

    def _admin_endpoint(self) -> str | None:
        for endpoint, service in self._endpoint_services().items():
            if service.name == "admin":
                return endpoint
        return None

    def _endpoint_services(self) -> dict[str, Any]:
        return {getattr(service, "edgeproxy_endpoint", ""): service for service in self}

    def _listen(self, listener: ListenerConfig) -> None:
        counts = ConnectionCounts()
        factory = SwitchingFactory(self._protocol_factory(listener, counts))
        service = self._add_endpoint_service(
            f"listener:{listener.name}", listener.endpoint, factory
        )
        self._listening[listener.endpoint] = _Listening(
            listener.protocol, factory, service, counts
        )

    def _add_endpoint_service(
        self, name: str, endpoint: str, factory: IProtocolFactory
    ) -> StreamServerEndpointService:
        service = StreamServerEndpointService(
            serverFromString(self.reactor, endpoint), factory
        )
        # Fail startup (not just log) when a port cannot be bound.
        service._raiseSynchronously = True
        if name in self.namedServices:
            name = f"{name}@{endpoint}"
        service.setName(name)
        service.setServiceParent(self)
        return service

    def _attach_snapshot_services(self, snapshot: Snapshot) -> None:
        services: list[IService] = []
        for name, check in snapshot.health_checks.items():
            upstream = snapshot.config.upstreams[name]
            monitor = HealthMonitor(
                snapshot.pools[name],
                check,
                self.reactor,
                interval=upstream.health_interval,
                timeout=upstream.health_timeout,
            )
            monitor.setName(f"health:{name}")
            services.append(monitor)
        plugins: list[tuple[str, object]] = [
            (f"filter:{name}", plugin) for name, plugin in snapshot.filters.items()
        ]
        plugins += [
            (f"health-check:{name}", check)
            for name, check in snapshot.health_checks.items()
        ]
        plugins += [
            (f"balance:{name}", pool.strategy) for name, pool in snapshot.pools.items()
        ]
        for name, plugin in plugins:
            if IService.providedBy(plugin):
                service = IService(plugin)
                service.setName(name)
                services.append(service)
        for service in services:
            service.setServiceParent(self)
        self._snapshot_services = services

    def _warn_unverified(self, snapshot: Snapshot) -> None:
        for name, upstream in snapshot.config.upstreams.items():
            if not upstream.tls_verify and any(s.tls for s in upstream.servers):
                log.warn(
                    "upstream:{name}: tls_verify = no: the certificates of its "
                    "https:// servers are not checked",
                    name=name,
                )

    def _protocol_factory(
        self, listener: ListenerConfig, counts: ConnectionCounts
    ) -> IProtocolFactory:
        if listener.protocol == "http":
            return http_listener_factory(
                self.holder, listener, self.reactor, self.connections, self.access_log
            )
        settings = TCPListenerSettings(
            **{
                field.name: getattr(listener, field.name)
                for field in dataclasses.fields(TCPListenerSettings)
            }
        )
        return TCPListenerFactory(
            self.holder, listener.name, settings, self.reactor, counts, self.access_log
        )


class ReloadOnSignal(Service):
    """Reloads the configuration when the process gets ``SIGHUP``."""

    def __init__(self, target: EdgeproxyService, reactor: Any) -> None:
        self.target = target
        self.reactor = reactor
        self._previous: Any = None

    def startService(self) -> None:
        """Install the ``SIGHUP`` handler."""
        super().startService()
        self._previous = signal.signal(signal.SIGHUP, self._received)

    def stopService(self) -> None:
        """Put the previous handler back."""
        super().stopService()
        if self._previous is not None:
            signal.signal(signal.SIGHUP, self._previous)

    def _received(self, signum: int, frame: object) -> None:
        # Signal handlers run between bytecodes: do the work in the reactor.
        self.reactor.callFromThread(self.target.reload)
