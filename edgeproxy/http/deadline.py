"""A re-armable timeout that reuses one pending call, for per-connection timers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from twisted.internet.interfaces import IDelayedCall, IReactorTime

Kind = TypeVar("Kind")


class Deadline(Generic[Kind]):
    """
    One countdown at a time, labelled by what it is for.

    Connections arm and disarm their deadlines several times per request, so
    both are kept to a few attribute writes: disarming leaves the pending
    call in place (it fires into nothing), and arming for a later time only
    notes that time; the pending call, when it fires early, waits again for
    what is left.  The reactor's call is moved only when a deadline comes
    sooner than it.

    :ivar kind: what the running countdown is for, or ``None``.
    """

    __slots__ = ("_call", "_call_at", "_due", "_expired", "_reactor", "kind")

    def __init__(self, reactor: IReactorTime, expired: Callable[[Kind], None]) -> None:
        self._reactor = reactor
        self._expired = expired
        self._call: IDelayedCall | None = None
        self._call_at = 0.0
        self._due = 0.0
        self.kind: Kind | None = None

    def arm(self, kind: Kind, seconds: float) -> None:
        """Start (or restart) the countdown: ``expired(kind)`` in ``seconds``."""
        self.kind = kind
        self._due = due = self._reactor.seconds() + seconds
        call = self._call
        if call is None:
            self._call_at = due
            self._call = self._reactor.callLater(seconds, self._fire)
        elif due < self._call_at:
            self._call_at = due
            call.reset(seconds)

    def disarm(self) -> None:
        """Stop the countdown (cheaply: a pending call is kept for re-arming)."""
        self.kind = None

    def cancel(self) -> None:
        """Stop the countdown and drop the pending call (the connection ended)."""
        self.kind = None
        call = self._call
        self._call = None
        if call is not None and call.active():
            call.cancel()

    def _fire(self) -> None:
        self._call = None
        kind = self.kind
        if kind is None:
            return
        due = self._due
        if due > self._call_at:
            # Re-armed for later since the call was set: wait for the rest.
            # The times compared are the ones noted here, never the clock,
            # so float rounding cannot make a deadline wait twice.
            self._call_at = due
            delay = max(0.0, due - self._reactor.seconds())
            self._call = self._reactor.callLater(delay, self._fire)
            return
        self.kind = None
        self._expired(kind)
