"""
A JWK Set server for integration tests, on 127.0.0.1.

    python jwks_server.py PORT DOCUMENT LOG

Every ``GET`` (whatever its path) answers the current contents of the file
DOCUMENT as ``application/jwk-set+json``, read afresh for each request, so that
a test rotates keys by replacing that file.  Each request is appended to LOG as
one line (its method and path), so that a test can count the fetches.  The
test ends the process by its PID.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.web.resource import Resource
from twisted.web.server import Request, Site


class KeySetDocument(Resource):
    """Serves one file's current contents and records every request."""

    isLeaf = True

    def __init__(self, document: Path, log: Path) -> None:
        super().__init__()
        self.document = document
        self.log = log

    def render_GET(self, request: Request) -> bytes:
        """Answer the document as it is now; then record the request."""
        document = self.document.read_bytes()
        # Logged after the read: once a test sees the line, the answer is fixed.
        with self.log.open("a", encoding="utf-8") as log:
            log.write(f"GET {request.uri.decode('latin-1')}\n")
        request.setHeader(b"Content-Type", b"application/jwk-set+json")
        request.setHeader(b"Cache-Control", b"no-store")
        return document


def main(reactor: Any, port: str, document: str, log: str) -> Deferred[None]:
    """Listen on 127.0.0.1:PORT and serve until killed."""
    site = Site(KeySetDocument(Path(document), Path(log)))
    site.displayTracebacks = False
    endpoint = serverFromString(reactor, f"tcp:{port}:interface=127.0.0.1")
    endpoint.listen(site)
    return Deferred()


if __name__ == "__main__":
    task.react(main, sys.argv[1:])
