"""
An origin for the cache's integration tests: each request says what to answer.

    python cache_origin.py PORT

Any path answers as its query parameters say:

- ``status=N``: the status (200);
- ``cc=VALUE``: ``Cache-Control: VALUE``;
- ``etag=TAG``: ``ETag: "TAG"``; a request whose ``If-None-Match`` names it
  gets a 304 (with the same ``Cache-Control`` and ``ETag``);
- ``vary=NAME``: ``Vary: NAME``; ``echo=NAME``: the request's field NAME is
  put in the body (after ``body``);
- ``h=NAME:VALUE`` (repeatable): one more response field;
- ``body=TEXT``: the body, where ``{n}`` becomes the number of requests the
  path has had so far (so a refetch shows);
- ``size=N``: instead, N bytes (``i % 256``), streamed with flow control;
- ``delay=SECONDS``: answer that much later.

``/count?path=PATH`` answers JSON ``{"requests": N, "conditional": C,
"methods": [...]}`` for PATH: what it received, conditional requests apart.
Every request is counted before it is answered, whatever its method.  The
test ends the process by its PID.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from typing import Any

from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

BLOCK = bytes(range(256)) * 256


class Pattern:
    """A pull producer writing ``size`` bytes of the pattern, a block at a time."""

    def __init__(self, request: Request, size: int) -> None:
        self.request = request
        self.left = size

    def resumeProducing(self) -> None:
        """Write the next block, or finish."""
        if self.left <= 0:
            return
        block = BLOCK[: min(len(BLOCK), self.left)]
        self.left -= len(block)
        self.request.write(block)
        if self.left <= 0:
            self.request.unregisterProducer()
            self.request.finish()

    def stopProducing(self) -> None:
        """The client went away."""
        self.left = 0


class Journal:
    """What each path received."""

    def __init__(self) -> None:
        self.methods: dict[bytes, list[str]] = defaultdict(list)
        self.conditional: dict[bytes, int] = defaultdict(int)


class Answer(Resource):
    """Every path: answer as the query says."""

    isLeaf = True

    def __init__(self, reactor: Any, journal: Journal) -> None:
        super().__init__()
        self.reactor = reactor
        self.journal = journal

    def render(self, request: Request) -> bytes | int:
        """Count the request, then answer it (now or after ``delay``)."""
        path = request.path
        args = request.args or {}
        if path == b"/count":
            wanted = args.get(b"path", [b""])[0]
            request.setHeader(b"Content-Type", b"application/json")
            return json.dumps(
                {
                    "requests": len(self.journal.methods[wanted]),
                    "conditional": self.journal.conditional[wanted],
                    "methods": self.journal.methods[wanted],
                }
            ).encode()
        method = request.method.decode("ascii")
        self.journal.methods[path].append(method)
        if request.getHeader(b"if-none-match") or request.getHeader(
            b"if-modified-since"
        ):
            self.journal.conditional[path] += 1
        count = len(self.journal.methods[path])
        delay = float(args.get(b"delay", [b"0"])[0])
        if delay:
            self.reactor.callLater(delay, self.answer, request, args, count)
            return NOT_DONE_YET
        return self.answer(request, args, count)

    def answer(
        self, request: Request, args: dict[bytes, list[bytes]], count: int
    ) -> bytes | int:
        """Write the answer the query describes."""
        first = {name: values[0] for name, values in args.items()}
        request.setResponseCode(int(first.get(b"status", b"200")))
        if b"cc" in first:
            request.setHeader(b"Cache-Control", first[b"cc"])
        if b"vary" in first:
            request.setHeader(b"Vary", first[b"vary"])
        for field in args.get(b"h", []):
            name, _, value = field.partition(b":")
            request.responseHeaders.addRawHeader(name.strip(), value.strip())
        etag = first.get(b"etag")
        if etag is not None:
            request.setHeader(b"ETag", b'"' + etag + b'"')
            if b'"' + etag + b'"' in (request.getHeader(b"if-none-match") or b""):
                request.setResponseCode(304)
                return self._done(request, b"")
        if b"size" in first:
            size = int(first[b"size"])
            request.setHeader(b"Content-Length", b"%d" % size)
            request.registerProducer(Pattern(request, size), False)
            return NOT_DONE_YET
        body = first.get(b"body", b"").replace(b"{n}", b"%d" % count)
        if b"echo" in first:
            body += request.getHeader(first[b"echo"]) or b"-"
        return self._done(request, body)

    @staticmethod
    def _done(request: Request, body: bytes) -> int:
        if not request.finished and not request._disconnected:
            request.setHeader(b"Content-Length", b"%d" % len(body))
            if body and request.method != b"HEAD":
                request.write(body)
            request.finish()
        return NOT_DONE_YET


def main(reactor: Any, port: str) -> Deferred[None]:
    """Serve on 127.0.0.1:PORT until killed."""
    site = Site(Answer(reactor, Journal()))
    site.displayTracebacks = False
    serverFromString(reactor, f"tcp:{port}:interface=127.0.0.1").listen(site)
    return Deferred()


if __name__ == "__main__":
    task.react(main, sys.argv[1:])
