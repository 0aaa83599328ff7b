"""
The load generators written here (wrk and iperf3 do the rest), run on the
load core; each prints one JSON line starting with ``EDGEBENCH``:

    python -m edgebench.clients ws PORT PATH CONNECTIONS SECONDS SIZE
    python -m edgebench.clients idle PORT PATH CONNECTIONS
    python -m edgebench.clients upload PORT PATH BYTES

``idle`` opens CONNECTIONS keep-alive connections, makes one GET on each,
prints ``EDGEBENCH {"open": N, ...}`` and holds them until a line arrives on
stdin; then it reports how many the server had closed meanwhile, and exits.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from typing import Any

from edgebench.machine import raise_file_limit

HOST = "127.0.0.1"
BATCH = 200
"""Connections opened at once by ``idle``: below any listen backlog in use."""
REQUEST_TIMEOUT = 15.0
"""Seconds one connection of ``idle`` may take to connect, and to be answered."""


def report(fields: dict[str, Any]) -> None:
    """Print the client's one result line."""
    print("EDGEBENCH " + json.dumps(fields), flush=True)


async def _ws_connection(
    port: int, path: str, payload: bytes, stop_at: float, counts: list[int]
) -> None:
    from websockets.asyncio.client import connect

    async with connect(
        f"ws://{HOST}:{port}{path}", max_size=None, ping_interval=None, compression=None
    ) as websocket:
        while time.perf_counter() < stop_at:
            await websocket.send(payload)
            await websocket.recv()
            counts[0] += 1


async def websocket_rate(
    port: int, path: str, connections: int, seconds: float, size: int
) -> dict[str, Any]:
    """Echo round trips per second over ``connections`` WebSocket connections."""
    counts = [0]
    started = time.perf_counter()
    tasks = [
        _ws_connection(port, path, b"x" * size, started + seconds, counts)
        for _ in range(connections)
    ]
    results = await asyncio.gather(*tasks, return_exceptions=True)
    elapsed = time.perf_counter() - started
    errors = [repr(result) for result in results if isinstance(result, BaseException)]
    return {
        "messages": counts[0],
        "seconds": elapsed,
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
    }


async def _one_request(port: int, request: bytes) -> tuple[Any, Any] | None:
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(HOST, port), REQUEST_TIMEOUT
        )
    except (OSError, TimeoutError):
        return None
    try:
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await asyncio.wait_for(reader.readexactly(length), REQUEST_TIMEOUT)
    except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
        writer.close()
        return None
    if not head.startswith(b"HTTP/1.1 200"):
        writer.close()
        return None
    return reader, writer


async def idle_connections(port: int, path: str, connections: int) -> None:
    """Open ``connections`` idle keep-alive connections, report, hold, report again."""
    raise_file_limit(connections + 256)
    request = f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode()
    started = time.perf_counter()
    opened: list[tuple[Any, Any]] = []
    failed = 0
    for first in range(0, connections, BATCH):
        batch = min(BATCH, connections - first)
        results = await asyncio.gather(
            *(_one_request(port, request) for _ in range(batch))
        )
        opened.extend(result for result in results if result is not None)
        failed += sum(1 for result in results if result is None)
    report(
        {
            "open": len(opened),
            "failed": failed,
            "seconds": time.perf_counter() - started,
        }
    )
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    # Let the event loop notice connections the server closed while we held them.
    await asyncio.sleep(0.2)
    closed = sum(1 for reader, _ in opened if reader.at_eof())
    for _, writer in opened:
        writer.close()
    report({"closed_by_server": closed})


def upload(port: int, path: str, size: int) -> dict[str, Any]:
    """POST ``size`` bytes with Content-Length; time it to the answer."""
    chunk = b"u" * (1024 * 1024)
    started = time.perf_counter()
    with socket.create_connection((HOST, port)) as connection:
        connection.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
            f"Content-Type: application/octet-stream\r\n"
            f"Content-Length: {size}\r\n\r\n".encode()
        )
        remaining = size
        view = memoryview(chunk)
        while remaining > 0:
            step = min(remaining, len(chunk))
            connection.sendall(view[:step])
            remaining -= step
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = connection.recv(65536)
            if not data:
                break
            answer += data
    elapsed = time.perf_counter() - started
    status = answer.split(b"\r\n", 1)[0].decode("latin-1")
    return {"bytes": size, "seconds": elapsed, "status": status}


def main(argv: list[str]) -> int:
    """Run the client that ``argv[0]`` names."""
    command, arguments = (argv[0], argv[1:]) if argv else ("", [])
    if command == "ws" and len(arguments) == 5:
        port, path, connections, seconds, size = arguments
        report(
            asyncio.run(
                websocket_rate(
                    int(port), path, int(connections), float(seconds), int(size)
                )
            )
        )
    elif command == "idle" and len(arguments) == 3:
        asyncio.run(
            idle_connections(int(arguments[0]), arguments[1], int(arguments[2]))
        )
    elif command == "upload" and len(arguments) == 3:
        report(upload(int(arguments[0]), arguments[1], int(arguments[2])))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
