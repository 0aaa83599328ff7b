"""
The in-process rate-limit store: one TAT per key in a bounded dictionary.

A key whose TAT is not after ``now`` is at rest, exactly as if it were absent,
so such entries are dropped as they are met.  Memory stays bounded by a cap on
the number of keys: past it, the least recently used key is forgotten (which
hands that client a fresh burst; a cap large enough for the live clients makes
that rare).
"""

from __future__ import annotations

from collections import OrderedDict

from edgeproxy.core.gcra import GcraDecision, GcraPolicy, decide

DEFAULT_MAX_KEYS = 100_000

# How many of the least recently used entries each call looks at for expiry:
# a constant amount of work per request that keeps pace with new keys.
_SWEEP = 2


class MemoryStore:
    """
    Rate-limit state in a dictionary, least recently used first.

    :ivar max_keys: the most keys kept at once.
    """

    def __init__(self, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.max_keys = max_keys
        self._tats: OrderedDict[tuple[int, int, str], int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._tats)

    def take(self, key: str, policy: GcraPolicy, now: int) -> GcraDecision:
        """Decide one request for ``key`` at ``now`` (microseconds), at once."""
        entry = (policy.emission_interval, policy.burst_tolerance, key)
        tats = self._tats
        decision = decide(tats.get(entry, 0), now, policy)
        if decision.allowed:
            tats[entry] = decision.tat
            tats.move_to_end(entry)
        self._sweep(now)
        return decision

    def _sweep(self, now: int) -> None:
        tats = self._tats
        for _ in range(_SWEEP):
            if not tats:
                return
            oldest, tat = next(iter(tats.items()))
            if tat > now and len(tats) <= self.max_keys:
                return
            del tats[oldest]
        while len(tats) > self.max_keys:
            tats.popitem(last=False)
