"""
The two origins nginx cannot play, run on the load core:

    python -m edgebench.servers sink PORT     # HTTP: reads each whole body, answers 200
    python -m edgebench.servers ws-echo PORT  # WebSocket: sends every message back

The sink reads the body before it answers, so an upload through a proxy is
timed to its last byte (nginx's ``return`` would answer first and discard).
"""

from __future__ import annotations

import asyncio
import socket
import socketserver
import sys

SINK_ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
)
MAX_HEAD = 64 * 1024


class UploadSink(socketserver.BaseRequestHandler):
    """Keep-alive HTTP/1.1 with Content-Length bodies: read each, answer ``ok``."""

    request: socket.socket

    def handle(self) -> None:
        """Serve requests on one connection until the client closes it."""
        buffer = bytearray(1024 * 1024)
        pending = b""
        while True:
            while b"\r\n\r\n" not in pending:
                chunk = self.request.recv(65536)
                if not chunk or len(pending) > MAX_HEAD:
                    return
                pending += chunk
            head, _, pending = pending.partition(b"\r\n\r\n")
            length = self._content_length(head)
            # Bytes past this body already read are the next request's.
            remaining = length - len(pending)
            pending = pending[length:]
            view = memoryview(buffer)
            while remaining > 0:
                received = self.request.recv_into(view[: min(remaining, len(buffer))])
                if not received:
                    return
                remaining -= received
            self.request.sendall(SINK_ANSWER)

    @staticmethod
    def _content_length(head: bytes) -> int:
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                return int(value.strip())
        return 0


class ThreadingSink(socketserver.ThreadingTCPServer):
    """One thread per connection; a backlog that takes a burst of clients."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


def serve_sink(port: int) -> None:
    """Serve the upload sink on 127.0.0.1:``port`` until killed."""
    with ThreadingSink(("127.0.0.1", port), UploadSink) as server:
        server.serve_forever()


async def serve_ws_echo(port: int) -> None:
    """Serve the WebSocket echo on 127.0.0.1:``port`` until killed."""
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.exceptions import ConnectionClosed

    async def echo(connection: ServerConnection) -> None:
        try:
            async for message in connection:
                await connection.send(message)
        except ConnectionClosed:
            # A client that goes at the end of a run is the normal end.
            pass

    async with serve(
        echo, "127.0.0.1", port, ping_interval=None, max_size=None, backlog=1024
    ) as server:
        await server.serve_forever()


def main(argv: list[str]) -> int:
    """Run the server named by ``argv[0]`` on port ``argv[1]``."""
    if len(argv) != 2 or argv[0] not in ("sink", "ws-echo"):
        print(__doc__, file=sys.stderr)
        return 2
    port = int(argv[1])
    if argv[0] == "sink":
        serve_sink(port)
    else:
        asyncio.run(serve_ws_echo(port))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
