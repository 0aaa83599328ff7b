"""
Tests for edgeproxy.http.stored_answer: answers from the store, at the client's pace.

A memory store holds one response for ``KEY``; what :func:`answer_from_store`
hands to ``deliver`` is recorded, and a recording sink takes the body.
"""

from __future__ import annotations

import pytest

from edgeproxy.cache.memory import MemoryCacheStore
from edgeproxy.cache.store import CHUNK_SIZE
from edgeproxy.core.caching.status import CacheStatus
from edgeproxy.core.caching.stored_response import StoredResponse
from edgeproxy.core.framing import NO_BODY, BodyFraming, fixed_length
from edgeproxy.core.message import Headers, RequestHead, ResponseHead
from edgeproxy.http.stored_answer import StoredBody, answer_from_store

KEY = b"http://app.example/a"
NOW = 1000.0
HIT = CacheStatus(hit=True, ttl=50)


class Sink:
    """
    A body sink that records what it was sent and how the body ended.

    :ivar filling: a producer paused at each piece, as a socket that fills
        at once pauses its producer inside ``write``.
    """

    def __init__(self) -> None:
        self.data = b""
        self.ended: str | None = None
        self.filling: StoredBody | None = None

    def send_body(self, data: bytes) -> None:
        """Record a piece."""
        self.data += data
        if self.filling is not None:
            self.filling.pauseProducing()

    def finish(self) -> None:
        """Record the end."""
        self.ended = "finished"

    def abort(self, reason: Exception | None = None) -> None:
        """Record the failure."""
        self.ended = f"aborted: {reason}"


Delivered = list[tuple[ResponseHead, BodyFraming, StoredBody | None]]


def store_with(
    body: bytes, status: int = 200
) -> tuple[MemoryCacheStore, StoredResponse]:
    """A memory store holding ``body`` as a fresh response to /a."""
    headers = Headers([(b"ETag", b'"v1"'), (b"Cache-Control", b"max-age=60")])
    stored = StoredResponse(status, b"OK", headers, NOW - 1, NOW, b"")
    store = MemoryCacheStore(10**7, 10**6)
    writer = store.open_writer(KEY, stored)
    assert writer is not None
    assert writer.write(body)
    assert writer.commit()
    return store, stored


def answer(
    store: MemoryCacheStore,
    stored: StoredResponse,
    fields: list[tuple[bytes, bytes]] | None = None,
    method: bytes = b"GET",
    wanted: tuple[int, int] | None = None,
) -> tuple[bool, Delivered]:
    """Answer a request for /a from ``stored``: whether it did, what it delivered."""
    delivered: Delivered = []
    request = RequestHead(method, b"/a", Headers(fields or []))
    answered = answer_from_store(
        store,
        KEY,
        request,
        stored,
        HIT,
        NOW,
        lambda head, framing, body: delivered.append((head, framing, body)),
        wanted,
    )
    return answered, delivered


def drain(body: StoredBody | None) -> Sink:
    """A sink that took all of ``body``."""
    assert body is not None
    sink = Sink()
    body.start(sink)
    return sink


@pytest.mark.parametrize(
    ("method", "fields", "status", "framing", "sent"),
    [
        pytest.param(b"GET", [], 200, fixed_length(5), b"hello", id="GET"),
        pytest.param(b"HEAD", [], 200, fixed_length(5), None, id="HEAD: no body"),
        pytest.param(
            b"GET", [(b"If-None-Match", b'"v1"')], 304, NO_BODY, None, id="304"
        ),
    ],
)
def test_answer(
    method: bytes,
    fields: list[tuple[bytes, bytes]],
    status: int,
    framing: BodyFraming,
    sent: bytes | None,
) -> None:
    """A stored response answers with its Cache-Status, its body framed by size."""
    store, stored = store_with(b"hello")
    answered, [(head, delivered_framing, body)] = answer(store, stored, fields, method)
    assert answered
    assert (head.status, delivered_framing) == (status, framing)
    assert head.headers.get(b"Cache-Status") == b"edgeproxy; hit; ttl=50"
    assert (drain(body).data if sent is not None else body) == sent


@pytest.mark.parametrize(
    ("stored_status", "wanted", "status", "content_range", "sent"),
    [
        pytest.param(200, (1, 3), 206, b"bytes 1-3/5", b"ell", id="206"),
        pytest.param(200, (9, -1), 416, b"bytes */5", b"", id="416"),
        pytest.param(404, (1, 3), 404, None, b"hello", id="not a 200: whole"),
    ],
)
def test_range(
    stored_status: int,
    wanted: tuple[int, int],
    status: int,
    content_range: bytes | None,
    sent: bytes,
) -> None:
    """RFC 9110 14: one range of a stored 200 is cut; a 416 keeps the Cache-Status."""
    store, stored = store_with(b"hello", stored_status)
    _, [(head, framing, body)] = answer(store, stored, wanted=wanted)
    assert (head.status, head.headers.get(b"Content-Range")) == (status, content_range)
    assert head.headers.get(b"Cache-Status") == b"edgeproxy; hit; ttl=50"
    assert framing == fixed_length(len(sent))
    assert (drain(body).data if body is not None else b"") == sent


def test_body_gone() -> None:
    """An entry whose body is gone answers nothing, so the caller can go forward."""
    store, stored = store_with(b"hello")
    store.remove(KEY)
    assert answer(store, stored) == (False, [])


def test_stored_body_follows_the_sinks_pace() -> None:
    """A paused client stops the reads from the store; resuming sends the rest."""
    body = bytes(range(256)) * 1024  # 4 pieces of CHUNK_SIZE
    store, stored = store_with(body)
    _, [(_, _, source)] = answer(store, stored)
    assert source is not None
    sink = Sink()
    source.pauseProducing()
    source.start(sink)
    assert sink.data == b""
    sink.filling = source
    source.resumeProducing()
    assert len(sink.data) == CHUNK_SIZE, "one piece until the socket drains"
    sink.filling = None
    source.resumeProducing()
    assert (sink.data, sink.ended) == (body, "finished")
