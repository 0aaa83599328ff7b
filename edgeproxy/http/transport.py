"""The transport calls the HTTP protocols make, as one static type."""

from __future__ import annotations

import typing

from twisted.internet.interfaces import IAddress


class StreamTransport(typing.Protocol):
    """
    A connected stream transport (TCP, TLS, UNIX) seen as one object.

    Twisted spreads these over ``ITransport``, ``ITCPTransport``,
    ``IConsumer`` and ``IPushProducer``; every stream transport has them all.
    """

    def write(self, data: bytes) -> None:
        """Send bytes."""

    def loseConnection(self) -> None:
        """Close once everything written has been sent."""

    def abortConnection(self) -> None:
        """Close now, dropping what is not sent yet."""

    def getPeer(self) -> IAddress:
        """The remote address."""

    def pauseProducing(self) -> None:
        """Stop reading."""

    def resumeProducing(self) -> None:
        """Read again."""

    def registerProducer(self, producer: object, streaming: bool) -> None:
        """Have ``producer`` paused while the write buffer is full."""

    def unregisterProducer(self) -> None:
        """Forget the registered producer."""
