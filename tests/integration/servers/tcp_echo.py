"""
A tiny TCP echo server for integration tests, on 127.0.0.1.

    python tcp_echo.py PORT [BANNER]

Each connection first gets ``BANNER`` and a newline (when given), then every
byte it sends comes back.  When the client half-closes, the server sends the
rest and half-closes too, so a client reading to EOF knows it got everything.
One thread per connection; the test ends the process by its PID.
"""

from __future__ import annotations

import socket
import sys
import threading


def serve(connection: socket.socket, banner: bytes) -> None:
    """Echo one connection until its FIN, then send ours."""
    with connection:
        try:
            if banner:
                connection.sendall(banner + b"\n")
            while data := connection.recv(256 * 1024):
                connection.sendall(data)
            connection.shutdown(socket.SHUT_WR)
        except OSError:
            # A client that resets is the test's business, not the server's.
            return


def main(arguments: list[str]) -> None:
    """Listen on the port given and serve until killed."""
    port = int(arguments[0])
    banner = arguments[1].encode() if len(arguments) > 1 else b""
    listener = socket.create_server(("127.0.0.1", port), backlog=128)
    while True:
        connection, _ = listener.accept()
        threading.Thread(target=serve, args=(connection, banner), daemon=True).start()


if __name__ == "__main__":
    main(sys.argv[1:])
