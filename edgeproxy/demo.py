"""
Demo upstream servers, for a first run with nothing else set up.

``twistd -n edgeproxy -c conf/quickstart.ini --demo-upstreams`` also starts a
tiny web server on every loopback ``host:port`` that the configuration's
upstreams list, each answering who it is and what it was asked.  They are for
trying edgeproxy out, never for production.
"""

from __future__ import annotations

from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from edgeproxy.config.model import Config

_LOOPBACK: dict[str, type[TCP4ServerEndpoint] | type[TCP6ServerEndpoint]] = {
    "127.0.0.1": TCP4ServerEndpoint,
    "localhost": TCP4ServerEndpoint,
    "::1": TCP6ServerEndpoint,
}


class DemoPage(Resource):
    """Answers every request with the server's name and the request line."""

    isLeaf = True

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def render(self, request: Request) -> bytes:
        """Say who answered, and what was asked, as plain text."""
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        request.setHeader(b"X-Demo-Upstream", self.name.encode("ascii"))
        method = (request.method or b"").decode("latin-1")
        target = (request.uri or b"").decode("latin-1")
        forwarded = (request.getHeader(b"x-forwarded-for") or b"-").decode("latin-1")
        return (
            f"Hello from demo upstream {self.name}\n"
            f"You asked for: {method} {target}\n"
            f"X-Forwarded-For: {forwarded}\n"
        ).encode()


def demo_upstreams(config: Config, reactor: Any) -> MultiService:
    """A service running a demo server on each loopback upstream server address."""
    services = MultiService()
    seen = set()
    for upstream in config.upstreams.values():
        for server in upstream.servers:
            if server.tls or server.key in seen:
                continue
            endpoint_type = _LOOPBACK.get(server.host)
            if endpoint_type is None:
                continue
            seen.add(server.key)
            host = "127.0.0.1" if server.host == "localhost" else server.host
            site = Site(DemoPage(server.key))
            site.noisy = False
            child = StreamServerEndpointService(
                endpoint_type(reactor, server.port, interface=host), site
            )
            child._raiseSynchronously = True
            child.setName(f"demo:{server.key}")
            child.setServiceParent(services)
    return services
