"""
``random_two``: the power of two random choices.

Two different candidates are drawn at random, each with a chance proportional
to its weight, and the one with the lower load (``active / weight``) wins; on
equal load the first drawn wins.  This spreads load nearly as well as
``least_conn`` without every proxy process sending its next request to the
same least-loaded server.

Option ``seed`` (a whole number) makes the draws repeatable; without it they
are seeded from the system.  Tests may also replace the strategy's
:attr:`PowerOfTwoChoices.random`.
"""

from __future__ import annotations

import random as random_module
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
class PowerOfTwoChoices(StrategyWithoutFeedback):
    """
    Draw two candidates by weight; take the less loaded.

    :ivar random: the source of randomness.
    """

    def __init__(self, random: random_module.Random) -> None:
        self.random = random

    def pick(
        self, candidates: Sequence[IUpstreamServer], context: RequestContext, now: float
    ) -> IUpstreamServer:
        """Return the less loaded of two weighted random candidates."""
        if len(candidates) == 1:
            return candidates[0]
        total = sum(server.weight for server in candidates)
        first = self._draw(candidates, total, None)
        second = self._draw(candidates, total - first.weight, first)
        # Compare active/weight without division: a/wa > b/wb <=> a*wb > b*wa.
        if first.active * second.weight > second.active * first.weight:
            return second
        return first

    def _draw(
        self,
        candidates: Sequence[IUpstreamServer],
        total: int,
        skip: IUpstreamServer | None,
    ) -> IUpstreamServer:
        """Draw one candidate other than ``skip``, by weight (``total`` of them)."""
        point = self.random.random() * total
        # If float rounding leaves the point just short of 0 at the end, the
        # last candidate is the one drawn.
        chosen = None
        for server in candidates:
            if server is skip:
                continue
            chosen = server
            point -= server.weight
            if point < 0:
                break
        assert chosen is not None, "at least two candidates"
        return chosen


def _make(
    options: StrategyOptions, environment: PluginEnvironment
) -> PowerOfTwoChoices:
    """Build :class:`PowerOfTwoChoices` from option ``seed``."""
    seed = options.integer("seed")
    return PowerOfTwoChoices(random_module.Random(seed))


random_two_factory = StrategyFactory(
    "random_two",
    "Power of two random choices by weight, taking the less loaded server.",
    _make,
)
