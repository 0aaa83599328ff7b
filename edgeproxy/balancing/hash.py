"""
``hash``: consistent hashing on a part of the request.

Option ``key`` says what to hash: ``client_ip`` (the default), ``url``,
``header:NAME`` or ``cookie:NAME``.  A request without that key (no such
header, a TCP connection asked for its URL) is sent round robin.

The hashing is weighted rendezvous hashing (highest random weight): each
candidate gets a score from the hash of (key, server) and its weight, and the
highest score wins.  It was chosen over a ring of virtual nodes because:

- a server's share is exactly proportional to its weight, with no virtual
  nodes to tune and no ring to rebuild when weights or servers change;
- scoring only the candidates *is* the fallback: when a key's first choice is
  down, draining, at its cap or already tried, the key goes to its next-ranked
  server, and it comes back when the server does;
- adding or removing one server of N moves only the keys that server gains or
  loses, about 1/N of them; no key moves between other servers.

Its cost is one hash mix per candidate per request, which is small for pools
of tens of servers.  Hashes are computed with BLAKE2b, not Python's ``hash``,
so that every worker process and every restart agrees.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

from zope.interface import implementer

from edgeproxy.balancing.plugin import (
    StrategyFactory,
    StrategyOptions,
    StrategyWithoutFeedback,
)
from edgeproxy.balancing.request_keys import parse_request_key
from edgeproxy.balancing.round_robin import RoundRobin
from edgeproxy.core.context import RequestContext
from edgeproxy.interfaces import IBalancingStrategy, IUpstreamServer
from edgeproxy.plugin_environment import PluginEnvironment

_MASK64 = (1 << 64) - 1
_UNIT = 1.0 / (1 << 53)


def stable_hash(data: bytes) -> int:
    """A 64-bit hash of ``data`` that is the same in every process."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def _mix(value: int) -> int:
    """Scramble 64 bits so that nearby inputs give unrelated outputs."""
    # The splitmix64 finaliser: cheaper than a second BLAKE2b per candidate.
    value = (value + 0x9E3779B97F4A7C15) & _MASK64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
    return value ^ (value >> 31)


@implementer(IBalancingStrategy)
class ConsistentHash(StrategyWithoutFeedback):
    """
    Send each key to the same server while that server is a candidate.

    :param key: what to hash: ``client_ip``, ``url``, ``header:NAME`` or
        ``cookie:NAME``.
    :raises ValueError: if ``key`` is none of these.
    """

    def __init__(self, key: str = "client_ip") -> None:
        self._request_key = parse_request_key(key)
        self._server_hashes: dict[str, int] = {}
        self._fallback = RoundRobin()

    def pick(
        self, candidates: Sequence[IUpstreamServer], context: RequestContext, now: float
    ) -> IUpstreamServer:
        """Return the candidate that ranks first for the request's key."""
        value = self._request_key(context)
        if value is None:
            return self._fallback.choose(candidates)
        return self.choose(candidates, stable_hash(value))

    def choose(
        self, candidates: Sequence[IUpstreamServer], key_hash: int
    ) -> IUpstreamServer:
        """Return the candidate with the highest weighted score for ``key_hash``."""
        best = candidates[0]
        best_score = -1.0
        for server in candidates:
            mixed = _mix(key_hash ^ self._server_hash(server.key))
            # A uniform number in (0, 1), never 0 or 1, from the top 53 bits.
            uniform = ((mixed >> 11) + 0.5) * _UNIT
            # -weight/ln(u): the server with the highest score wins with
            # probability weight/total (the minimum of exponential variables).
            score = -server.weight / math.log(uniform)
            if score > best_score:
                best, best_score = server, score
        return best

    def _server_hash(self, key: str) -> int:
        """The server's own hash, computed once."""
        found = self._server_hashes.get(key)
        if found is None:
            found = self._server_hashes[key] = stable_hash(key.encode("utf-8"))
        return found


def _make(options: StrategyOptions, environment: PluginEnvironment) -> ConsistentHash:
    """Build :class:`ConsistentHash` from option ``key``."""
    key = options.text("key", "client_ip")
    try:
        return ConsistentHash(key)
    except ValueError as error:
        options.problem("key", str(error))
        return ConsistentHash()


hash_factory = StrategyFactory(
    "hash",
    "Consistent (rendezvous) hashing on client_ip, url, header:NAME or cookie:NAME.",
    _make,
)
