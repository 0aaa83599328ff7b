"""
One upstream server: its configuration, its admin state, its health and counters.

Everything here is sans-IO: time comes in as ``now`` (the reactor's seconds) and
nothing is logged.  A method that changes whether the server is up, or its
admin state, returns a :class:`ServerTransition` (or ``None``) and hands the
same value to the server's :attr:`UpstreamServer.on_transition` hook, so that
the caller decides how to log it.

Health has two sources, and the server is up only when both say so:

- *passive* checks, as nginx does them: ``max_fails`` failed requests within
  ``fail_timeout`` seconds mark the server down for ``fail_timeout`` seconds;
  then it is tried again, and the first failure of that trial marks it down
  again at once, while a success clears the count (``max_fails = 0`` turns
  passive checks off);
- *active* checks, as HAProxy does them: :meth:`UpstreamServer.record_check`
  with a probe's result; ``fall`` failed probes in a row mark an up server
  down, ``rise`` good probes in a row bring a down server back.

The mutable part lives in a private state object that a reloaded pool's server
*shares* with the server of the same key in the old pool (see
:meth:`UpstreamServer.adopt_state_from`): requests still in flight on the old
configuration then keep the new pool's counters exact.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from zope.interface import implementer

from edgeproxy.core.health import HealthResult
from edgeproxy.interfaces import IUpstreamServer
from edgeproxy.upstream.server_list import ServerSpec

# How much one response time moves the latency average shown in stats: about
# the last ten responses count.
_LATENCY_SMOOTHING = 0.2


class AdminState(enum.Enum):
    """What an operator (or the configuration's ``down``) allows a server to do."""

    ENABLED = "enabled"
    DRAINING = "draining"
    """No new requests; those in flight finish."""
    DISABLED = "disabled"


@dataclass(frozen=True)
class HealthPolicy:
    """
    How a pool judges its servers' health.

    :ivar max_fails: failed requests within ``fail_timeout`` that mark a server
        down (passive checks); 0 turns passive checks off.
    :ivar fail_timeout: seconds, both the window failures are counted in and
        how long a server stays marked down.
    :ivar rise: good probes in a row that bring a down server back.
    :ivar fall: failed probes in a row that mark an up server down.
    """

    max_fails: int = 1
    fail_timeout: float = 10.0
    rise: int = 2
    fall: int = 3

    def __post_init__(self) -> None:
        if self.max_fails < 0:
            raise ValueError("max_fails must be 0 or more")
        if self.fail_timeout <= 0:
            raise ValueError("fail_timeout must be more than 0")
        if self.rise < 1 or self.fall < 1:
            raise ValueError("rise and fall must be 1 or more")


@dataclass(frozen=True)
class ServerTransition:
    """
    A change of a server's health or admin state, for the caller to log.

    :ivar key: the server's key.
    :ivar aspect: ``"health"`` or ``"admin"``.
    :ivar old: the state before: ``"up"``/``"down"``, or an :class:`AdminState` value.
    :ivar new: the state after.
    :ivar reason: why, in words.
    :ivar at: when, in the reactor's seconds.
    """

    key: str
    aspect: str
    old: str
    new: str
    reason: str
    at: float

    def __str__(self) -> str:
        return f"{self.key} {self.aspect} {self.old} -> {self.new} ({self.reason})"


@dataclass(frozen=True)
class ServerStats:
    """
    A snapshot of one server for stats pages and metrics.

    :ivar status: ``"up"``, ``"down"``, ``"draining"`` or ``"disabled"``.
    :ivar reason: why the server is down, or ``""``.
    :ivar latency_ewma: a moving average of response times in seconds, or
        ``None`` before the first response.
    """

    key: str
    status: str
    reason: str
    active: int
    total_requests: int
    failures: int
    latency_ewma: float | None
    last_check: HealthResult | None
    last_check_at: float | None


TransitionHook = Callable[[ServerTransition], None]


class AvailabilityChanges:
    """
    Counts the changes that make any server more or less available.

    An admin state set, an active check that turns a server up or down, a
    passive mark down or its clearing, a reload sharing state: each adds one.
    Pools keep their candidate lists while the count stays the same (the
    passage of time aside: see :attr:`UpstreamServer.down_until`).

    :ivar count: the changes so far.
    """

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


AVAILABILITY = AvailabilityChanges()
"""The changes of every server of the process."""


class _ServerState:
    """The mutable part of a server, shared across a reload."""

    __slots__ = (
        "active",
        "admin",
        "check_reason",
        "checked_up",
        "down_until",
        "fail_streak",
        "failures",
        "last_check",
        "last_check_at",
        "latency_ewma",
        "reported_up",
        "rise_streak",
        "total_requests",
        "window_fails",
        "window_start",
    )

    def __init__(self, admin: AdminState, checked_up: bool) -> None:
        self.admin = admin
        self.checked_up = checked_up
        self.check_reason = "" if checked_up else "not checked yet"
        self.rise_streak = 0
        self.fail_streak = 0
        self.last_check: HealthResult | None = None
        self.last_check_at: float | None = None
        self.window_start: float | None = None
        self.window_fails = 0
        self.down_until: float | None = None
        self.reported_up = checked_up
        self.active = 0
        self.total_requests = 0
        self.failures = 0
        self.latency_ewma: float | None = None


@implementer(IUpstreamServer)
class UpstreamServer:
    """
    A server of an upstream pool, with its state.

    :param spec: the server as configured.
    :param policy: the pool's health policy.
    :param initially_up: whether the server counts as up before any probe
        (``False`` makes it wait for ``rise`` good probes).
    :param on_transition: called with every transition; see also the
        :attr:`on_transition` attribute.
    :ivar spec: the server as configured; ``key``, ``host``, ``port``,
        ``tls``, ``weight``, ``backup`` and ``max_conns`` are copied from it
        as plain attributes (they are read on every pick).
    :ivar authority: the key as bytes (``host:port``, as a Host field has it).
    :ivar server_name: the TLS server name to send and verify (the host
        unless ``server_name`` was given).
    :ivar on_transition: the hook called with every :class:`ServerTransition`,
        or ``None``.
    """

    def __init__(
        self,
        spec: ServerSpec,
        policy: HealthPolicy | None = None,
        *,
        initially_up: bool = True,
        on_transition: TransitionHook | None = None,
    ) -> None:
        self.spec = spec
        self.policy = policy if policy is not None else HealthPolicy()
        self.key: str = spec.key
        self.authority: bytes = spec.key.encode("ascii")
        self.host: str = spec.host
        self.port: int = spec.port
        self.tls: bool = spec.tls
        self.weight: int = spec.weight
        self.backup: bool = spec.backup
        self.max_conns: int = spec.max_conns
        self.server_name: str = spec.server_name or spec.host
        self.on_transition = on_transition
        admin = AdminState.DISABLED if spec.down else AdminState.ENABLED
        self._state = _ServerState(admin, initially_up)

    def __repr__(self) -> str:
        return f"<UpstreamServer {self.key} weight={self.weight}>"

    # --- state --------------------------------------------------------------

    @property
    def active(self) -> int:
        """Requests or connections in flight now."""
        return self._state.active

    @property
    def total_requests(self) -> int:
        """Requests or connections started since the server was first configured."""
        return self._state.total_requests

    @property
    def failures(self) -> int:
        """Requests or connections that ended in failure."""
        return self._state.failures

    @property
    def latency_ewma(self) -> float | None:
        """A moving average of response times (seconds), ``None`` before any."""
        return self._state.latency_ewma

    @property
    def last_check(self) -> HealthResult | None:
        """The latest active probe's result, or ``None``."""
        return self._state.last_check

    @property
    def admin_state(self) -> AdminState:
        """What the operator allows."""
        return self._state.admin

    @property
    def down_until(self) -> float | None:
        """When a passive mark down ends (the server is then on trial), or ``None``."""
        return self._state.down_until

    def is_up(self, now: float) -> bool:
        """Whether both active and passive checks consider the server healthy."""
        state = self._state
        if not state.checked_up:
            return False
        return state.down_until is None or now >= state.down_until

    def health_reason(self, now: float) -> str:
        """Why the server is down, or ``""`` when it is up."""
        state = self._state
        if not state.checked_up:
            return state.check_reason or "health check failed"
        if state.down_until is not None and now < state.down_until:
            return (
                f"{self.policy.max_fails} failed requests within "
                f"{self.policy.fail_timeout:g}s"
            )
        return ""

    def available(self, now: float) -> bool:
        """Whether the server may take a new request (caps aside)."""
        return self._state.admin is AdminState.ENABLED and self.is_up(now)

    def has_capacity(self) -> bool:
        """Whether the server is under its ``max_conns`` cap (or has none)."""
        return self.max_conns == 0 or self._state.active < self.max_conns

    def status(self, now: float) -> str:
        """``"disabled"``, ``"draining"``, ``"down"`` or ``"up"``, in that order."""
        admin: str = self._state.admin.value
        if admin != AdminState.ENABLED.value:
            return admin
        return "up" if self.is_up(now) else "down"

    def stats(self, now: float) -> ServerStats:
        """A snapshot of the server's state and counters."""
        state = self._state
        return ServerStats(
            key=self.key,
            status=self.status(now),
            reason=self.health_reason(now),
            active=state.active,
            total_requests=state.total_requests,
            failures=state.failures,
            latency_ewma=state.latency_ewma,
            last_check=state.last_check,
            last_check_at=state.last_check_at,
        )

    # --- requests (passive health) --------------------------------------------

    def request_started(self) -> None:
        """Count a request or connection that starts on this server."""
        self._state.active += 1
        self._state.total_requests += 1

    def request_finished(
        self, now: float, elapsed: float, failed: bool
    ) -> ServerTransition | None:
        """
        Count a request that ended, and apply passive health checks.

        :param elapsed: seconds it took (to the response head).
        :param failed: whether it failed (connect error, reset, timeout).
        """
        state = self._state
        if state.active > 0:
            state.active -= 1
        if failed:
            state.failures += 1
            self._count_failure(now)
        else:
            if state.latency_ewma is None:
                state.latency_ewma = elapsed
            else:
                state.latency_ewma += _LATENCY_SMOOTHING * (
                    elapsed - state.latency_ewma
                )
            if state.down_until is None:
                if state.checked_up is state.reported_up:
                    return None  # the usual case: up before, up now
            elif now >= state.down_until:
                # The trial after fail_timeout succeeded: start counting afresh.
                state.down_until = None
                state.window_start = None
                state.window_fails = 0
                AVAILABILITY.count += 1
        return self._note_health(now, "a request succeeded after fail_timeout")

    def _count_failure(self, now: float) -> None:
        """Apply one failed request to the passive-check counters."""
        state = self._state
        policy = self.policy
        if policy.max_fails == 0:
            return
        if state.down_until is not None:
            if now >= state.down_until:
                # The trial after fail_timeout failed: down again at once.
                state.down_until = now + policy.fail_timeout
                AVAILABILITY.count += 1
            # A request that started before the server was marked down
            # does not extend the penalty.
            return
        if state.window_start is None or now - state.window_start >= (
            policy.fail_timeout
        ):
            state.window_start = now
            state.window_fails = 0
        state.window_fails += 1
        if state.window_fails >= policy.max_fails:
            state.down_until = now + policy.fail_timeout
            AVAILABILITY.count += 1

    # --- active health ----------------------------------------------------------

    def record_check(self, result: HealthResult, now: float) -> ServerTransition | None:
        """Apply one active probe's result (``rise``/``fall`` in a row)."""
        state = self._state
        state.last_check = result
        state.last_check_at = now
        up_reason = "fail_timeout elapsed"
        if result.up:
            state.fail_streak = 0
            if not state.checked_up:
                state.rise_streak += 1
                if state.rise_streak >= self.policy.rise:
                    state.checked_up = True
                    AVAILABILITY.count += 1
                    state.check_reason = ""
                    state.rise_streak = 0
                    up_reason = f"{self.policy.rise} health checks passed"
        else:
            state.rise_streak = 0
            if state.checked_up:
                state.fail_streak += 1
                if state.fail_streak >= self.policy.fall:
                    state.checked_up = False
                    AVAILABILITY.count += 1
                    state.fail_streak = 0
            if not state.checked_up:
                state.check_reason = result.reason or "health check failed"
        return self._note_health(now, up_reason)

    def _note_health(self, now: float, up_reason: str) -> ServerTransition | None:
        """Report a change of up/down since the last report, if there was one."""
        state = self._state
        up = self.is_up(now)
        if up == state.reported_up:
            return None
        state.reported_up = up
        if up:
            return self._emit("health", "down", "up", up_reason, now)
        return self._emit("health", "up", "down", self.health_reason(now), now)

    # --- admin ----------------------------------------------------------------

    def set_admin_state(
        self, admin: AdminState, now: float, reason: str = "by request"
    ) -> ServerTransition | None:
        """Enable, drain or disable the server; return the change, if any."""
        old = self._state.admin
        if old is admin:
            return None
        self._state.admin = admin
        AVAILABILITY.count += 1
        return self._emit("admin", old.value, admin.value, reason, now)

    def _emit(
        self, aspect: str, old: str, new: str, reason: str, now: float
    ) -> ServerTransition:
        """Build a transition and hand it to the hook."""
        transition = ServerTransition(self.key, aspect, old, new, reason, now)
        if self.on_transition is not None:
            self.on_transition(transition)
        return transition

    # --- reload -----------------------------------------------------------------

    def adopt_state_from(self, old: UpstreamServer, now: float) -> None:
        """
        Share the state (health, admin state, counters) of ``old``.

        Used when a reloaded configuration keeps a server: both objects then
        see the same counters, so requests that finish on the old
        configuration are counted where the new one looks.  If the
        configuration's ``down`` flag changed, the new configuration decides
        the admin state; otherwise the runtime state carries over.
        """
        self._state = old._state
        AVAILABILITY.count += 1
        if old.spec.down != self.spec.down:
            admin = AdminState.DISABLED if self.spec.down else AdminState.ENABLED
            self.set_admin_state(admin, now, "configuration reloaded")
