"""Tests for edgeproxy.filters.headers: the built-in header-editing filter."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet.testing import MemoryReactorClock
from zope.interface.verify import verifyObject

from edgeproxy.core.context import RequestContext
from edgeproxy.core.message import Headers, RequestHead, ResponseHead
from edgeproxy.errors import OptionError
from edgeproxy.filters.headers import headers_factory
from edgeproxy.interfaces import IFilter, IFilterFactory
from edgeproxy.plugin_environment import PluginEnvironment

ENVIRONMENT = PluginEnvironment(MemoryReactorClock(), Path("."))


def test_provides_interfaces() -> None:
    """The factory and its filter provide their interfaces."""
    assert verifyObject(IFilterFactory, headers_factory)
    assert verifyObject(IFilter, headers_factory.build({}, ENVIRONMENT))


def test_request_edits_in_order() -> None:
    """Removals, then sets (replacing repeats), then adds; other fields untouched."""
    edits = headers_factory.build(
        {
            "request.remove": "X-Debug, Cookie2",
            "request.set": "X-Env: prod\nAccept: */*",
            "request.add": "Via: 1.1 test",
        },
        ENVIRONMENT,
    )
    request = RequestHead(
        b"GET",
        b"/",
        Headers(
            [
                (b"Accept", b"a"),
                (b"x-debug", b"1"),
                (b"Host", b"h"),
                (b"Accept", b"b"),
                (b"Via", b"1.0 front"),
            ]
        ),
    )
    assert edits.on_request(RequestContext("127.0.0.1"), request) is None
    assert request.headers.pairs == [
        (b"Host", b"h"),
        (b"Via", b"1.0 front"),
        (b"X-Env", b"prod"),
        (b"Accept", b"*/*"),
        (b"Via", b"1.1 test"),
    ]


def test_response_edits() -> None:
    """Response options edit the response head only."""
    edits = headers_factory.build(
        {"response.remove": "Server", "response.set": "X-Frame-Options: DENY"},
        ENVIRONMENT,
    )
    response = ResponseHead(200, b"OK", Headers([(b"Server", b"x")]))
    request = RequestHead(b"GET", b"/", Headers([(b"Server", b"kept")]))
    edits.on_request(RequestContext("127.0.0.1"), request)
    edits.on_response(RequestContext("127.0.0.1"), response)
    assert response.headers.pairs == [(b"X-Frame-Options", b"DENY")]
    assert request.headers.pairs == [(b"Server", b"kept")]


@pytest.mark.parametrize(
    ("options", "key", "fragment"),
    [
        ({"request.sett": "X: 1"}, "request.sett", "unknown option"),
        ({"body.set": "X: 1"}, "body.set", "unknown option"),
        ({"request.set": "no colon"}, "request.set", "is not 'Name: value'"),
        ({"request.set": "Bad Name: 1"}, "request.set", "is not a header name"),
        ({"response.remove": "ok, b@d"}, "response.remove", "is not a header name"),
    ],
)
def test_bad_options(options: dict[str, str], key: str, fragment: str) -> None:
    """Each bad option is reported by its key."""
    with pytest.raises(OptionError) as caught:
        headers_factory.build(options, ENVIRONMENT)
    [(found_key, message)] = caught.value.problems
    assert found_key == key
    assert fragment in message
