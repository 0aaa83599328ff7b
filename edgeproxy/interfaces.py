"""
The plugin interfaces of edgeproxy, with their contracts.

A plugin is an object in a module of any ``twisted/plugins/`` package on
``sys.path`` that provides :class:`twisted.plugin.IPlugin` and one of the
factory interfaces below.  A factory has a ``name`` (unique within its kind; it
is what a configuration file writes) and a one-line ``description``; its
``build`` makes the working object from the options of a configuration section.

``build`` validates every option and raises :class:`edgeproxy.errors.OptionError`
listing all the bad ones; it must not start any I/O (``--check`` builds every
plugin).  A built object that needs a long-lived resource (a Redis connection, a
key-set refresher) also provides :class:`twisted.application.service.IService`:
edgeproxy starts it with the service tree and stops it on shutdown.

Filters, health checks and strategies are given time as arguments or through
the reactor in :class:`PluginEnvironment`; they never read a clock of their own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from zope.interface import Attribute, Interface

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

    from edgeproxy.core.context import RequestContext
    from edgeproxy.core.health import HealthResult
    from edgeproxy.core.message import LocalResponse, RequestHead, ResponseHead
    from edgeproxy.plugin_environment import PluginEnvironment


class IPluginFactory(Interface):
    """What every edgeproxy plugin factory has."""

    name = Attribute(
        "The plugin's name (str) as configuration files write it, lower_snake_case; "
        "unique within its kind."
    )
    description = Attribute("A one-line description (str) for --list-plugins.")


# --- filters -----------------------------------------------------------------


class IFilter(Interface):
    """
    One link of a route's filter chain.

    Requests run the chain in configuration order; responses run it in reverse.
    A hook returns its decision at once, or a ``Deferred`` that fires with it
    (the client's bytes wait, paused, while it is pending).  A hook that raises,
    or whose ``Deferred`` fails, fails its own request with a 500 and a log line;
    it never affects another request.  Exactly one response reaches the client
    for each request.
    """

    def on_request(
        context: RequestContext, request: RequestHead
    ) -> LocalResponse | Deferred[LocalResponse | None] | None:
        """
        Inspect or change a request head before it goes upstream.

        :param context: the request's context; ``context.consumer`` may be set
            here for later filters to key on.
        :param request: the head, which this hook may change in place.
        :return: ``None`` to pass the request on, or a
            :class:`~edgeproxy.core.message.LocalResponse` to answer it here
            (the rest of the request chain and the upstream are skipped; the
            response hooks of the filters that already ran still run).
        """

    def on_response(
        context: RequestContext, response: ResponseHead
    ) -> Deferred[None] | None:
        """
        Inspect or change a response head before it goes to the client.

        Called for upstream responses and for local answers alike.

        :param response: the head, which this hook may change in place.
        """


class IFilterFactory(IPluginFactory):
    """Builds a filter from a ``[filter:NAME]`` section."""

    def build(options: Mapping[str, str], environment: PluginEnvironment) -> IFilter:
        """
        Make a filter.

        :param options: the section's keys other than ``plugin``.
        :param environment: the reactor and the configuration's directory.
        :raises edgeproxy.errors.OptionError: listing every bad or missing option.
        """


# --- upstream servers, health checks, balancing --------------------------------


class IUpstreamServer(Interface):
    """What health checks and balancing strategies see of one upstream server."""

    key = Attribute("A stable identity (str) such as ``'10.0.0.1:9001'``.")
    host = Attribute("Host name or address (str) to connect to.")
    port = Attribute("Port (int).")
    tls = Attribute("Whether connections use TLS (bool).")
    server_name = Attribute(
        "The TLS name to send and verify (str): the configured one or the host."
    )
    weight = Attribute("Configured weight (int, at least 1).")
    active = Attribute("Requests or connections in flight on this server now (int).")


class IHealthCheck(Interface):
    """An active probe of one upstream server."""

    def check(server: IUpstreamServer, timeout: float) -> Deferred[HealthResult]:
        """
        Probe ``server`` once.

        The returned ``Deferred`` always fires with a
        :class:`~edgeproxy.core.health.HealthResult` within ``timeout``
        seconds: a refused connection, a timeout or a bad answer is a result
        with ``up=False`` and a reason, never a failure.
        """


class IHealthCheckFactory(IPluginFactory):
    """Builds a health check from an upstream's ``health.*`` options."""

    def build(
        options: Mapping[str, str], environment: PluginEnvironment
    ) -> IHealthCheck:
        """
        Make a health check.

        :param options: the upstream's ``health.KEY`` options, keyed by ``KEY``.
        :raises edgeproxy.errors.OptionError: listing every bad option.
        """


class IBalancingStrategy(Interface):
    """Chooses a server of a pool for each request or connection."""

    def pick(
        candidates: Sequence[IUpstreamServer], context: RequestContext, now: float
    ) -> IUpstreamServer:
        """
        Choose one of ``candidates``.

        :param candidates: the servers that may be used now, never empty, in
            configuration order (already filtered for health, draining,
            connection caps and servers already tried for this request).
        :param context: the request or connection; a strategy may add response
            headers to it (a sticky cookie).
        :param now: the reactor's time in seconds.
        :return: one element of ``candidates``.
        """

    def started(server: IUpstreamServer, now: float) -> None:
        """A request or connection started on ``server``."""

    def finished(
        server: IUpstreamServer, now: float, elapsed: float, failed: bool
    ) -> None:
        """
        A request or connection on ``server`` ended.

        :param elapsed: seconds from start to the end of the response head
            (for a TCP connection, to connection establishment).
        :param failed: whether it ended in a connection or protocol failure.
        """


class IBalancingStrategyFactory(IPluginFactory):
    """Builds a balancing strategy from an upstream's ``balance.*`` options."""

    def build(
        options: Mapping[str, str], environment: PluginEnvironment
    ) -> IBalancingStrategy:
        """
        Make a strategy for one pool.

        :param options: the upstream's ``balance.KEY`` options, keyed by ``KEY``.
        :raises edgeproxy.errors.OptionError: listing every bad option.
        """
