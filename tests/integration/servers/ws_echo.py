"""
A WebSocket echo server for integration tests, on 127.0.0.1.

    python ws_echo.py PORT

Built on the ``websockets`` library (asyncio), so the frames edgeproxy relays
are checked by an independent implementation.  What it does, by path:

- any path: every message comes back as it came (text as text, binary as
  binary); pings are answered by the library.  A text message
  ``close:CODE:REASON`` makes the server close with that code and reason;
  ``drop`` makes it abort the TCP connection (no close frame).
- the subprotocol ``echo.v1`` is chosen when offered; ``permessage-deflate``
  is accepted when offered.
- ``.../headers``: the first message is the handshake request's header
  fields, as JSON ``[[name, value], ...]``; then it echoes.
- ``.../reject``: a ``403`` answer instead of the handshake.
- ``...?id=NAME``: the close code and reason this connection receives are
  kept under ``NAME``; a later connection to ``.../close-report?id=NAME``
  gets them as its first message, as JSON ``{"closed", "code", "reason"}``
  (waiting up to 10 s for that connection to end; ``closed`` is false if it
  did not; ``code`` and ``reason`` are null when no close frame came).
- a request without ``Upgrade`` (a proxy that dropped it): a ``200`` plain
  HTTP answer saying so, so the client can tell who answered.

The test ends the process by its PID.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

NO_UPGRADE_ANSWER = "plain HTTP: the request had no Upgrade header\n"
REJECT_ANSWER = "rejected by the upstream\n"
REPORT_TIMEOUT = 10.0
SUBPROTOCOL = Subprotocol("echo.v1")

closes: dict[str, asyncio.Future[tuple[int | None, str | None]]] = {}


def close_record(name: str) -> asyncio.Future[tuple[int | None, str | None]]:
    """The future that holds the close received by connection ``name``."""
    if name not in closes:
        closes[name] = asyncio.get_running_loop().create_future()
    return closes[name]


def choose_subprotocol(
    connection: ServerConnection, offered: Sequence[Subprotocol]
) -> Subprotocol | None:
    """``echo.v1`` when the client offers it, else none (never a refusal)."""
    return SUBPROTOCOL if SUBPROTOCOL in offered else None


def answer_plainly(connection: ServerConnection, request: Request) -> Response | None:
    """Answer ``/reject`` and non-upgrade requests without a handshake."""
    path = urlsplit(request.path).path
    if path.endswith("/reject"):
        return connection.respond(HTTPStatus.FORBIDDEN, REJECT_ANSWER)
    if "Upgrade" not in request.headers:
        return connection.respond(HTTPStatus.OK, NO_UPGRADE_ANSWER)
    return None


async def echo(connection: ServerConnection) -> None:
    """Serve one WebSocket connection as its path says."""
    assert connection.request is not None
    target = urlsplit(connection.request.path)
    name = parse_qs(target.query).get("id", [""])[0]
    if target.path.endswith("/close-report"):
        closed = True
        try:
            code, reason = await asyncio.wait_for(
                asyncio.shield(close_record(name)), REPORT_TIMEOUT
            )
        except TimeoutError:
            closed, code, reason = False, None, None
        report = {"closed": closed, "code": code, "reason": reason}
        await connection.send(json.dumps(report))
        return
    if target.path.endswith("/headers"):
        fields = list(connection.request.headers.raw_items())
        await connection.send(json.dumps(fields))
    try:
        async for message in connection:
            if isinstance(message, str) and message.startswith("close:"):
                _, wanted_code, wanted_reason = message.split(":", 2)
                await connection.close(int(wanted_code), wanted_reason)
                return
            if message == "drop":
                connection.transport.abort()
                return
            await connection.send(message)
    except ConnectionClosed:
        # Any close is the test's business; the record below says which.
        pass
    finally:
        if name:
            received = connection.protocol.close_rcvd
            record = close_record(name)
            if not record.done():
                record.set_result(
                    (received.code, received.reason)
                    if received is not None
                    else (None, None)
                )


async def main(port: int) -> None:
    """Serve on 127.0.0.1:``port`` until killed."""
    async with serve(
        echo,
        "127.0.0.1",
        port,
        process_request=answer_plainly,
        select_subprotocol=choose_subprotocol,
        max_size=None,
        # Pings from the server would count as traffic in idle-timeout tests.
        ping_interval=None,
        # Hundreds of connections arrive at once in the concurrency test.
        backlog=1024,
    ) as server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
