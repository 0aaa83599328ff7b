"""
Where rate-limit state lives: in this process (the default) or in Redis.

A store keeps one GCRA theoretical arrival time per key and decides requests
against it (:mod:`edgeproxy.core.gcra`).  The in-process store answers at once;
the Redis store answers with a ``Deferred`` and is shared by every edgeproxy
instance that points at the same server.  Keys that differ only in their policy
never meet: a store keys state by policy and key together.
"""

from __future__ import annotations

from typing import Protocol

from twisted.internet.defer import Deferred

from edgeproxy.core.gcra import GcraDecision, GcraPolicy
from edgeproxy.errors import EdgeproxyError


class StoreUnavailable(EdgeproxyError):
    """A shared store could not answer (not connected, timed out, refused)."""


class RateLimitStore(Protocol):
    """What a rate limiter needs of its store."""

    def take(
        self, key: str, policy: GcraPolicy, now: int
    ) -> GcraDecision | Deferred[GcraDecision]:
        """
        Decide one request for ``key`` under ``policy`` and record it if allowed.

        :param now: the caller's time in microseconds (a store with a clock of
            its own, shared by many callers, may use that clock instead).
        :return: the decision, or a ``Deferred`` firing with it; the
            ``Deferred`` fails with :class:`StoreUnavailable` when the store
            cannot answer.
        """
        ...
