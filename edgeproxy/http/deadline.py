"""A re-armable timeout that reuses one pending call, for per-connection timers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from twisted.internet.interfaces import IDelayedCall, IReactorTime

Kind = TypeVar("Kind")


class Deadline(Generic[Kind]):
    """
    One countdown at a time, labelled by what it is for.

    Re-arming moves the pending call instead of making a new one, and
    disarming leaves it pending (it fires into nothing), so a connection
    that arms and disarms once per request allocates no timer per request.

    :ivar kind: what the running countdown is for, or ``None``.
    """

    __slots__ = ("_call", "_expired", "_reactor", "kind")

    def __init__(self, reactor: IReactorTime, expired: Callable[[Kind], None]) -> None:
        self._reactor = reactor
        self._expired = expired
        self._call: IDelayedCall | None = None
        self.kind: Kind | None = None

    def arm(self, kind: Kind, seconds: float) -> None:
        """Start (or restart) the countdown: ``expired(kind)`` in ``seconds``."""
        self.kind = kind
        call = self._call
        if call is not None and call.active():
            call.reset(seconds)
        else:
            self._call = self._reactor.callLater(seconds, self._fire)

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
        kind = self.kind
        self.kind = None
        self._call = None
        if kind is not None:
            self._expired(kind)
