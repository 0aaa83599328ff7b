"""
The Redis rate-limit store: one Lua script that runs GCRA on the server.

The script runs the GCRA decision atomically on the server, on the *server's*
clock (``TIME``): edgeproxy instances on several hosts then agree on one clock
and their skew cannot tilt a shared limit; HAProxy and Kong likewise count on
the server.  The script returns how far ahead of the server's ``now`` the key's
schedule was, and :func:`~edgeproxy.core.gcra.gcra` on that relative time
derives the decision, so this module and the in-process store share one
definition of the outcome.  Redis 5 or later is needed (effects replication of
a script that reads ``TIME`` and writes).  The connection is
:class:`~edgeproxy.store.redis_client.RedisClient`.
"""

from __future__ import annotations

import hashlib

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail
from twisted.python.failure import Failure

from edgeproxy.core.gcra import GcraDecision, GcraPolicy, decide
from edgeproxy.store import StoreUnavailable
from edgeproxy.store.redis_client import RedisClient
from edgeproxy.store.resp import RedisReplyError, Reply

KEY_PREFIX = "edgeproxy:rate_limit:"
"""The start of every key the store writes (then interval:tolerance:key)."""

GCRA_SCRIPT = """\
-- KEYS[1]: the key; ARGV[1]: emission interval, ARGV[2]: burst tolerance (us).
-- Returns {allowed, how far the key's schedule is ahead of now (us)}.
if redis.replicate_commands then redis.replicate_commands() end
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local ahead = tat - now
if ahead > tolerance then return {0, ahead} end
local next_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', next_tat),
           'PX', math.ceil((next_tat - now) / 1000))
return {1, ahead}
"""
"""The GCRA step, run atomically on the server on the server's clock."""

GCRA_SCRIPT_SHA1 = hashlib.sha1(GCRA_SCRIPT.encode()).hexdigest()


class RedisStore(Service):
    """
    Rate-limit state in Redis, shared by every instance using the same server.

    A service: starting it connects its client, stopping it disconnects.

    :ivar client: the connection.
    """

    def __init__(self, client: RedisClient) -> None:
        self.client = client

    def startService(self) -> None:
        """Connect (and keep reconnecting)."""
        super().startService()
        self.client.startService()

    def stopService(self) -> None:
        """Disconnect."""
        super().stopService()
        self.client.stopService()

    def take(self, key: str, policy: GcraPolicy, now: int) -> Deferred[GcraDecision]:
        """
        Decide one request on the server; ``now`` is not used (see the module).

        Fails with :class:`StoreUnavailable` when Redis cannot answer.
        """
        redis_key = (
            f"{KEY_PREFIX}{policy.emission_interval}:{policy.burst_tolerance}:{key}"
        )
        arguments = (1, redis_key, policy.emission_interval, policy.burst_tolerance)
        result = self.client.execute("EVALSHA", GCRA_SCRIPT_SHA1, *arguments)
        result.addErrback(self._load_script, arguments)
        return result.addCallback(_decision, policy)

    def _load_script(
        self, failure: Failure, arguments: tuple[int, str, int, int]
    ) -> Deferred[Reply]:
        failure.trap(RedisReplyError)
        if not str(failure.value).startswith("NOSCRIPT"):
            return fail(failure)
        # EVAL also caches the script, so later EVALSHA calls find it.
        return self.client.execute("EVAL", GCRA_SCRIPT, *arguments)


def _decision(reply: Reply, policy: GcraPolicy) -> GcraDecision:
    if (
        not isinstance(reply, list)
        or len(reply) != 2
        or not all(isinstance(item, int) for item in reply)
    ):
        raise StoreUnavailable(f"unexpected reply from the script: {reply!r}")
    allowed, ahead = reply
    assert isinstance(ahead, int)
    decision = decide(ahead, 0, policy)
    if decision.allowed != bool(allowed):
        raise StoreUnavailable("the script and the policy disagree")
    return decision
