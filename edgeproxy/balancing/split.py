"""
Traffic splits: one route's requests shared between upstreams by weight.

``upstream = stable 95%, canary 5%`` sends 95 % of a route's requests to
``stable`` and 5 % to ``canary``.  Without a ``split_key`` the shares are
exact (smooth weighted round robin over requests); with one (``client_ip``,
``header:NAME`` or ``cookie:NAME``) each client is hashed to one side and stays
there.  ``split_override = header:NAME`` (or ``cookie:NAME``) lets a request
choose: a value naming one of the split's upstreams sends it there.  Counters
say what each side received.
"""

from __future__ import annotations

from collections.abc import Sequence

from edgeproxy.balancing.hash import stable_hash
from edgeproxy.balancing.request_keys import RequestKey, parse_request_key
from edgeproxy.core.context import RequestContext

_SCALE = 1 << 64


class TrafficSplit:
    """
    Chooses the upstream of each request of one route.

    :param shares: ``(upstream name, percent)`` pairs; the percents add up to 100.
    :param key: ``client_ip``, ``header:NAME`` or ``cookie:NAME`` for sticky
        splits, or ``None``.
    :param override: ``header:NAME`` or ``cookie:NAME`` whose value may name
        the upstream, or ``None``.
    :raises ValueError: for a bad key or override.
    :ivar counts: requests sent to each upstream so far.
    """

    def __init__(
        self,
        shares: Sequence[tuple[str, float]],
        key: str | None = None,
        override: str | None = None,
    ) -> None:
        self.names = tuple(name for name, _ in shares)
        self.weights = tuple(weight for _, weight in shares)
        total = sum(self.weights)
        bounds = []
        running = 0.0
        for weight in self.weights:
            running += weight
            bounds.append(int(running / total * _SCALE))
        bounds[-1] = _SCALE
        self._bounds = tuple(bounds)
        self._key: RequestKey | None = parse_request_key(key) if key else None
        if override is not None and not override.startswith(("header:", "cookie:")):
            raise ValueError(f"{override!r} is not header:NAME or cookie:NAME")
        self._override: RequestKey | None = (
            parse_request_key(override) if override else None
        )
        self._current = [0.0] * len(self.names)
        self.counts = dict.fromkeys(self.names, 0)

    def choose(self, context: RequestContext) -> str:
        """The upstream for this request (counted)."""
        name = self._pick(context)
        self.counts[name] += 1
        return name

    def _pick(self, context: RequestContext) -> str:
        if self._override is not None:
            wanted = self._override(context)
            if wanted is not None:
                name = wanted.decode("ascii", "replace").strip()
                if name in self.counts:
                    return name
        if self._key is not None:
            value = self._key(context)
            if value is not None:
                point = stable_hash(value)
                for name, bound in zip(self.names, self._bounds, strict=True):
                    if point < bound:
                        return name
        # Smooth weighted round robin: exact shares, no bursts.
        current = self._current
        total = 0.0
        best = 0
        for index, weight in enumerate(self.weights):
            current[index] += weight
            total += weight
            if current[index] > current[best]:
                best = index
        current[best] -= total
        return self.names[best]
