"""``round_robin``: each available server in turn, ignoring weights."""

from __future__ import annotations

from collections.abc import Sequence

from zope.interface import implementer

from edgeproxy.balancing.plugin import (
    StrategyFactory,
    StrategyOptions,
    StrategyWithoutFeedback,
)
from edgeproxy.core.context import RequestContext
from edgeproxy.interfaces import IBalancingStrategy, IUpstreamServer
from edgeproxy.plugin_environment import PluginEnvironment


@implementer(IBalancingStrategy)
class RoundRobin(StrategyWithoutFeedback):
    """
    Rotate through the candidates.

    The rotation counts picks, not servers: when a server leaves or rejoins
    the candidates, the rotation goes on over the new list, so load stays even.
    """

    def __init__(self) -> None:
        self._next = 0

    def choose(self, candidates: Sequence[IUpstreamServer]) -> IUpstreamServer:
        """Return the next of ``candidates`` (never empty) in turn."""
        index = self._next % len(candidates)
        self._next = index + 1
        return candidates[index]

    def pick(
        self, candidates: Sequence[IUpstreamServer], context: RequestContext, now: float
    ) -> IUpstreamServer:
        """Return the next candidate in turn."""
        # choose(), without the call: this runs for every request.
        index = self._next % len(candidates)
        self._next = index + 1
        return candidates[index]


def _make(options: StrategyOptions, environment: PluginEnvironment) -> RoundRobin:
    """Build :class:`RoundRobin`; it takes no options."""
    return RoundRobin()


round_robin_factory = StrategyFactory(
    "round_robin", "Each available server in turn, ignoring weights.", _make
)
