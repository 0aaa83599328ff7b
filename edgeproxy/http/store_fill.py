"""
Filling the store from an upstream body while the client gets it too.

:class:`StoreFill` reads the upstream body once for both: the client's pace
rules while the client is there; once it leaves, the body goes on into the
store alone.  A store failure never breaks the client's answer.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

from edgeproxy.cache.store import CacheWriter
from edgeproxy.http.body import BodySink, BodyStream

log = Logger()


@implementer(IPushProducer)
class StoreFill:
    """
    One upstream body going both to the client and into the store.

    It is the upstream body's sink and the client's producer: the client's
    back-pressure pauses the upstream while the client is there; once it is
    gone (:meth:`stopProducing`) the body goes on into the store alone, and
    is dropped only when the store gives up too.  ``done(stored)`` is called
    once, when the store's part is over.
    """

    def __init__(
        self, body: BodyStream, writer: CacheWriter, done: Callable[[bool], None]
    ) -> None:
        self._body = body
        self._writer: CacheWriter | None = writer
        self._done: Callable[[bool], None] | None = done
        self._sink: BodySink | None = None
        self._started = False
        self._detached = False
        self._paused = False
        self._ended = False

    def start(self, sink: BodySink) -> None:
        """Send the body to the client ``sink`` too."""
        if not self._detached:
            self._sink = sink
            self._begin()

    def pauseProducing(self) -> None:
        """The client's socket is full: pause the upstream."""
        if not self._detached:
            self._paused = True
            self._body.pauseProducing()

    def resumeProducing(self) -> None:
        """The client's socket drained."""
        if self._paused:
            self._paused = False
            self._body.resumeProducing()

    def stopProducing(self) -> None:
        """The client is gone (or never comes): fill the store alone."""
        self._sink = None
        self._detached = True
        if self._writer is None:
            if not self._ended:
                self._body.stopProducing()
            return
        self._begin()
        self.resumeProducing()

    # --- the upstream body's sink ----------------------------------------------

    def send_body(self, data: bytes) -> None:
        """One piece: into the store, then to the client."""
        writer = self._writer
        if writer is not None:
            try:
                written = writer.write(data)
            except Exception:
                log.failure("cache: storing a response body failed")
                written = False
            if not written:
                self._give_up(writer)
        if self._sink is not None:
            self._sink.send_body(data)
        elif self._writer is None:
            self._body.stopProducing()

    def finish(self) -> None:
        """The whole body came: commit, then end the client's response."""
        self._ended = True
        writer, self._writer = self._writer, None
        stored = False
        if writer is not None:
            try:
                stored = writer.commit()
            except Exception:
                log.failure("cache: committing a response body failed")
        if self._sink is not None:
            self._sink.finish()
        self._report(stored)

    def abort(self, reason: Exception | None = None) -> None:
        """The upstream body broke: drop the entry and the client's response."""
        self._ended = True
        if self._writer is not None:
            self._give_up(self._writer)
        if self._sink is not None:
            self._sink.abort(reason)

    def _begin(self) -> None:
        if not self._started:
            self._started = True
            self._body.start(self)

    def _give_up(self, writer: CacheWriter) -> None:
        self._writer = None
        try:
            writer.abandon()
        except Exception:
            log.failure("cache: abandoning a response body failed")
        self._report(False)

    def _report(self, stored: bool) -> None:
        done, self._done = self._done, None
        if done is not None:
            done(stored)


def commit_without_body(writer: CacheWriter) -> None:
    """Store an entry without a body; a failure is logged, never raised."""
    try:
        writer.commit()
    except Exception:
        log.failure("cache: committing an empty response failed")
