"""
An upstream pool: servers, the strategy that chooses among them, and the runtime API.

A pool never blocks and never reads a clock: :meth:`UpstreamPool.pick` answers
at once with a server or raises :class:`~edgeproxy.errors.NoServerAvailable`.

:meth:`UpstreamPool.pick` runs for every request: the servers it may choose
from are kept from one request to the next until a server's availability
changes (:data:`~edgeproxy.upstream.server.AVAILABILITY`) or a passive mark
down runs out, and the strategy is told when requests start and end only if
it wants to be.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from edgeproxy.balancing.plugin import StrategyWithoutFeedback
from edgeproxy.core.context import RequestContext
from edgeproxy.errors import NoServerAvailable
from edgeproxy.interfaces import IBalancingStrategy
from edgeproxy.upstream.server import (
    AVAILABILITY,
    AdminState,
    ServerTransition,
    UpstreamServer,
)

_NOTHING_EXCLUDED: frozenset[str] = frozenset()


class UpstreamPool:
    """
    The servers of one ``[upstream:NAME]`` section and its balancing strategy.

    :param name: the upstream's name.
    :param servers: its servers, in configuration order; keys must be unique.
    :param strategy: the strategy that picks among available servers.
    :raises ValueError: if two servers have the same key.
    :ivar name: the upstream's name.
    :ivar servers: every server, in configuration order.
    :ivar strategy: the balancing strategy.
    """

    def __init__(
        self,
        name: str,
        servers: Iterable[UpstreamServer],
        strategy: IBalancingStrategy,
    ) -> None:
        self.name = name
        self.servers = tuple(servers)
        self.strategy = strategy
        self._by_key = {server.key: server for server in self.servers}
        if len(self._by_key) != len(self.servers):
            raise ValueError(f"upstream {name}: server keys must be unique")
        self._primaries = tuple(s for s in self.servers if not s.backup)
        self._backups = tuple(s for s in self.servers if s.backup)
        # Whether the candidates depend on each request in flight (caps).
        self._capped = any(s.max_conns for s in self.servers)
        kind = type(strategy)
        self._feedback = not (
            getattr(kind, "started", None) is StrategyWithoutFeedback.started
            and getattr(kind, "finished", None) is StrategyWithoutFeedback.finished
        )
        # The candidates with nothing excluded, while AVAILABILITY.count is
        # _cached_at and the time is before _cached_until.
        self._cached: tuple[UpstreamServer, ...] = ()
        self._cached_at = -1
        self._cached_until = 0.0

    def __repr__(self) -> str:
        return f"<UpstreamPool {self.name} servers={len(self.servers)}>"

    def server(self, key: str) -> UpstreamServer:
        """
        Return the server with ``key``.

        :raises KeyError: if the pool has no such server.
        """
        return self._by_key[key]

    def candidates(
        self, now: float, exclude: frozenset[str] = _NOTHING_EXCLUDED
    ) -> list[UpstreamServer]:
        """
        The servers a new request may go to now, in configuration order.

        These are the available primary servers under their connection cap
        and not in ``exclude``; when there is none, the backup servers that
        pass the same test.
        """
        found = _usable(self._primaries, now, exclude)
        if not found and self._backups:
            found = _usable(self._backups, now, exclude)
        return found

    def pick(
        self,
        context: RequestContext,
        now: float,
        exclude: frozenset[str] = _NOTHING_EXCLUDED,
    ) -> UpstreamServer:
        """
        Choose the server for a request or connection.

        The caller reports the request with :meth:`started` and
        :meth:`finished`.

        :param exclude: keys of servers not to use (already tried for this
            request).
        :raises NoServerAvailable: if no server may take the request.
        :raises TypeError: if the strategy answers with something that is not
            a server of this pool.
        """
        if exclude or self._capped:
            found: Sequence[UpstreamServer] = self.candidates(now, exclude)
        elif self._cached_at == AVAILABILITY.count and now < self._cached_until:
            found = self._cached
        else:
            found = self._cache_candidates(now)
        if not found:
            raise NoServerAvailable(f"upstream {self.name}: no server is available")
        picked = self.strategy.pick(found, context, now)
        server = self._by_key.get(picked.key)
        if server is None or server is not picked:
            raise TypeError(
                f"upstream {self.name}: strategy {self.strategy!r} "
                f"picked {picked!r}, which is not a server of this pool"
            )
        return server

    def started(self, server: UpstreamServer, now: float) -> None:
        """A request or connection started on ``server`` (a server of this pool)."""
        server.request_started()
        if self._feedback:
            self.strategy.started(server, now)

    def finished(
        self, server: UpstreamServer, now: float, elapsed: float, failed: bool
    ) -> ServerTransition | None:
        """
        A request or connection on ``server`` ended.

        :param elapsed: seconds from its start to the end of the response
            head (for TCP, to the connection's establishment).
        :param failed: whether it failed (connect error, reset, timeout).
        :return: the server's health transition, if this caused one.
        """
        transition = server.request_finished(now, elapsed, failed)
        if self._feedback:
            self.strategy.finished(server, now, elapsed, failed)
        return transition

    def _cache_candidates(self, now: float) -> tuple[UpstreamServer, ...]:
        """The candidates now, kept until a change or a mark down's end."""
        changes = AVAILABILITY.count
        found = self._cached = tuple(self.candidates(now))
        until = float("inf")
        for server in self.servers:
            down_until = server.down_until
            if down_until is not None and now < down_until < until:
                until = down_until
        self._cached_at = changes
        self._cached_until = until
        return found

    # --- runtime API ------------------------------------------------------------

    def drain(self, key: str, now: float) -> ServerTransition | None:
        """
        Let the server's requests in flight finish but send it no new ones.

        :raises KeyError: if the pool has no such server.
        """
        return self._by_key[key].set_admin_state(AdminState.DRAINING, now)

    def disable(self, key: str, now: float) -> ServerTransition | None:
        """
        Send the server no new requests (as ``down`` in the configuration).

        :raises KeyError: if the pool has no such server.
        """
        return self._by_key[key].set_admin_state(AdminState.DISABLED, now)

    def enable(self, key: str, now: float) -> ServerTransition | None:
        """
        Let a drained or disabled server take requests again (if healthy).

        :raises KeyError: if the pool has no such server.
        """
        return self._by_key[key].set_admin_state(AdminState.ENABLED, now)

    # --- reload -----------------------------------------------------------------

    def carry_state_from(self, old_pool: UpstreamPool, now: float) -> None:
        """
        Take over the state of the servers that ``old_pool`` shares with this pool.

        For a reload: each server of this pool whose key is also in
        ``old_pool`` shares its health, admin state and counters from then
        on (see :meth:`UpstreamServer.adopt_state_from`); its weight and other
        settings stay those of the new configuration.  Call it before the
        pool serves requests.  The strategy's own memory (rotation, latency
        scores) starts afresh.
        """
        for server in self.servers:
            old = old_pool._by_key.get(server.key)
            if old is not None and old is not server:
                server.adopt_state_from(old, now)


def _usable(
    servers: tuple[UpstreamServer, ...], now: float, exclude: frozenset[str]
) -> list[UpstreamServer]:
    """The servers that may take a new request: available, under cap, not excluded."""
    return [
        server
        for server in servers
        if server.available(now) and server.has_capacity() and server.key not in exclude
    ]
