"""
From a snapshot to the running service tree.

``EdgeproxyService`` is a ``MultiService`` with one named child per listener
(``listener:web``), one health monitor per upstream with an active check
(``health:users``) and the plugin objects that are services themselves.  The
reactor is passed in; nothing here imports the global one.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService, MultiService
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IProtocolFactory
from twisted.logger import Logger

from edgeproxy.admin.status import admin_site
from edgeproxy.config.model import ListenerConfig
from edgeproxy.http.connection_pool import ConnectionPool
from edgeproxy.http.listener import http_listener_factory
from edgeproxy.snapshot import Snapshot, SnapshotHolder
from edgeproxy.tcp import TCPListenerFactory, TCPListenerSettings
from edgeproxy.upstream.monitor import HealthMonitor
from edgeproxy.upstream.server import ServerTransition

log = Logger()


def log_transition(transition: ServerTransition) -> None:
    """Log a server's change of health or admin state."""
    log.info("{transition}", transition=str(transition))


class EdgeproxyService(MultiService):
    """
    The whole of a running edgeproxy.

    :ivar holder: the one holder of the current snapshot.
    """

    def __init__(self, snapshot: Snapshot, reactor: Any) -> None:
        super().__init__()
        self.reactor = reactor
        self.holder = SnapshotHolder(snapshot)
        self.connections = ConnectionPool(reactor)
        for listener in snapshot.config.listeners.values():
            endpoint = serverFromString(reactor, listener.endpoint)
            child = StreamServerEndpointService(
                endpoint, self._protocol_factory(listener)
            )
            # Fail startup (not just log) when a port cannot be bound.
            child._raiseSynchronously = True
            child.setName(f"listener:{listener.name}")
            child.setServiceParent(self)
        for name, check in snapshot.health_checks.items():
            upstream = snapshot.config.upstreams[name]
            monitor = HealthMonitor(
                snapshot.pools[name],
                check,
                reactor,
                interval=upstream.health_interval,
                timeout=upstream.health_timeout,
            )
            monitor.setName(f"health:{name}")
            monitor.setServiceParent(self)
        if snapshot.config.settings.admin is not None:
            admin = StreamServerEndpointService(
                serverFromString(reactor, snapshot.config.settings.admin),
                admin_site(self.holder, reactor),
            )
            admin._raiseSynchronously = True
            admin.setName("admin")
            admin.setServiceParent(self)
        for name, plugin in snapshot.filters.items():
            if IService.providedBy(plugin):
                plugin.setName(f"filter:{name}")
                plugin.setServiceParent(self)

    def stopService(self) -> Any:
        """Stop the children, then close idle upstream connections."""
        result = super().stopService()
        self.connections.close_idle()
        return result

    def _protocol_factory(self, listener: ListenerConfig) -> IProtocolFactory:
        if listener.protocol == "http":
            return http_listener_factory(
                self.holder, listener, self.reactor, self.connections
            )

        settings = TCPListenerSettings(
            **{
                field.name: getattr(listener, field.name)
                for field in dataclasses.fields(TCPListenerSettings)
            }
        )
        return TCPListenerFactory(self.holder, listener.name, settings, self.reactor)
