"""
A message body in transit: the one streaming seam between the two protocols.

A :class:`BodyStream` carries one body from the protocol that reads it (its
*origin*: the client-side server protocol for a request body, the upstream
client protocol for a response body) to one *sink* that sends it on (the
client protocol writing upstream, or the server's exchange writing to the
client).  It is the sink's producer: when the sink's socket fills up, the sink's
transport pauses the stream, and the stream pauses its origin's transport.

Until a sink is attached (a filter's ``Deferred`` is pending, a pipelined
request waits its turn) chunks are kept; past ``buffer_size`` bytes the origin
is paused, so a body never sits in memory beyond that bound plus one read.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer


class BodySink(Protocol):
    """Where a :class:`BodyStream` delivers its body, in order."""

    def send_body(self, data: bytes) -> None:
        """Send the next (non-empty) piece of the body on."""

    def finish(self) -> None:
        """The body is complete."""

    def abort(self, reason: Exception | None = None) -> None:
        """The body cannot be completed; drop the connection it goes to."""


class BodyOrigin(Protocol):
    """The reading side of a :class:`BodyStream`, told how to pace its reads."""

    def pause_body(self) -> None:
        """Stop reading the body's bytes for now."""

    def resume_body(self) -> None:
        """Read the body's bytes again."""

    def abandon_body(self) -> None:
        """Nobody wants the rest of the body: drop it (and close when due)."""

    def body_wanted(self) -> None:
        """A sink started reading (the moment to send ``100 Continue``)."""


_OPEN = 0  # the origin may still feed
_ENDED = 1  # the origin has fed everything; buffered chunks may remain
_FAILED = 2  # the origin failed; the failure waits for a sink
_DONE = 3  # the sink has been told the end or the failure
_STOPPED = 4  # the consumer went away


@implementer(IPushProducer)
class BodyStream:
    """
    One body flowing from an origin to a sink, buffered up to a bound.

    The origin calls :meth:`feed`, then :meth:`end` or :meth:`fail`.  The
    consumer calls :meth:`start` once with its sink, and drives flow with
    the :class:`~twisted.internet.interfaces.IPushProducer` methods (usually
    by registering the stream as its transport's producer).

    With ``tell_wanted`` off, :meth:`BodyOrigin.body_wanted` is never called
    (an origin for which it means nothing: an upstream sends unasked).

    :ivar received: body bytes fed so far.
    """

    __slots__ = (
        "_buffer_size",
        "_buffered",
        "_chunks",
        "_failure",
        "_origin",
        "_origin_paused",
        "_paused",
        "_sink",
        "_state",
        "_tell_wanted",
        "received",
    )

    def __init__(
        self, origin: BodyOrigin, buffer_size: int, *, tell_wanted: bool = True
    ) -> None:
        self._origin = origin
        self._tell_wanted = tell_wanted
        self._buffer_size = buffer_size
        self._sink: BodySink | None = None
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._state = _OPEN
        self._failure: Exception | None = None
        self._paused = False
        self._origin_paused = False
        self.received = 0

    def __repr__(self) -> str:
        return f"<BodyStream received={self.received} buffered={self._buffered}>"

    @property
    def started(self) -> bool:
        """Whether a sink was attached (a retry cannot replay this body)."""
        return self._sink is not None

    @property
    def complete(self) -> bool:
        """Whether the origin has fed the whole body."""
        return self._state in (_ENDED, _DONE) and self._failure is None

    # --- the origin's side ---------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Add the next piece of the body (dropped once the consumer stopped)."""
        if self._state != _OPEN:
            return
        self.received += len(data)
        sink = self._sink
        if sink is not None and not self._paused and not self._chunks:
            sink.send_body(data)
            return
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > self._buffer_size and not self._origin_paused:
            self._origin_paused = True
            self._origin.pause_body()

    def end(self) -> None:
        """The whole body has been fed."""
        if self._state != _OPEN:
            return
        self._state = _ENDED
        # Nothing more comes from the origin for this body, so holding its
        # transport paused would only stall whatever it reads next.
        if self._origin_paused:
            self._release_origin()
        if self._sink is not None:
            self._flush(self._sink)

    def fail(self, reason: Exception) -> None:
        """The body cannot be completed; the sink is aborted with ``reason``."""
        if self._state not in (_OPEN, _ENDED):
            return
        self._chunks.clear()
        self._buffered = 0
        self._failure = reason
        self._state = _FAILED
        if self._sink is not None:
            self._flush(self._sink)

    # --- the consumer's side -------------------------------------------------

    def start(self, sink: BodySink) -> None:
        """
        Deliver the body to ``sink``: what is buffered, then the rest.

        :raises RuntimeError: when a sink was already attached.
        """
        if self._sink is not None:
            raise RuntimeError("a body stream has one sink")
        self._sink = sink
        if self._state == _STOPPED:
            return
        if self._state == _OPEN and self._tell_wanted:
            self._origin.body_wanted()
        self._flush(sink)

    def pauseProducing(self) -> None:
        """The sink's transport is full: stop delivering and pause the origin."""
        self._paused = True
        if self._state == _OPEN and not self._origin_paused:
            self._origin_paused = True
            self._origin.pause_body()

    def resumeProducing(self) -> None:
        """The sink's transport drained: deliver what is buffered, read again."""
        self._paused = False
        if self._sink is not None:
            self._flush(self._sink)
        elif self._buffered <= self._buffer_size:
            self._release_origin()

    def stopProducing(self) -> None:
        """The consumer went away: drop the body and tell the origin."""
        state = self._state
        if state in (_DONE, _STOPPED):
            return
        self._state = _STOPPED
        self._chunks.clear()
        self._buffered = 0
        if state == _OPEN:
            self._origin.abandon_body()

    # --- internals -----------------------------------------------------------

    def _flush(self, sink: BodySink) -> None:
        chunks = self._chunks
        while chunks and not self._paused:
            data = chunks.popleft()
            self._buffered -= len(data)
            sink.send_body(data)
        if chunks or self._paused:
            return
        if self._state == _ENDED:
            self._state = _DONE
            sink.finish()
        elif self._state == _FAILED:
            self._state = _DONE
            sink.abort(self._failure)
        elif self._state == _OPEN and self._origin_paused:
            self._release_origin()

    def _release_origin(self) -> None:
        if self._origin_paused and not (self._paused and self._state == _OPEN):
            self._origin_paused = False
            self._origin.resume_body()
