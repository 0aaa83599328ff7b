"""
``least_conn``: the server with the fewest requests in flight.

Among servers with equally few, the one with the most weight for its load
(lowest ``active / weight``) wins; servers still tied take turns by weight
(smooth weighted round robin), so an idle pool behaves like ``weighted`` and a
tie does not always go to the first server.
"""

from __future__ import annotations

from collections.abc import Sequence

from zope.interface import implementer

from edgeproxy.balancing.plugin import (
    StrategyFactory,
    StrategyOptions,
    StrategyWithoutFeedback,
)
from edgeproxy.balancing.weighted import SmoothWeightedRoundRobin
from edgeproxy.core.context import RequestContext
from edgeproxy.interfaces import IBalancingStrategy, IUpstreamServer
from edgeproxy.plugin_environment import PluginEnvironment


@implementer(IBalancingStrategy)
class LeastConnections(StrategyWithoutFeedback):
    """Pick by fewest ``active``, then lowest ``active / weight``, then by turn."""

    def __init__(self) -> None:
        self._ties = SmoothWeightedRoundRobin()

    def pick(
        self, candidates: Sequence[IUpstreamServer], context: RequestContext, now: float
    ) -> IUpstreamServer:
        """Return the least busy candidate."""
        fewest = min(server.active for server in candidates)
        tied = [server for server in candidates if server.active == fewest]
        if fewest and len(tied) > 1:
            # Same active count: the lowest active/weight is the heaviest.
            heaviest = max(server.weight for server in tied)
            tied = [server for server in tied if server.weight == heaviest]
        return self._ties.choose(tied)


def _make(options: StrategyOptions, environment: PluginEnvironment) -> LeastConnections:
    """Build :class:`LeastConnections`; it takes no options."""
    return LeastConnections()


least_conn_factory = StrategyFactory(
    "least_conn",
    "The server with the fewest requests in flight; ties by weight, in turn.",
    _make,
)
