"""Tests for edgeproxy.http.body: buffering, flow control and ends of a body."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from twisted.internet.interfaces import IPushProducer
from zope.interface.verify import verifyObject

from edgeproxy.http.body import BodyStream

if TYPE_CHECKING:
    from tests.http.conftest import RecordingSink


class RecordingOrigin:
    """A BodyOrigin that keeps the calls it gets."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.paused = False

    def pause_body(self) -> None:
        self.calls.append("pause")
        self.paused = True

    def resume_body(self) -> None:
        self.calls.append("resume")
        self.paused = False

    def abandon_body(self) -> None:
        self.calls.append("abandon")

    def body_wanted(self) -> None:
        self.calls.append("wanted")


@pytest.fixture
def origin() -> RecordingOrigin:
    return RecordingOrigin()


@pytest.fixture
def sink(make_sink: type[RecordingSink]) -> RecordingSink:
    return make_sink()


def test_provides_push_producer(origin: RecordingOrigin) -> None:
    """A body stream can be registered as a transport's streaming producer."""
    assert verifyObject(IPushProducer, BodyStream(origin, 10))


def test_chunks_pass_straight_to_a_ready_sink(
    origin: RecordingOrigin, sink: RecordingSink
) -> None:
    """With a sink attached and ready, chunks go through unbuffered."""
    stream = BodyStream(origin, 4)
    stream.start(sink)
    stream.feed(b"hello world")
    stream.end()
    assert sink.chunks == [b"hello world"]
    assert sink.finished
    assert stream.received == 11
    assert stream.complete
    assert origin.calls == ["wanted"]


def test_buffer_bound_pauses_the_origin_until_a_sink_drains_it(
    origin: RecordingOrigin, sink: RecordingSink
) -> None:
    """Without a sink, more than buffer_size bytes pause the origin, once."""
    stream = BodyStream(origin, 4)
    stream.feed(b"abc")
    assert not origin.paused
    stream.feed(b"de")
    stream.feed(b"f")
    assert origin.calls == ["pause"]
    stream.start(sink)
    assert sink.chunks == [b"abc", b"de", b"f"]
    assert origin.calls == ["pause", "wanted", "resume"]
    assert not sink.finished


def test_sink_back_pressure_pauses_and_resumes_the_origin(
    origin: RecordingOrigin, sink: RecordingSink
) -> None:
    """When the sink's transport pauses the stream, the origin pauses too."""
    stream = BodyStream(origin, 100)
    stream.start(sink)
    stream.pauseProducing()
    assert origin.paused
    stream.feed(b"kept")
    assert sink.chunks == []
    stream.resumeProducing()
    assert sink.chunks == [b"kept"]
    assert not origin.paused


def test_end_releases_the_origin_and_finishes_after_the_buffer(
    origin: RecordingOrigin, sink: RecordingSink
) -> None:
    """The end frees the origin at once; the sink hears it after the data."""
    stream = BodyStream(origin, 100)
    stream.start(sink)
    stream.pauseProducing()
    stream.feed(b"tail")
    stream.end()
    assert not origin.paused
    assert not sink.finished
    stream.resumeProducing()
    assert sink.chunks == [b"tail"]
    assert sink.finished


def test_failure_reaches_a_late_sink(
    origin: RecordingOrigin, sink: RecordingSink
) -> None:
    """A failure before start aborts the sink when it attaches; data is dropped."""
    stream = BodyStream(origin, 100)
    stream.feed(b"partial")
    error = ValueError("bad chunk")
    stream.fail(error)
    stream.start(sink)
    assert sink.chunks == []
    assert sink.aborted == [error]
    assert not stream.complete


def test_failure_after_end_of_delivery_is_ignored(
    origin: RecordingOrigin, sink: RecordingSink
) -> None:
    """Once the sink heard the end, a late failure changes nothing."""
    stream = BodyStream(origin, 100)
    stream.start(sink)
    stream.end()
    stream.fail(ValueError("late"))
    assert sink.finished
    assert sink.aborted == []


def test_stop_abandons_an_open_body(
    origin: RecordingOrigin, sink: RecordingSink
) -> None:
    """A consumer that goes away makes the origin drop the rest."""
    stream = BodyStream(origin, 100)
    stream.feed(b"buffered")
    stream.stopProducing()
    stream.feed(b"more")
    stream.start(sink)
    assert origin.calls == ["abandon"]
    assert sink.chunks == []
    assert not sink.finished


def test_stop_after_the_end_abandons_nothing(origin: RecordingOrigin) -> None:
    """A body the origin already read whole needs no abandoning."""
    stream = BodyStream(origin, 100)
    stream.feed(b"all")
    stream.end()
    stream.stopProducing()
    assert origin.calls == []


def test_one_sink_only(origin: RecordingOrigin, make_sink: type[RecordingSink]) -> None:
    """A body can be read once."""
    stream = BodyStream(origin, 100)
    stream.start(make_sink())
    assert stream.started
    with pytest.raises(RuntimeError):
        stream.start(make_sink())


def test_body_wanted_only_while_the_body_is_open(
    origin: RecordingOrigin, sink: RecordingSink
) -> None:
    """Starting a body that already arrived whole asks the origin for nothing."""
    stream = BodyStream(origin, 100)
    stream.end()
    stream.start(sink)
    assert origin.calls == []
    assert sink.finished


@pytest.mark.parametrize(("tell_wanted", "calls"), [(True, ["wanted"]), (False, [])])
def test_body_wanted_told_only_when_asked_for(
    origin: RecordingOrigin, sink: RecordingSink, tell_wanted: bool, calls: list[str]
) -> None:
    """An open body's start tells the origin, unless made with tell_wanted off."""
    stream = BodyStream(origin, 100, tell_wanted=tell_wanted)
    stream.start(sink)
    stream.feed(b"abc")
    assert origin.calls == calls
    assert sink.data == b"abc"


def test_pause_during_delivery_stops_the_flush(origin: RecordingOrigin) -> None:
    """A sink whose transport fills up mid-flush gets nothing more until resumed."""
    stream = BodyStream(origin, 1)

    class PausingSink:
        def __init__(self) -> None:
            self.chunks: list[bytes] = []

        def send_body(self, data: bytes) -> None:
            self.chunks.append(data)
            stream.pauseProducing()

        def finish(self) -> None:
            self.chunks.append(b"<end>")

        def abort(self, reason: Exception | None = None) -> None:
            raise AssertionError(reason)

    sink = PausingSink()
    stream.feed(b"a")
    stream.feed(b"b")
    stream.end()
    stream.start(sink)
    assert sink.chunks == [b"a"]
    stream.resumeProducing()
    assert sink.chunks == [b"a", b"b"]
    stream.resumeProducing()
    assert sink.chunks == [b"a", b"b", b"<end>"]
