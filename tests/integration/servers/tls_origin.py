"""
An HTTPS origin for integration tests: twisted.web on an ``ssl:`` endpoint.

    python tls_origin.py PORT CERTIFICATE KEY NAME

It listens on 127.0.0.1:PORT with the certificate (a PEM chain) and key given
and answers every request with JSON: NAME, the server name the client sent in
its TLS handshake (SNI, or null), the method, the path and the header fields.
The test ends the process by its PID.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import quoteStringArgument, serverFromString
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.web import resource, server


class EchoResource(resource.Resource):
    """Every path: what the request and its TLS handshake said, as JSON."""

    isLeaf = True

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def render(self, request: server.Request) -> bytes:
        """The JSON answer."""
        transport = request.channel.transport
        assert isinstance(transport, TLSMemoryBIOProtocol)
        sni = transport.getHandle().get_servername()
        headers = [
            [name.decode("latin-1"), value.decode("latin-1")]
            for name, values in request.requestHeaders.getAllRawHeaders()
            for value in values
        ]
        body = {
            "server": self.name,
            "sni": None if sni is None else sni.decode("ascii"),
            "method": request.method.decode("latin-1"),
            "path": request.uri.decode("latin-1"),
            "headers": headers,
        }
        request.setHeader(b"Content-Type", b"application/json")
        return json.dumps(body).encode()


def main(
    reactor: Any, port: str, certificate: str, key: str, name: str
) -> Deferred[None]:
    """Listen on 127.0.0.1:PORT over TLS and serve until killed."""
    description = (
        f"ssl:{port}:interface=127.0.0.1"
        f":privateKey={quoteStringArgument(key)}"
        f":certKey={quoteStringArgument(certificate)}"
    )
    site = server.Site(EchoResource(name))
    site.noisy = False
    serverFromString(reactor, description).listen(site)
    return Deferred()


if __name__ == "__main__":
    task.react(main, sys.argv[1:])
