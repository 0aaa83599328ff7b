"""
Fakes for testing edgeproxy plugins without a network or a real reactor.

A filter test::

    from edgeproxy.testing import environment, make_request, run_request_hook

    stamp = my_factory.build({"header": "X-Stamp"}, environment())
    context, request = make_request(b"GET", b"/", [(b"Host", b"a.example")])
    assert run_request_hook(stamp, context, request) is None
    assert request.headers.get(b"X-Stamp") == b"yes"

A strategy test picks among :class:`FakeServer` objects; a health-check test
uses :func:`environment` with a ``MemoryReactorClock`` and fires what it
connects by hand.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from zope.interface import implementer

from edgeproxy.core.context import RequestContext
from edgeproxy.core.message import (
    HeaderPair,
    Headers,
    LocalResponse,
    RequestHead,
    ResponseHead,
)
from edgeproxy.interfaces import IFilter, IUpstreamServer
from edgeproxy.plugin_environment import PluginEnvironment

T = TypeVar("T")


def environment(
    reactor: Any | None = None, base_dir: Path | str = "."
) -> PluginEnvironment:
    """A plugin environment on a ``MemoryReactorClock`` (or ``reactor``)."""
    return PluginEnvironment(
        reactor if reactor is not None else MemoryReactorClock(), Path(base_dir)
    )


def make_request(
    method: bytes = b"GET",
    target: bytes = b"/",
    headers: Iterable[HeaderPair] = (),
    client_host: str = "127.0.0.1",
    route: str | None = "test",
) -> tuple[RequestContext, RequestHead]:
    """A request head and its context, as a filter chain receives them."""
    request = RequestHead(method, target, Headers(headers))
    return RequestContext(client_host, 40000, request, route), request


def resolve(result: T | Deferred[T]) -> T:
    """
    The value of a hook's result, which may be a ``Deferred`` that has fired.

    :raises AssertionError: when the ``Deferred`` has not fired yet.
    :raises Exception: the hook's own failure, re-raised.
    """
    if not isinstance(result, Deferred):
        return result
    outcome: list[Any] = []
    result.addBoth(outcome.append)
    if not outcome:
        raise AssertionError("the hook's Deferred has not fired")
    if isinstance(outcome[0], Failure):
        outcome[0].raiseException()
    return outcome[0]  # type: ignore[no-any-return]


def run_request_hook(
    filter: IFilter, context: RequestContext, request: RequestHead
) -> LocalResponse | None:
    """Run ``filter.on_request``; return its local answer or ``None``."""
    return resolve(filter.on_request(context, request))


def run_response_hook(
    filter: IFilter, context: RequestContext, response: ResponseHead
) -> None:
    """Run ``filter.on_response`` to completion."""
    resolve(filter.on_response(context, response))


@implementer(IUpstreamServer)
class FakeServer:
    """An upstream server as strategies and health checks see it."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        weight: int = 1,
        active: int = 0,
        tls: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.weight = weight
        self.active = active
        self.tls = tls
        self.server_name = host
        self.key = f"{host}:{port}"

    def __repr__(self) -> str:
        return f"FakeServer({self.key!r})"
