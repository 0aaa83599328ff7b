"""Tests for edgeproxy.http.upstream_attempt: which failed tries may be made again."""

from __future__ import annotations

from typing import Any, cast

import pytest
from twisted.internet.task import Clock

from edgeproxy.errors import BadGateway, GatewayTimeout, UpstreamError
from edgeproxy.http.client import NothingReceived
from edgeproxy.http.upstream_attempt import (
    UpstreamAttempt,
    failure_retriable,
    stale_connection,
)


def attempt(*, connected: bool, reused: bool = False) -> UpstreamAttempt:
    """A try that did (or did not) get a connection, maybe a reused one."""
    made = UpstreamAttempt(cast(Any, None), cast(Any, None), Clock(), 0.0)
    made.connected = connected
    made.reused = reused
    return made


@pytest.mark.parametrize(
    ("error", "connected", "method", "replayable", "retriable"),
    [
        # A connection never made: any method goes elsewhere.
        (BadGateway("refused"), False, b"POST", True, True),
        (GatewayTimeout("connect timed out"), False, b"POST", True, True),
        # Reached a server: only idempotent methods, and not after a timeout.
        (BadGateway("reset"), True, b"GET", True, True),
        (BadGateway("reset"), True, b"PUT", True, True),
        (BadGateway("reset"), True, b"POST", True, False),
        (BadGateway("reset"), True, b"PATCH", True, False),
        (GatewayTimeout("no answer in time"), True, b"GET", True, False),
        # A body already (partly) sent cannot be sent again.
        (BadGateway("refused"), False, b"GET", False, False),
        (BadGateway("reset"), True, b"GET", False, False),
    ],
)
def test_failure_retriable(
    error: UpstreamError,
    connected: bool,
    method: bytes,
    replayable: bool,
    retriable: bool,
) -> None:
    """A failed try goes to another server only when resending cannot do harm."""
    assert (
        failure_retriable(error, attempt(connected=connected), method, replayable)
        is retriable
    )


@pytest.mark.parametrize(
    ("error", "reused", "replayable", "stale"),
    [
        (NothingReceived("closed before any byte"), True, True, True),
        (NothingReceived("closed before any byte"), False, True, False),
        (NothingReceived("closed before any byte"), True, False, False),
        (BadGateway("reset"), True, True, False),
    ],
)
def test_stale_connection(
    error: UpstreamError, reused: bool, replayable: bool, stale: bool
) -> None:
    """Only a reused connection closed before any byte is the keep-alive race."""
    made = attempt(connected=True, reused=reused)
    assert stale_connection(error, made, replayable) is stale
