"""Tests for edgeproxy.upstream.server: one server's state machine."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from zope.interface.verify import verifyObject

from edgeproxy.core.health import HealthResult
from edgeproxy.interfaces import IUpstreamServer
from edgeproxy.upstream.server import (
    AdminState,
    HealthPolicy,
    ServerStats,
    ServerTransition,
    UpstreamServer,
)
from edgeproxy.upstream.server_list import ServerSpec

SPEC = ServerSpec("10.0.0.1", 9001, tls=False, weight=3)
UP = HealthResult(up=True)
REFUSED = HealthResult(up=False, reason="connection refused")


def make_server(
    spec: ServerSpec = SPEC, *, initially_up: bool = True, **policy: Any
) -> tuple[UpstreamServer, list[ServerTransition]]:
    """A server whose transitions are collected in the returned list."""
    seen: list[ServerTransition] = []
    server = UpstreamServer(
        spec,
        HealthPolicy(**policy),
        initially_up=initially_up,
        on_transition=seen.append,
    )
    return server, seen


def fail(server: UpstreamServer, now: float) -> ServerTransition | None:
    """Run one failed request on ``server`` at ``now``."""
    server.request_started()
    return server.request_finished(now, 0.01, failed=True)


def succeed(
    server: UpstreamServer, now: float, elapsed: float = 0.01
) -> ServerTransition | None:
    """Run one successful request on ``server`` at ``now``."""
    server.request_started()
    return server.request_finished(now, elapsed, failed=False)


def test_provides_the_interface() -> None:
    """An UpstreamServer is what strategies and health checks expect."""
    server, _ = make_server(ServerSpec("h", 443, tls=True, server_name="sni.example"))
    assert verifyObject(IUpstreamServer, server)
    assert (server.key, server.host, server.port, server.tls) == (
        "h:443",
        "h",
        443,
        True,
    )
    assert (server.weight, server.active, server.server_name) == (1, 0, "sni.example")


def test_server_name_defaults_to_the_host() -> None:
    """Without server_name, TLS uses the host name."""
    server, _ = make_server(ServerSpec("api.internal", 443, tls=True))
    assert server.server_name == "api.internal"


def test_starts_up_and_enabled() -> None:
    """A new server is available, up and enabled, and reports no transition."""
    server, seen = make_server()
    assert server.available(0.0)
    assert server.status(0.0) == "up"
    assert server.health_reason(0.0) == ""
    assert seen == []


def test_down_in_the_configuration_starts_disabled() -> None:
    """A server written with ``down`` is disabled until enabled."""
    server, _ = make_server(ServerSpec("a", 1, tls=False, down=True))
    assert server.admin_state is AdminState.DISABLED
    assert not server.available(0.0)
    server.set_admin_state(AdminState.ENABLED, 1.0)
    assert server.available(1.0)


# --- passive health ------------------------------------------------------------


def test_max_fails_within_fail_timeout_mark_it_down() -> None:
    """max_fails failures within fail_timeout take the server out, and say why."""
    server, seen = make_server(max_fails=3, fail_timeout=30.0)
    assert fail(server, 0.0) is None
    assert fail(server, 10.0) is None
    transition = fail(server, 29.0)
    assert transition == ServerTransition(
        "10.0.0.1:9001", "health", "up", "down", "3 failed requests within 30s", 29.0
    )
    assert seen == [transition]
    assert not server.available(29.0)
    assert server.status(29.0) == "down"
    assert server.health_reason(29.0) == "3 failed requests within 30s"


def test_failures_spread_wider_than_fail_timeout_do_not_add_up() -> None:
    """Failures further apart than fail_timeout never reach max_fails."""
    server, seen = make_server(max_fails=2, fail_timeout=10.0)
    for now in (0.0, 10.0, 20.0, 30.0):
        fail(server, now)
    assert server.available(30.0)
    assert seen == []


def test_it_is_tried_again_after_fail_timeout() -> None:
    """A passively failed server is available again once fail_timeout has passed."""
    server, _ = make_server(max_fails=1, fail_timeout=10.0)
    fail(server, 5.0)
    assert not server.available(14.9)
    assert server.available(15.0)


def test_a_failed_trial_marks_it_down_again_at_once() -> None:
    """After fail_timeout, one more failure takes the server out for another period."""
    server, seen = make_server(max_fails=3, fail_timeout=10.0)
    for _ in range(3):
        fail(server, 0.0)
    assert fail(server, 10.0) is None  # it was down, and still is
    assert not server.available(19.9)
    assert server.available(20.0)
    assert [t.new for t in seen] == ["down"]


def test_a_successful_trial_brings_it_back_with_a_clean_count() -> None:
    """After fail_timeout a success clears the count: max_fails are needed again."""
    server, seen = make_server(max_fails=2, fail_timeout=10.0)
    fail(server, 0.0)
    fail(server, 0.0)
    transition = succeed(server, 10.0)
    assert transition is not None
    assert (transition.old, transition.new) == ("down", "up")
    assert fail(server, 11.0) is None
    assert server.available(11.0)
    assert [t.new for t in seen] == ["down", "up"]


def test_a_success_during_the_penalty_does_not_end_it() -> None:
    """A request that succeeds while the server is marked down does not revive it."""
    server, _ = make_server(max_fails=1, fail_timeout=10.0)
    fail(server, 0.0)
    assert succeed(server, 5.0) is None
    assert not server.available(5.0)


def test_late_failures_do_not_extend_the_penalty() -> None:
    """Failures of requests in flight when it went down do not push back its return."""
    server, _ = make_server(max_fails=1, fail_timeout=10.0)
    fail(server, 0.0)
    fail(server, 9.0)
    assert server.available(10.0)


def test_max_fails_zero_turns_passive_checks_off() -> None:
    """With max_fails = 0 failures are counted but never take the server out."""
    server, seen = make_server(max_fails=0)
    for _ in range(100):
        fail(server, 0.0)
    assert server.available(0.0)
    assert server.failures == 100
    assert seen == []


# --- active health ---------------------------------------------------------------


def test_fall_failed_probes_in_a_row_mark_it_down() -> None:
    """fall failed probes in a row take an up server out, with the probe's reason."""
    server, seen = make_server(fall=3)
    assert server.record_check(REFUSED, 1.0) is None
    assert server.record_check(REFUSED, 2.0) is None
    transition = server.record_check(REFUSED, 3.0)
    assert transition == ServerTransition(
        "10.0.0.1:9001", "health", "up", "down", "connection refused", 3.0
    )
    assert seen == [transition]
    assert not server.available(3.0)
    assert server.health_reason(3.0) == "connection refused"
    assert server.last_check == REFUSED


def test_a_good_probe_resets_the_fall_count() -> None:
    """Failed probes must be consecutive to count towards fall."""
    server, _ = make_server(fall=2)
    for result in (REFUSED, UP, REFUSED, UP, REFUSED):
        server.record_check(result, 0.0)
    assert server.available(0.0)


def test_rise_good_probes_in_a_row_bring_it_back() -> None:
    """A down server needs rise good probes in a row to come back."""
    server, seen = make_server(rise=2, fall=1)
    server.record_check(REFUSED, 0.0)
    assert server.record_check(UP, 1.0) is None
    assert server.record_check(REFUSED, 2.0) is None
    assert server.record_check(UP, 3.0) is None
    transition = server.record_check(UP, 4.0)
    assert transition is not None
    assert (transition.new, transition.reason) == ("up", "2 health checks passed")
    assert server.available(4.0)
    assert [t.new for t in seen] == ["down", "up"]


def test_a_server_can_start_down_until_checked() -> None:
    """With initially_up=False a server waits for rise good probes."""
    server, _ = make_server(initially_up=False, rise=2)
    assert not server.available(0.0)
    assert server.health_reason(0.0) == "not checked yet"
    server.record_check(UP, 1.0)
    assert not server.available(1.0)
    server.record_check(UP, 2.0)
    assert server.available(2.0)


def test_both_checks_must_agree_for_up() -> None:
    """A server up by probes but passively failed is down, and the reverse."""
    server, _ = make_server(max_fails=1, fail_timeout=10.0, fall=1)
    fail(server, 0.0)
    server.record_check(UP, 1.0)
    assert not server.available(1.0)
    server.record_check(REFUSED, 11.0)
    assert not server.available(11.0)


def test_the_return_from_a_passive_penalty_is_reported_by_the_next_probe() -> None:
    """When fail_timeout ends, the next probe reports the server up again."""
    server, _ = make_server(max_fails=1, fail_timeout=10.0)
    fail(server, 0.0)
    transition = server.record_check(UP, 12.0)
    assert transition is not None
    assert (transition.old, transition.new) == ("down", "up")
    assert transition.reason == "fail_timeout elapsed"


# --- admin state -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("admin", "status"),
    [
        (AdminState.DRAINING, "draining"),
        (AdminState.DISABLED, "disabled"),
    ],
)
def test_drained_or_disabled_servers_take_no_new_requests(
    admin: AdminState, status: str
) -> None:
    """Draining and disabled servers are unavailable; requests in flight go on."""
    server, seen = make_server()
    server.request_started()
    transition = server.set_admin_state(admin, 5.0)
    assert transition == ServerTransition(
        server.key, "admin", "enabled", admin.value, "by request", 5.0
    )
    assert seen == [transition]
    assert not server.available(5.0)
    assert server.status(5.0) == status
    assert server.active == 1
    server.request_finished(6.0, 0.1, failed=False)
    assert server.active == 0


def test_setting_the_same_admin_state_reports_nothing() -> None:
    """An admin request that changes nothing makes no transition."""
    server, seen = make_server()
    assert server.set_admin_state(AdminState.ENABLED, 0.0) is None
    assert seen == []


def test_an_enabled_server_that_is_down_stays_down() -> None:
    """Enabling a server does not override its health."""
    server, _ = make_server(fall=1)
    server.set_admin_state(AdminState.DISABLED, 0.0)
    server.record_check(REFUSED, 1.0)
    server.set_admin_state(AdminState.ENABLED, 2.0)
    assert server.status(2.0) == "down"


# --- capacity and counters -----------------------------------------------------------


def test_max_conns_caps_requests_in_flight() -> None:
    """A server at max_conns has no capacity until a request finishes."""
    server, _ = make_server(ServerSpec("a", 1, tls=False, max_conns=2))
    server.request_started()
    assert server.has_capacity()
    server.request_started()
    assert not server.has_capacity()
    server.request_finished(1.0, 0.1, failed=False)
    assert server.has_capacity()


def test_counters_and_latency_average() -> None:
    """Requests, failures and a moving average of response times are kept."""
    server, _ = make_server(max_fails=0)
    assert server.latency_ewma is None
    succeed(server, 1.0, elapsed=0.5)
    assert server.latency_ewma == pytest.approx(0.5)
    succeed(server, 2.0, elapsed=1.5)
    assert server.latency_ewma == pytest.approx(0.7)
    fail(server, 3.0)
    assert server.latency_ewma == pytest.approx(0.7)  # failures are not timings
    server.request_started()
    server.record_check(HealthResult(up=True, reason="200"), 4.0)
    stats = server.stats(4.0)
    assert stats.latency_ewma == pytest.approx(0.7)
    assert replace(stats, latency_ewma=None) == ServerStats(
        key="10.0.0.1:9001",
        status="up",
        reason="",
        active=1,
        total_requests=4,
        failures=1,
        latency_ewma=None,
        last_check=HealthResult(up=True, reason="200"),
        last_check_at=4.0,
    )


def test_active_never_goes_below_zero() -> None:
    """A stray finish does not make the in-flight count negative."""
    server, _ = make_server()
    server.request_finished(0.0, 0.1, failed=False)
    assert server.active == 0


# --- reload ---------------------------------------------------------------------------


def test_adopted_state_is_shared_with_the_old_server() -> None:
    """After a reload both objects see the same health and counters."""
    old, _ = make_server(fall=1)
    old.request_started()
    old.record_check(REFUSED, 1.0)
    new = UpstreamServer(ServerSpec("10.0.0.1", 9001, tls=False, weight=7))
    new.adopt_state_from(old, 2.0)
    assert (new.weight, new.active, new.total_requests) == (7, 1, 1)
    assert not new.available(2.0)
    old.request_finished(3.0, 0.2, failed=False)
    assert new.active == 0


@pytest.mark.parametrize(
    ("old_down", "runtime", "new_down", "expected"),
    [
        (False, AdminState.DRAINING, False, AdminState.DRAINING),
        (True, AdminState.ENABLED, True, AdminState.ENABLED),
        (False, AdminState.DRAINING, True, AdminState.DISABLED),
        (True, AdminState.DISABLED, False, AdminState.ENABLED),
    ],
)
def test_a_changed_down_flag_overrides_the_runtime_admin_state(
    old_down: bool, runtime: AdminState, new_down: bool, expected: AdminState
) -> None:
    """The runtime admin state carries over unless the config's ``down`` changed."""
    old = UpstreamServer(ServerSpec("a", 1, tls=False, down=old_down))
    old.set_admin_state(runtime, 0.0)
    new = UpstreamServer(ServerSpec("a", 1, tls=False, down=new_down))
    new.adopt_state_from(old, 1.0)
    assert new.admin_state is expected


@pytest.mark.parametrize(
    "policy",
    [
        {"max_fails": -1},
        {"fail_timeout": 0.0},
        {"rise": 0},
        {"fall": 0},
    ],
)
def test_bad_policies_are_refused(policy: dict[str, Any]) -> None:
    """A health policy with impossible values raises ValueError."""
    with pytest.raises(ValueError, match="must be"):
        HealthPolicy(**policy)
