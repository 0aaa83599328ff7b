"""
A minimal HTTP origin for the rate-limit integration tests, on 127.0.0.1.

    python rate_origin.py PORT

Answers every request with ``200 ok``; keep-alive as twisted.web does it.  The
test ends the process by its PID.
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.web.resource import Resource
from twisted.web.server import Request, Site


class Everything(Resource):
    """``ok`` for every path."""

    isLeaf = True

    def render(self, request: Request) -> bytes:
        """Answer 200 with a tiny body."""
        request.setHeader(b"Content-Type", b"text/plain")
        return b"ok\n"


def main(reactor: Any, port: str) -> Deferred[None]:
    """Listen on 127.0.0.1:PORT until killed."""
    endpoint = serverFromString(reactor, f"tcp:{port}:interface=127.0.0.1")
    endpoint.listen(Site(Everything()))
    return Deferred()


if __name__ == "__main__":
    task.react(main, sys.argv[1:])
