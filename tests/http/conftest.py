"""Fakes and fixtures shared by the tests of edgeproxy.http."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogEvent, globalLogPublisher


class RecordingSink:
    """A BodySink that keeps what it is sent."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.finished = False
        self.aborted: list[Exception | None] = []

    @property
    def data(self) -> bytes:
        """Everything received so far, joined."""
        return b"".join(self.chunks)

    def send_body(self, data: bytes) -> None:
        """Keep a piece of the body."""
        self.chunks.append(data)

    def finish(self) -> None:
        """Note the end."""
        self.finished = True

    def abort(self, reason: Exception | None = None) -> None:
        """Note the failure."""
        self.aborted.append(reason)


class LogCapture:
    """Twisted log events emitted during a test."""

    def __init__(self) -> None:
        self.events: list[LogEvent] = []

    def __call__(self, event: LogEvent) -> None:
        self.events.append(event)

    def failures(self) -> list[Any]:
        """The failures that were logged."""
        return [event["log_failure"] for event in self.events if "log_failure" in event]

    def errors(self) -> list[str]:
        """The formats of events logged at error level or above."""
        return [
            event["log_format"]
            for event in self.events
            if event.get("log_level") is not None
            and event["log_level"].name in ("error", "critical")
        ]


@pytest.fixture
def logged() -> Iterator[LogCapture]:
    """Capture the log events of the test."""
    capture = LogCapture()
    globalLogPublisher.addObserver(capture)
    try:
        yield capture
    finally:
        globalLogPublisher.removeObserver(capture)


@pytest.fixture(autouse=True)
def _no_unexpected_failures(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that logs a Failure (an unhandled Deferred error...) unasked."""
    capture = LogCapture()
    globalLogPublisher.addObserver(capture)
    try:
        yield
        gc.collect()  # unhandled Deferred errors are logged when collected
    finally:
        globalLogPublisher.removeObserver(capture)
    if "logged" not in request.fixturenames and capture.failures():
        pytest.fail(f"unexpected logged failures: {capture.failures()}")


@pytest.fixture
def clock() -> MemoryReactorClock:
    """A reactor whose time moves only when the test says."""
    return MemoryReactorClock()


@pytest.fixture
def make_sink() -> type[RecordingSink]:
    """Make a RecordingSink (call it once per sink)."""
    return RecordingSink
