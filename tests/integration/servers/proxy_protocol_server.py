"""
A TCP server for integration tests that expects a PROXY header, on 127.0.0.1.

    python proxy_protocol_server.py PORT

The header (version 1 or 2) is read by Twisted's own parser
(:func:`twisted.protocols.haproxy.proxyEndpoint`), not by edgeproxy's, so a
test checks what edgeproxy sends against an independent reading of the
specification.  A connection without a valid header is closed by that parser.

With the first bytes that follow the header the server writes one JSON line
saying what the header carried::

    {"source": ["TCP", "127.0.0.1", 40312], "destination": ["TCP", ...]}

then every byte it receives comes back, the first bytes included.  The test
ends the process by its PID.
"""

from __future__ import annotations

import json
import sys

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.haproxy import proxyEndpoint


def describe(address: IAddress) -> list[object]:
    """``[type, host, port]`` of an IP address the header gave; else its text."""
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if host is None or port is None:
        return [repr(address)]
    return [getattr(address, "type", "?"), host, port]


class ReportingEcho(Protocol):
    """Reports the PROXY header's addresses before echoing the first bytes."""

    reported = False

    def dataReceived(self, data: bytes) -> None:
        """Write the report once, then echo ``data``."""
        assert self.transport is not None
        if not self.reported:
            self.reported = True
            # The wrapper answers getPeer/getHost from the parsed header.
            report = {
                "source": describe(self.transport.getPeer()),
                "destination": describe(self.transport.getHost()),
            }
            self.transport.write(json.dumps(report).encode() + b"\n")
        self.transport.write(data)


def main(reactor: object, port: str) -> Deferred[None]:
    """Listen on ``port`` until the process is ended."""
    endpoint = proxyEndpoint(
        serverFromString(reactor, f"tcp:{int(port)}:interface=127.0.0.1")
    )
    endpoint.listen(Factory.forProtocol(ReportingEcho))
    return Deferred()


if __name__ == "__main__":
    from twisted.internet.task import react

    react(main, sys.argv[1:])
