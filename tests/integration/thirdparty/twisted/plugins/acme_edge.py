"""
Acme's edgeproxy plugins: a filter, a health check and a balancing strategy.

This is the plugin author guide's example, and a test proves that dropping it
into a ``twisted/plugins/`` directory on ``sys.path`` is all it takes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from twisted.internet.defer import Deferred, succeed
from twisted.plugin import IPlugin
from zope.interface import implementer

from edgeproxy.core.context import RequestContext
from edgeproxy.core.health import HealthResult
from edgeproxy.core.message import RequestHead, ResponseHead
from edgeproxy.errors import OptionError
from edgeproxy.interfaces import (
    IBalancingStrategy,
    IBalancingStrategyFactory,
    IFilter,
    IFilterFactory,
    IHealthCheck,
    IHealthCheckFactory,
    IUpstreamServer,
)
from edgeproxy.plugin_environment import PluginEnvironment


@implementer(IFilter)
class StampFilter:
    """Adds one header to every request and names itself in every response."""

    def __init__(self, header: bytes, value: bytes) -> None:
        self.header = header
        self.value = value

    def on_request(self, context: RequestContext, request: RequestHead) -> None:
        request.headers.set(self.header, self.value)

    def on_response(self, context: RequestContext, response: ResponseHead) -> None:
        response.headers.add(b"X-Acme", self.value)


@implementer(IPlugin, IFilterFactory)
class StampFilterFactory:
    name = "acme_stamp"
    description = "Stamps requests with a header (Acme's example plugin)."

    def build(
        self, options: Mapping[str, str], environment: PluginEnvironment
    ) -> StampFilter:
        unknown = set(options) - {"header", "value"}
        problems = [(key, "unknown option") for key in sorted(unknown)]
        if "value" not in options:
            problems.append(("value", "this option is required"))
        if problems:
            raise OptionError(problems)
        header = options.get("header", "X-Acme-Stamp")
        return StampFilter(header.encode("ascii"), options["value"].encode("utf-8"))


@implementer(IHealthCheck)
class FixedCheck:
    """Reports every server up: for servers that cannot be probed."""

    def check(self, server: IUpstreamServer, timeout: float) -> Deferred[HealthResult]:
        return succeed(HealthResult(True, "assumed up"))


@implementer(IPlugin, IHealthCheckFactory)
class FixedCheckFactory:
    name = "acme_assume_up"
    description = "Assumes every server is up (Acme's example plugin)."

    def build(
        self, options: Mapping[str, str], environment: PluginEnvironment
    ) -> FixedCheck:
        if options:
            raise OptionError([(key, "unknown option") for key in sorted(options)])
        return FixedCheck()


@implementer(IBalancingStrategy)
class FirstStrategy:
    """Always the first available server in configuration order."""

    def pick(
        self,
        candidates: Sequence[IUpstreamServer],
        context: RequestContext,
        now: float,
    ) -> IUpstreamServer:
        return candidates[0]

    def started(self, server: IUpstreamServer, now: float) -> None:
        pass

    def finished(
        self, server: IUpstreamServer, now: float, elapsed: float, failed: bool
    ) -> None:
        pass


@implementer(IPlugin, IBalancingStrategyFactory)
class FirstStrategyFactory:
    name = "acme_first"
    description = "Sends everything to the first available server (Acme's example)."

    def build(
        self, options: Mapping[str, str], environment: PluginEnvironment
    ) -> FirstStrategy:
        if options:
            raise OptionError([(key, "unknown option") for key in sorted(options)])
        return FirstStrategy()


stamp = StampFilterFactory()
assume_up = FixedCheckFactory()
first = FirstStrategyFactory()
