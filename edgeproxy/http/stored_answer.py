"""
Answers from the store: a stored head, its body read at the client's pace.

:func:`answer_from_store` answers a request from a stored response: a 304
when the client's validators match, the head alone for ``HEAD``, a single
byte range of a stored 200 (206, or 416), or the whole body, read from the
store only as fast as the client takes it (:class:`StoredBody`).
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from edgeproxy.cache.store import CacheReader, CacheStore
from edgeproxy.core.caching.ranges import byte_span, without_range
from edgeproxy.core.caching.status import CacheStatus
from edgeproxy.core.caching.stored_response import StoredResponse
from edgeproxy.core.caching.validation import served_response
from edgeproxy.core.framing import NO_BODY, BodyFraming, fixed_length
from edgeproxy.core.message import RequestHead, ResponseHead
from edgeproxy.http.body import BodySink


@implementer(IPushProducer)
class StoredBody:
    """A stored body (or a byte range of it) sent at the pace of its sink."""

    def __init__(self, reader: CacheReader, skip: int = 0, length: int = -1) -> None:
        self._reader: CacheReader | None = reader
        self._skip = skip
        self._left = reader.size - skip if length < 0 else length
        self._sink: BodySink | None = None
        self._paused = False
        self._pumping = False

    def start(self, sink: BodySink) -> None:
        """Send the body to ``sink``."""
        self._sink = sink
        self._pump()

    def pauseProducing(self) -> None:
        """The client's socket is full."""
        self._paused = True

    def resumeProducing(self) -> None:
        """The client's socket drained."""
        self._paused = False
        self._pump()

    def stopProducing(self) -> None:
        """The client is gone."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()

    def _pump(self) -> None:
        # A write that fills the socket pauses us at once (the transport calls
        # pauseProducing inside write), which ends this loop.
        if self._pumping or self._sink is None:
            return
        self._pumping = True
        try:
            while not self._paused and self._reader is not None:
                self._send_next(self._sink, self._reader)
        finally:
            self._pumping = False

    def _send_next(self, sink: BodySink, reader: CacheReader) -> None:
        try:
            piece = reader.read() if self._left > 0 else b""
        except OSError as error:
            self.stopProducing()
            sink.abort(error)
            return
        if not piece:
            self.stopProducing()
            sink.finish()
            return
        if self._skip:
            dropped = min(self._skip, len(piece))
            self._skip -= dropped
            piece = piece[dropped:]
        piece = piece[: self._left]
        self._left -= len(piece)
        if piece:
            sink.send_body(piece)


Deliver = Callable[[ResponseHead, BodyFraming, StoredBody | None], None]
"""How an answer goes to the client: head, framing, body (``None``: no body)."""


def answer_from_store(
    store: CacheStore,
    key: bytes,
    request: RequestHead,
    stored: StoredResponse,
    status: CacheStatus,
    now: float,
    deliver: Deliver,
    wanted: tuple[int, int] | None = None,
) -> bool:
    """
    Answer ``request`` from ``stored`` (under ``key``) through ``deliver``.

    The head carries ``status`` as its ``Cache-Status``.  ``wanted`` is the
    single byte range asked for
    (:func:`~edgeproxy.core.caching.ranges.single_range`), cut from a stored
    200 only.  Returns ``False``, having sent nothing, when the stored body
    is gone.
    """
    head = served_response(without_range(request) if wanted else request, stored, now)
    head.headers.add(b"Cache-Status", status.field_value())
    if head.status == 304:
        deliver(head, NO_BODY, None)
        return True
    reader = store.open_reader(key, stored.variant)
    if reader is None:
        return False
    size = reader.size
    if wanted is not None and stored.status == 200:
        _answer_range(head, reader, wanted, deliver)
    elif request.method == b"HEAD" or not size:
        reader.close()
        deliver(head, fixed_length(size), None)
    else:
        deliver(head, fixed_length(size), StoredBody(reader))
    return True


def _answer_range(
    head: ResponseHead,
    reader: CacheReader,
    wanted: tuple[int, int],
    deliver: Deliver,
) -> None:
    """Answer a byte range of a stored 200 (RFC 9110 section 14)."""
    size = reader.size
    span = byte_span(wanted, size)
    if span is None:
        reader.close()
        refusal = ResponseHead(416, b"Range Not Satisfiable")
        refusal.headers.add(b"Content-Range", b"bytes */%d" % size)
        refusal.headers.pairs += [
            pair for pair in head.headers.pairs if pair[0].lower() == b"cache-status"
        ]
        deliver(refusal, fixed_length(0), None)
        return
    first, last = span
    head.status, head.reason = 206, b"Partial Content"
    head.headers.set(b"Content-Range", b"bytes %d-%d/%d" % (first, last, size))
    body = StoredBody(reader, skip=first, length=last - first + 1)
    deliver(head, fixed_length(last - first + 1), body)
