"""
``least_time``: the server with the lowest expected response time.

Each server has a *peak EWMA* of its response times, as Finagle and Linkerd
keep one.  A response slower than the current estimate replaces it at once (a
slowdown is believed immediately); a faster one pulls it down gradually, the
more so the longer since the last response.  Between responses the estimate
decays toward zero with time constant ``decay``, so a server that was slow
once is tried again after a while instead of being shunned forever.

The score of a server is its estimate times (requests in flight + 1),
divided by its weight; the lowest score wins, ties going to the least
loaded and then by turn.  A server with no response yet scores 0 while idle,
so new servers are tried at once, and is not sent a second request before
its first answers (unless every candidate is in the same position).  A failed
request counts as a response at least :data:`FAILED_RESPONSE_SECONDS` slow,
so that a server which fails fast does not look fast.

Option ``decay``: a duration such as ``10s`` or ``250ms`` (default ``10s``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from zope.interface import implementer

from edgeproxy.balancing.plugin import StrategyFactory, StrategyOptions
from edgeproxy.balancing.weighted import SmoothWeightedRoundRobin
from edgeproxy.core.context import RequestContext
from edgeproxy.interfaces import IBalancingStrategy, IUpstreamServer
from edgeproxy.plugin_environment import PluginEnvironment

FAILED_RESPONSE_SECONDS = 1.0
DEFAULT_DECAY = 10.0


class _Estimate:
    """A server's peak EWMA and when it was last updated."""

    __slots__ = ("seconds", "stamp")

    def __init__(self, seconds: float, stamp: float) -> None:
        self.seconds = seconds
        self.stamp = stamp


@implementer(IBalancingStrategy)
class PeakEwmaLeastTime:
    """
    Pick the candidate with the lowest peak-EWMA response time for its load.

    :param decay: the time constant, in seconds, of the estimate's decay.
    """

    def __init__(self, decay: float = DEFAULT_DECAY) -> None:
        if decay <= 0:
            raise ValueError("decay must be more than 0")
        self.decay = decay
        self._estimates: dict[str, _Estimate] = {}
        self._ties = SmoothWeightedRoundRobin()

    def estimate(self, server: IUpstreamServer, now: float) -> float | None:
        """The server's expected response time now, or ``None`` before any."""
        found = self._estimates.get(server.key)
        if found is None:
            return None
        return found.seconds * self._weight_of_past(found.stamp, now)

    def pick(
        self, candidates: Sequence[IUpstreamServer], context: RequestContext, now: float
    ) -> IUpstreamServer:
        """Return the candidate with the lowest score."""
        best: list[IUpstreamServer] = []
        best_score = math.inf
        for server in candidates:
            score = self._score(server, now)
            if not best or score < best_score:
                best, best_score = [server], score
            elif score == best_score:
                best.append(server)
        if len(best) > 1:
            # a/wa < b/wb <=> a*wb < b*wa: the least loaded for its weight.
            least = min(best, key=lambda server: server.active / server.weight)
            best = [
                server
                for server in best
                if server.active * least.weight == least.active * server.weight
            ]
        return self._ties.choose(best)

    def _score(self, server: IUpstreamServer, now: float) -> float:
        """Expected time to answer one more request, per unit of weight."""
        estimate = self.estimate(server, now)
        if estimate is None:
            # Unknown and idle: try it; unknown and busy: wait for its answer.
            return 0.0 if server.active == 0 else math.inf
        in_flight: int = server.active
        weight: int = server.weight
        return estimate * (in_flight + 1) / weight

    def started(self, server: IUpstreamServer, now: float) -> None:
        """Nothing to do: the load is read from ``server.active``."""

    def finished(
        self, server: IUpstreamServer, now: float, elapsed: float, failed: bool
    ) -> None:
        """Fold the response time (or a failure's penalty) into the estimate."""
        sample = max(elapsed, FAILED_RESPONSE_SECONDS) if failed else elapsed
        found = self._estimates.get(server.key)
        if found is None:
            self._estimates[server.key] = _Estimate(sample, now)
            return
        if sample > found.seconds:
            found.seconds = sample
        else:
            kept = self._weight_of_past(found.stamp, now)
            found.seconds = found.seconds * kept + sample * (1.0 - kept)
        found.stamp = max(found.stamp, now)

    def _weight_of_past(self, stamp: float, now: float) -> float:
        """How much an estimate made at ``stamp`` still counts at ``now``."""
        return math.exp(-max(0.0, now - stamp) / self.decay)


def _make(
    options: StrategyOptions, environment: PluginEnvironment
) -> PeakEwmaLeastTime:
    """Build :class:`PeakEwmaLeastTime` from option ``decay``."""
    return PeakEwmaLeastTime(options.duration("decay", DEFAULT_DECAY))


least_time_factory = StrategyFactory(
    "least_time",
    "Lowest peak-EWMA response time for the load, decaying so slow servers retry.",
    _make,
)
