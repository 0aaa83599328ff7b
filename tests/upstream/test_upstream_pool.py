"""Tests for edgeproxy.upstream.pool: candidates, picking, counters, runtime API."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from zope.interface import implementer

from edgeproxy.balancing.plugin import StrategyWithoutFeedback
from edgeproxy.core.context import RequestContext
from edgeproxy.core.health import HealthResult
from edgeproxy.errors import NoServerAvailable
from edgeproxy.interfaces import IBalancingStrategy, IUpstreamServer
from edgeproxy.testing import FakeServer
from edgeproxy.upstream.pool import UpstreamPool
from edgeproxy.upstream.server import AdminState, HealthPolicy, UpstreamServer
from edgeproxy.upstream.server_list import parse_servers

CONTEXT = RequestContext("192.0.2.7")
DOWN = HealthResult(up=False, reason="refused")


@implementer(IBalancingStrategy)
class FirstCandidate:
    """A strategy that takes the first candidate and records what it is told."""

    def __init__(self) -> None:
        self.offered: list[list[str]] = []
        self.events: list[tuple[str, str, float]] = []

    def pick(
        self, candidates: Sequence[IUpstreamServer], context: RequestContext, now: float
    ) -> IUpstreamServer:
        self.offered.append([server.key for server in candidates])
        return candidates[0]

    def started(self, server: IUpstreamServer, now: float) -> None:
        self.events.append(("started", server.key, now))

    def finished(
        self, server: IUpstreamServer, now: float, elapsed: float, failed: bool
    ) -> None:
        self.events.append(("failed" if failed else "finished", server.key, elapsed))


def make_pool(
    servers: str, policy: HealthPolicy | None = None
) -> tuple[UpstreamPool, FirstCandidate]:
    """A pool of the servers written as in a config, with a recording strategy."""
    specs, problems = parse_servers(servers, allow_tls=True)
    assert problems == ()
    strategy = FirstCandidate()
    pool = UpstreamPool("users", [UpstreamServer(s, policy) for s in specs], strategy)
    return pool, strategy


def candidate_keys(
    pool: UpstreamPool, now: float = 0.0, **kwargs: frozenset[str]
) -> list[str]:
    """The keys of the pool's candidates now."""
    return [server.key for server in pool.candidates(now, **kwargs)]


def test_pick_offers_available_primaries_in_config_order() -> None:
    """The strategy sees every available primary, in configuration order."""
    pool, strategy = make_pool("a:1, b:1, c:1 backup, d:1")
    picked = pool.pick(CONTEXT, 0.0)
    assert picked is pool.server("a:1")
    assert strategy.offered == [["a:1", "b:1", "d:1"]]


@pytest.mark.parametrize(
    ("make_unavailable", "left"),
    [
        (lambda pool: pool.drain("a:1", 0.0), ["b:1", "c:1"]),
        (lambda pool: pool.disable("b:1", 0.0), ["a:1", "c:1"]),
        (lambda pool: pool.server("c:1").record_check(DOWN, 0.0), ["a:1", "b:1"]),
        (
            lambda pool: [pool.started(pool.server("a:1"), 0.0) for _ in range(2)],
            ["b:1", "c:1"],
        ),
    ],
    ids=["draining", "disabled", "down", "at-max-conns"],
)
def test_unavailable_servers_are_not_candidates(
    make_unavailable: Callable[[UpstreamPool], object], left: list[str]
) -> None:
    """Draining, disabled, down and full servers are left out."""
    pool, _ = make_pool("a:1 max_conns=2, b:1, c:1", HealthPolicy(fall=1))
    make_unavailable(pool)
    assert candidate_keys(pool) == left


def test_excluded_servers_are_not_candidates() -> None:
    """Servers already tried for a request are not offered again."""
    pool, strategy = make_pool("a:1, b:1, c:1")
    assert pool.pick(CONTEXT, 0.0, exclude=frozenset({"a:1"})).key == "b:1"
    assert strategy.offered == [["b:1", "c:1"]]


def test_backups_only_when_no_primary_is_available() -> None:
    """Backups are offered only once every primary is unavailable or excluded."""
    pool, _ = make_pool("a:1, b:1 backup, c:1, d:1 backup", HealthPolicy(fall=1))
    pool.drain("a:1", 0.0)
    assert candidate_keys(pool) == ["c:1"]
    assert candidate_keys(pool, exclude=frozenset({"c:1"})) == ["b:1", "d:1"]
    pool.server("c:1").record_check(DOWN, 1.0)
    assert candidate_keys(pool, exclude=frozenset({"b:1"})) == ["d:1"]
    pool.enable("a:1", 2.0)
    assert candidate_keys(pool) == ["a:1"]


def test_no_server_available_is_a_503() -> None:
    """With nothing to offer, pick raises NoServerAvailable (a 503) at once."""
    pool, strategy = make_pool("a:1, b:1 backup")
    pool.disable("a:1", 0.0)
    with pytest.raises(NoServerAvailable) as raised:
        pool.pick(CONTEXT, 0.0, exclude=frozenset({"b:1"}))
    assert raised.value.status == 503
    assert "users" in raised.value.reason
    assert strategy.offered == []


def test_started_and_finished_count_and_tell_the_strategy() -> None:
    """Requests are counted on the server and reported to the strategy."""
    pool, strategy = make_pool("a:1")
    server = pool.pick(CONTEXT, 1.0)
    pool.started(server, 1.0)
    assert (server.active, server.total_requests) == (1, 1)
    assert pool.finished(server, 1.25, 0.25, failed=False) is None
    assert server.active == 0
    assert strategy.events == [("started", "a:1", 1.0), ("finished", "a:1", 0.25)]


def test_failures_reported_to_the_pool_take_a_server_out() -> None:
    """Passive health: failures passed to finished mark the server down."""
    pool, strategy = make_pool("a:1, b:1", HealthPolicy(max_fails=2))
    server = pool.server("a:1")
    for _ in range(2):
        pool.started(server, 0.0)
    assert pool.finished(server, 1.0, 0.01, failed=True) is None
    transition = pool.finished(server, 2.0, 0.01, failed=True)
    assert transition is not None
    assert (transition.key, transition.new) == ("a:1", "down")
    assert candidate_keys(pool, 2.0) == ["b:1"]
    assert candidate_keys(pool, 12.0) == ["a:1", "b:1"]
    assert strategy.events[-1] == ("failed", "a:1", 0.01)


def test_runtime_api() -> None:
    """drain, disable and enable by key change the admin state and report it."""
    pool, _ = make_pool("a:1, b:1")
    transition = pool.drain("a:1", 3.0)
    assert transition is not None
    assert (transition.old, transition.new, transition.at) == (
        "enabled",
        "draining",
        3.0,
    )
    assert pool.disable("a:1", 4.0) is not None
    assert pool.server("a:1").admin_state is AdminState.DISABLED
    assert pool.enable("a:1", 5.0) is not None
    assert pool.enable("a:1", 6.0) is None
    assert pool.server("a:1").admin_state is AdminState.ENABLED


@pytest.mark.parametrize("operation", ["drain", "disable", "enable"])
def test_runtime_api_refuses_unknown_keys(operation: str) -> None:
    """The runtime API raises KeyError for a server the pool does not have."""
    pool, _ = make_pool("a:1")
    with pytest.raises(KeyError):
        getattr(pool, operation)("z:1", 0.0)
    with pytest.raises(KeyError):
        pool.server("z:1")


def test_duplicate_keys_are_refused() -> None:
    """A pool cannot hold two servers with the same key."""
    specs, _ = parse_servers("a:1", allow_tls=False)
    servers = [UpstreamServer(specs[0]), UpstreamServer(specs[0])]
    with pytest.raises(ValueError, match="unique"):
        UpstreamPool("users", servers, FirstCandidate())


def test_a_strategy_answering_a_stranger_is_an_error() -> None:
    """A strategy that returns a server not from the pool is caught."""

    @implementer(IBalancingStrategy)
    class Stranger(FirstCandidate):
        def pick(
            self,
            candidates: Sequence[IUpstreamServer],
            context: RequestContext,
            now: float,
        ) -> IUpstreamServer:
            return FakeServer("a", 1)

    specs, _ = parse_servers("a:1", allow_tls=False)
    pool = UpstreamPool("users", [UpstreamServer(specs[0])], Stranger())
    with pytest.raises(TypeError, match="not a server of this pool"):
        pool.pick(CONTEXT, 0.0)


def test_reload_carries_state_of_kept_servers() -> None:
    """A reloaded pool keeps health, admin state and counters; weights are new."""
    old, _ = make_pool("a:1 weight=1, b:1, c:1", HealthPolicy(fall=1))
    in_flight = old.server("a:1")
    old.started(in_flight, 0.0)
    old.drain("b:1", 0.0)
    old.server("c:1").record_check(DOWN, 0.0)
    new, _ = make_pool("a:1 weight=5, b:1, c:1, d:1")
    new.carry_state_from(old, 1.0)
    a = new.server("a:1")
    assert (a.weight, a.active, a.total_requests) == (5, 1, 1)
    assert new.server("b:1").admin_state is AdminState.DRAINING
    assert not new.server("c:1").available(1.0)
    assert new.server("d:1").total_requests == 0
    assert candidate_keys(new, 1.0) == ["a:1", "d:1"]
    # A request that started on the old pool finishes there; the new one sees it.
    old.finished(in_flight, 2.0, 0.1, failed=False)
    assert a.active == 0


# --- what pick offers, from one request to the next -----------------------------


def offered_after(
    pool: UpstreamPool, strategy: FirstCandidate, now: float
) -> list[str]:
    """The keys the strategy is offered by a pick at ``now``."""
    pool.pick(CONTEXT, now)
    return strategy.offered[-1]


@pytest.mark.parametrize(
    ("change", "offered"),
    [
        pytest.param(lambda pool: pool.disable("a:1", 1.0), ["b:1"], id="disable"),
        pytest.param(lambda pool: pool.drain("a:1", 1.0), ["b:1"], id="drain"),
        pytest.param(
            lambda pool: [pool.server("a:1").record_check(DOWN, 1.0) for _ in range(3)],
            ["b:1"],
            id="active check",
        ),
        pytest.param(
            lambda pool: (
                pool.started(pool.server("a:1"), 1.0),
                pool.finished(pool.server("a:1"), 1.0, 0.1, failed=True),
            ),
            ["b:1"],
            id="passive mark down",
        ),
    ],
)
def test_every_change_of_availability_shows_in_the_next_pick(
    change: Callable[[UpstreamPool], object], offered: list[str]
) -> None:
    """A pick after a server's availability changed offers the servers of now."""
    pool, strategy = make_pool("a:1, b:1")
    assert offered_after(pool, strategy, 0.0) == ["a:1", "b:1"]
    change(pool)
    assert offered_after(pool, strategy, 1.0) == offered


def test_a_server_comes_back_when_its_mark_down_runs_out() -> None:
    """A passively marked-down server is offered again after fail_timeout, unasked."""
    pool, strategy = make_pool("a:1, b:1", HealthPolicy(max_fails=1, fail_timeout=10))
    pool.started(pool.server("a:1"), 0.0)
    pool.finished(pool.server("a:1"), 0.0, 0.1, failed=True)
    assert offered_after(pool, strategy, 9.9) == ["b:1"]
    assert offered_after(pool, strategy, 10.0) == ["a:1", "b:1"]


def test_a_capped_server_is_offered_by_its_requests_in_flight() -> None:
    """A server at its max_conns cap is left out until a request ends."""
    pool, strategy = make_pool("a:1 max_conns=1, b:1")
    server = pool.server("a:1")
    pool.started(server, 0.0)
    assert offered_after(pool, strategy, 0.0) == ["b:1"]
    pool.finished(server, 1.0, 0.1, failed=False)
    assert offered_after(pool, strategy, 1.0) == ["a:1", "b:1"]


def test_a_strategy_without_feedback_that_wants_some_is_told() -> None:
    """A StrategyWithoutFeedback subclass overriding started is still told."""

    @implementer(IBalancingStrategy)
    class Counting(StrategyWithoutFeedback):
        def __init__(self) -> None:
            self.started_on: list[str] = []

        def pick(
            self,
            candidates: Sequence[IUpstreamServer],
            context: RequestContext,
            now: float,
        ) -> IUpstreamServer:
            return candidates[0]

        def started(self, server: IUpstreamServer, now: float) -> None:
            self.started_on.append(server.key)

    strategy = Counting()
    specs, _ = parse_servers("a:1", allow_tls=True)
    pool = UpstreamPool("users", [UpstreamServer(specs[0])], strategy)
    pool.started(pool.pick(CONTEXT, 0.0), 0.0)
    assert strategy.started_on == ["a:1"]
