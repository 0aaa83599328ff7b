"""
``weighted``: smooth weighted round robin, as nginx balances by default.

Each pick adds every candidate's weight to its running score, takes the
candidate with the highest score and subtracts the total weight from it.  Over
any run of picks each server gets its share of the total weight, and the picks
of a heavy server are spread out rather than bunched: weights 5, 1, 1 give
``a a b a c a a``.
"""

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
class SmoothWeightedRoundRobin(StrategyWithoutFeedback):
    """
    Rotate through the candidates in proportion to their weights, without bursts.

    Scores are kept by server key, so a server that leaves the candidates
    (down, excluded, at its cap) keeps its place and the others share its turns.
    Other strategies use :meth:`choose` to break ties fairly.
    """

    def __init__(self) -> None:
        self._scores: dict[str, int] = {}

    def choose(self, candidates: Sequence[IUpstreamServer]) -> IUpstreamServer:
        """Return the next of ``candidates`` (never empty) by weight."""
        if len(candidates) == 1:
            return candidates[0]
        scores = self._scores
        total = 0
        best = candidates[0]
        best_score = None
        for server in candidates:
            score = scores.get(server.key, 0) + server.weight
            scores[server.key] = score
            total += server.weight
            if best_score is None or score > best_score:
                best, best_score = server, score
        scores[best.key] -= total
        return best

    def pick(
        self, candidates: Sequence[IUpstreamServer], context: RequestContext, now: float
    ) -> IUpstreamServer:
        """Return the next candidate by weight."""
        return self.choose(candidates)


def _make(
    options: StrategyOptions, environment: PluginEnvironment
) -> SmoothWeightedRoundRobin:
    """Build :class:`SmoothWeightedRoundRobin`; it takes no options."""
    return SmoothWeightedRoundRobin()


weighted_factory = StrategyFactory(
    "weighted",
    "Smooth weighted round robin: shares by weight, with no bursts.",
    _make,
)
