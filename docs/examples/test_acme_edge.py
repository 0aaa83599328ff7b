"""Tests of Acme's example plugins, written with ``edgeproxy.testing``."""

from __future__ import annotations

import pytest
from twisted.internet.testing import MemoryReactorClock
from twisted.plugins.acme_edge import assume_up, first, stamp

from edgeproxy.core.message import ResponseHead
from edgeproxy.errors import OptionError
from edgeproxy.testing import (
    FakeServer,
    environment,
    make_request,
    resolve,
    run_request_hook,
    run_response_hook,
)


def test_stamp_sets_its_header() -> None:
    """The filter sets the configured header on every request."""
    stamp_filter = stamp.build({"header": "X-Stamp", "value": "acme"}, environment())
    context, request = make_request(b"GET", b"/", [(b"Host", b"a.example")])
    assert run_request_hook(stamp_filter, context, request) is None
    assert request.headers.get(b"X-Stamp") == b"acme"


def test_stamp_names_itself_in_responses() -> None:
    """The response hook adds one X-Acme field."""
    stamp_filter = stamp.build({"value": "acme"}, environment())
    context, _ = make_request()
    response = ResponseHead(200)
    run_response_hook(stamp_filter, context, response)
    assert response.headers.get_all(b"X-Acme") == [b"acme"]


def test_stamp_reports_every_bad_option() -> None:
    """An unknown option and a missing one are both reported, by key."""
    with pytest.raises(OptionError) as raised:
        stamp.build({"colour": "red"}, environment())
    assert [key for key, _ in raised.value.problems] == ["colour", "value"]


def test_assume_up_reports_up() -> None:
    """The health check answers up at once, without touching the network."""
    check = assume_up.build({}, environment(MemoryReactorClock()))
    result = resolve(check.check(FakeServer(port=8001), 2.0))
    assert result.up


def test_first_picks_the_first_candidate() -> None:
    """The strategy always answers the first candidate it is offered."""
    strategy = first.build({}, environment())
    servers = [FakeServer(port=8001), FakeServer(port=8002)]
    context, _ = make_request()
    assert strategy.pick(servers, context, 0.0) is servers[0]
