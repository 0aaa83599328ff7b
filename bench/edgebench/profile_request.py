"""
What one proxied request costs edgeproxy, measured in-process and repeatably.

    PYTHONPATH=.:bench python -m edgebench.profile_request              # calls, CPU
    PYTHONPATH=.:bench python -m edgebench.profile_request --top 40     # + hot spots
    PYTHONPATH=.:bench python -m edgebench.profile_request --callgrind  # + instructions
    PYTHONPATH=.:bench python -m edgebench.profile_request --loopback   # real sockets

The in-memory mode drives requests through the real data path: an
``HTTPServerProtocol`` with the ``ProxyRequestHandler`` over a snapshot built
from an INI text like the benchmark's (the default header policy, a
round-robin pool of two servers), the ``ConnectionPool`` and its
``HTTPClientProtocol`` connections.  The sockets are replaced by transports
that only keep what is written, the origin by a driver that answers each
request written upstream with nginx's bytes for ``/small``, and the client by
the same driver, which checks every response.  Timers are the real reactor's
(a ``SelectReactor`` that is never run; ``runUntilCurrent`` once per request
does the timer bookkeeping a running reactor would do).

It reports, per request of a keep-alive connection in its steady state:

- Python function calls (cProfile), in total and without the harness's own;
- objects left to the cyclic garbage collector (reference cycles);
- CPU microseconds (``time.process_time``, best of ``--repeat`` runs): noisy
  on a shared machine, use it for large differences only;
- with ``--callgrind``, machine instructions (valgrind's callgrind, the
  difference between a run of ``N`` and one of ``2N`` requests): the same on
  every run, so small gains show.

``--loopback`` runs the proxy on a real reactor and real loopback sockets
instead, with an origin and a keep-alive load generator (asyncio, 50
connections) in a child process, and reports the proxy process's CPU per
request, user and system: what Twisted's transports and the kernel add to the
in-memory figure.  With ``--top``, the reactor runs under cProfile (CPU time);
with ``--callgrind``, the proxy's user-space instructions are counted (the
load generator runs outside valgrind): steadier than the CPU figure.

It measures one build; to compare two, run it from each checkout
(``PYTHONPATH=/other/checkout:/other/checkout/bench``), alternating, and
compare calls and instructions first.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import re
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.selectreactor import SelectReactor

from edgeproxy.config.loader import parse_config
from edgeproxy.http.connection_pool import ConnectionPool
from edgeproxy.http.proxy import ProxyRequestHandler
from edgeproxy.http.server import HTTPServerProtocol
from edgeproxy.registry import discover
from edgeproxy.snapshot import SnapshotHolder, build_snapshot
from edgeproxy.testing import environment

CONFIG = """
[listener:web]
protocol = http
endpoint = tcp:8080
routes = ws, site

[route:site]
upstream = origin

[route:ws]
path_prefix = /ws
upstream = origin
websocket = yes

[upstream:origin]
servers = 127.0.0.1:{port_1}, 127.0.0.1:{port_2}
balance = round_robin
"""
"""The benchmark's routes and pool (bench/configs/edgeproxy.ini), all defaults."""

BODY_SIZE = 128
WARM_UP = 200


def request_bytes(port: int) -> bytes:
    """What wrk sends for ``/small``."""
    return b"GET /small HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port


def response_bytes(body_size: int) -> bytes:
    """What nginx answers for ``/small`` (``return 200``, server_tokens off)."""
    return (
        b"HTTP/1.1 200 OK\r\nServer: nginx\r\n"
        b"Date: Mon, 01 Jan 2024 00:00:00 GMT\r\nContent-Type: text/plain\r\n"
        b"Content-Length: %d\r\nConnection: keep-alive\r\n\r\n" % body_size
    ) + b"x" * body_size


# --- the in-memory data path ----------------------------------------------------


class MemoryTransport:
    """A connected stream transport that keeps what is written, and no more."""

    def __init__(self, host: IPv4Address, peer: IPv4Address) -> None:
        self.written: list[bytes] = []
        self.host = host
        self.peer = peer
        self.disconnecting = False
        self.producer: Any = None

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def writeSequence(self, data: list[bytes]) -> None:
        self.written.extend(data)

    def take(self) -> bytes:
        data = b"".join(self.written)
        self.written.clear()
        return data

    def loseConnection(self) -> None:
        self.disconnecting = True

    def abortConnection(self) -> None:
        self.disconnecting = True

    def getPeer(self) -> IPv4Address:
        return self.peer

    def getHost(self) -> IPv4Address:
        return self.host

    def pauseProducing(self) -> None:
        """Reading is never paused here: the driver feeds one request at a time."""

    def resumeProducing(self) -> None:
        """See :meth:`pauseProducing`."""

    def stopProducing(self) -> None:
        self.disconnecting = True

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None


class _Connector:
    """What ``connectTCP`` returns; the harness never cancels a connect."""

    def __init__(self, host: str, port: int) -> None:
        self.address = IPv4Address("TCP", host, port)

    def stopConnecting(self) -> None:
        raise RuntimeError("the harness never cancels a connect")

    def disconnect(self) -> None:
        raise RuntimeError("the harness never cancels a connect")

    def getDestination(self) -> IPv4Address:
        return self.address


class InMemoryReactor(SelectReactor):
    """The real reactor's timers; connects that the driver completes."""

    def __init__(self) -> None:
        super().__init__()
        self.connects: list[tuple[str, int, Any]] = []

    def connectTCP(
        self,
        host: str,
        port: int,
        factory: Any,
        timeout: float = 30,
        bindAddress: Any = None,  # noqa: N803 (Twisted's name)
    ) -> _Connector:
        self.connects.append((host, port, factory))
        return _Connector(host, port)


class InMemoryProxy:
    """The proxy with one keep-alive client connection and an answering origin."""

    def __init__(self, body_size: int = BODY_SIZE, port: int = 8080) -> None:
        self.reactor = reactor = InMemoryReactor()
        snapshot = build_snapshot(
            parse_config(CONFIG.format(port_1=9001, port_2=9002)),
            discover(),
            environment(reactor),
        )
        handler = ProxyRequestHandler(
            SnapshotHolder(snapshot), "web", b"http", reactor, ConnectionPool(reactor)
        )
        self.request = request_bytes(port)
        self.response = response_bytes(body_size)
        self.upstreams: list[tuple[Any, MemoryTransport]] = []
        self.client = MemoryTransport(
            IPv4Address("TCP", "127.0.0.1", port),
            IPv4Address("TCP", "127.0.0.1", 40000),
        )
        self.server = HTTPServerProtocol(reactor, handler)
        self.server.makeConnection(self.client)  # type: ignore[arg-type]
        self.body = self.response[-body_size:] if body_size else b"\r\n\r\n"
        self.served = 0

    def exchange(self) -> None:
        """One request from the client through the proxy, answered by the origin."""
        self.server.dataReceived(self.request)
        reactor = self.reactor
        while reactor.connects:
            self._accept(*reactor.connects.pop(0))
        answered = False
        for protocol, transport in self.upstreams:
            if transport.written:
                sent = transport.take()
                if not sent.endswith(b"\r\n\r\n"):
                    raise AssertionError(f"odd request upstream: {sent!r}")
                protocol.dataReceived(self.response)
                answered = True
        received = self.client.take()
        if not (answered and received.startswith(b"HTTP/1.1 200 ")):
            raise AssertionError(f"bad response: {received[:200]!r}")
        if not received.endswith(self.body):
            raise AssertionError(f"incomplete response: {received!r}")
        reactor.runUntilCurrent()
        self.served += 1

    def _accept(self, host: str, port: int, factory: Any) -> None:
        transport = MemoryTransport(
            IPv4Address("TCP", "127.0.0.1", 50000 + len(self.upstreams)),
            IPv4Address("TCP", host, port),
        )
        protocol = factory.buildProtocol(transport.peer)
        protocol.makeConnection(transport)
        self.upstreams.append((protocol, transport))


def run_exchanges(proxy: InMemoryProxy, count: int) -> None:
    """``count`` requests, one after the other."""
    exchange = proxy.exchange
    for _ in range(count):
        exchange()


def ready_proxy(body_size: int) -> InMemoryProxy:
    """A proxy past its warm-up: upstream connections open, caches filled."""
    proxy = InMemoryProxy(body_size)
    run_exchanges(proxy, WARM_UP)
    return proxy


# --- measurements ---------------------------------------------------------------

HARNESS = str(Path(__file__).resolve())


def profile_calls(
    body_size: int, count: int, top: int
) -> tuple[float, float, list[str]]:
    """Calls per request (all, and without the harness), and the hot spots."""
    proxy = ready_proxy(body_size)
    profile = cProfile.Profile()
    profile.enable()
    run_exchanges(proxy, count)
    profile.disable()
    return hot_spots(profile, count, top)


def hot_spots(
    profile: cProfile.Profile, count: int, top: int
) -> tuple[float, float, list[str]]:
    """Calls per request (all, without the harness) and the ``top`` functions."""
    stats = pstats.Stats(profile)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = own = 0
    rows = []
    for (filename, line, name), (_, calls, tottime, cumtime, _) in raw.items():
        total += calls
        if filename == HARNESS:
            continue
        own += calls
        rows.append((tottime, calls, cumtime, _where(filename, line, name)))
    lines = []
    if top:
        rows.sort(reverse=True)
        lines.append(f"{'tottime %':>9} {'calls/req':>9} {'cum us/req':>10}  function")
        spent = sum(row[0] for row in rows) or 1.0
        for tottime, calls, cumtime, where in rows[:top]:
            lines.append(
                f"{100 * tottime / spent:9.1f} {calls / count:9.2f} "
                f"{1e6 * cumtime / count:10.1f}  {where}"
            )
    return total / count, own / count, lines


def _where(filename: str, line: int, name: str) -> str:
    for marker in ("/edgeproxy/", "/twisted/"):
        if marker in filename:
            filename = marker[1:] + filename.rsplit(marker, 1)[1]
            break
    else:
        if filename != "~":
            filename = Path(filename).name
    return f"{filename}:{line}({name})" if filename != "~" else name


def garbage_per_request(body_size: int, count: int) -> float:
    """
    Objects per request that only the cyclic collector frees (reference cycles).

    Each one costs a collector pass sooner or later, on the whole heap when
    it has survived to the oldest generation.
    """
    proxy = ready_proxy(body_size)
    gc.collect()
    gc.disable()
    try:
        run_exchanges(proxy, count)
        return gc.collect() / count
    finally:
        gc.enable()


def cpu_per_request(body_size: int, count: int, repeat: int) -> float:
    """The best of ``repeat`` runs, in microseconds of CPU per request."""
    best = float("inf")
    for _ in range(repeat):
        proxy = ready_proxy(body_size)
        gc.collect()
        started = time.process_time()
        run_exchanges(proxy, count)
        best = min(best, time.process_time() - started)
    return 1e6 * best / count


def callgrind_per_unit(
    command: Callable[[int], list[str]], amount: int, timeout: float | None = None
) -> float:
    """
    Instructions per unit of work: callgrind on ``command(amount)`` and
    ``command(2 * amount)``, the difference divided by ``amount`` (start-up
    and shutdown cancel out).
    """
    totals = []
    for run in (amount, 2 * amount):
        with tempfile.TemporaryDirectory() as directory:
            done = subprocess.run(
                [
                    "valgrind",
                    "--tool=callgrind",
                    f"--callgrind-out-file={directory}/out",
                    *command(run),
                ],
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONHASHSEED": "0"},
                check=True,
                timeout=timeout,
            )
        found = re.search(r"Collected : (\d+)", done.stderr)
        if found is None:
            raise RuntimeError(f"no callgrind total in:\n{done.stderr}")
        totals.append(int(found.group(1)))
    return (totals[1] - totals[0]) / amount


def instructions(body_size: int, count: int, mode: list[str]) -> float:
    """
    Instructions per request: callgrind on ``count`` and ``2 * count`` requests.

    ``mode`` is ``[]`` for the in-memory path, ``["--loopback"]`` for real
    sockets (the proxy's user-space instructions only: the load generator
    runs outside valgrind, and the kernel's work is not counted).
    """

    def command(run: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "edgebench.profile_request",
            "--only-run",
            str(run),
            "--body-size",
            str(body_size),
            *mode,
        ]

    return callgrind_per_unit(command, count)


# --- loopback: real sockets, real reactor ---------------------------------------

LOAD_SCRIPT = textwrap.dedent(
    """
    import asyncio, os, sys

    async def main(count, connections, body_size, ports_out):
        response = RESPONSE
        async def origin(reader, writer):
            buffer = b""
            while True:
                data = await reader.read(65536)
                if not data:
                    writer.close()
                    return
                buffer += data
                while b"\\r\\n\\r\\n" in buffer:
                    _, _, buffer = buffer.partition(b"\\r\\n\\r\\n")
                    writer.write(response)
        servers = [await asyncio.start_server(origin, "127.0.0.1", 0) for _ in "ab"]
        ports = [s.sockets[0].getsockname()[1] for s in servers]
        print(*ports, flush=True)
        proxy_port = int(sys.stdin.readline())
        left = [count]
        length = len(response)
        async def client():
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy_port)
            request = REQUEST % proxy_port
            while left[0] > 0:
                left[0] -= 1
                writer.write(request)
                head = await reader.readuntil(b"\\r\\n\\r\\n")
                size = int(head.lower().split(b"content-length: ")[1].split(b"\\r")[0])
                await reader.readexactly(size)
            writer.close()
        await asyncio.gather(*(client() for _ in range(connections)))
        print("done", flush=True)
        os._exit(0)  # the origin's handlers are still reading: no clean-up

    asyncio.run(main(*map(int, sys.argv[1:4]), None))
    """
)


def loopback_cpu(
    body_size: int, count: int, connections: int, profile: cProfile.Profile | None
) -> tuple[float, float]:
    """
    The proxy process's CPU microseconds per request over loopback sockets.

    :return: user and system (the kernel's work for the sockets) microseconds.

    With ``profile``, the reactor runs under it (and the figure means little).
    """
    from twisted.internet import reactor as global_reactor

    from edgeproxy.http.server import HTTPServerFactory

    script = LOAD_SCRIPT.replace("RESPONSE", repr(response_bytes(body_size))).replace(
        "REQUEST", repr(b"GET /small HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n")
    )
    load = subprocess.Popen(
        [sys.executable, "-c", script, str(count), str(connections), str(body_size)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    reactor: Any = global_reactor
    assert load.stdin is not None and load.stdout is not None
    port_1, port_2 = map(int, load.stdout.readline().split())
    snapshot = build_snapshot(
        parse_config(CONFIG.format(port_1=port_1, port_2=port_2)),
        discover(),
        environment(reactor),
    )
    handler = ProxyRequestHandler(
        SnapshotHolder(snapshot), "web", b"http", reactor, ConnectionPool(reactor)
    )
    listening = reactor.listenTCP(
        0, HTTPServerFactory(reactor, handler), interface="127.0.0.1"
    )
    load.stdin.write(f"{listening.getHost().port}\n")
    load.stdin.flush()
    marks: list[tuple[float, float]] = []

    def finished() -> None:
        marks.append(_cpu_times())
        reactor.stop()

    def wait_for_load() -> None:
        reactor.callInThread(
            _await_line, load, lambda: reactor.callFromThread(finished)
        )

    reactor.callWhenRunning(wait_for_load)
    marks.append(_cpu_times())
    if profile is not None:
        profile.enable()
    reactor.run(installSignalHandlers=False)
    if profile is not None:
        profile.disable()
    load.wait()
    (user_0, system_0), (user_1, system_1) = marks
    return 1e6 * (user_1 - user_0) / count, 1e6 * (system_1 - system_0) / count


def _cpu_times() -> tuple[float, float]:
    """This process's user and system CPU seconds (its threads included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def _await_line(load: subprocess.Popen[str], then: Callable[[], None]) -> None:
    assert load.stdout is not None
    load.stdout.readline()
    then()


# --- the command ----------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Measure and print the per-request figures."""
    parser = argparse.ArgumentParser(
        prog="python -m edgebench.profile_request", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--requests", type=int, default=5000, help="measured requests")
    parser.add_argument("--body-size", type=int, default=BODY_SIZE)
    parser.add_argument("--repeat", type=int, default=5, help="CPU runs (best kept)")
    parser.add_argument("--top", type=int, default=0, help="show the N hot spots")
    parser.add_argument(
        "--callgrind", action="store_true", help="also count instructions (slow)"
    )
    parser.add_argument(
        "--loopback", action="store_true", help="real sockets, load in a child"
    )
    parser.add_argument("--connections", type=int, default=50, help="for --loopback")
    parser.add_argument("--only-run", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.only_run is not None:
        if options.loopback:
            loopback_cpu(options.body_size, options.only_run, options.connections, None)
        else:
            run_exchanges(ready_proxy(options.body_size), options.only_run)
        return 0
    if options.loopback:
        # CPU time, not wall time: waiting in epoll costs nothing.
        profile = cProfile.Profile(time.process_time) if options.top else None
        user, system = loopback_cpu(
            options.body_size, options.requests, options.connections, profile
        )
        print(
            f"loopback, {options.connections} connections: {user + system:.1f} us "
            f"CPU/request ({user:.1f} user, {system:.1f} system)"
        )
        if options.callgrind:
            mode = ["--loopback", "--connections", str(options.connections)]
            per_request = instructions(
                options.body_size, max(options.requests // 5, 1000), mode
            )
            print(f"instructions/request:      {per_request:,.0f} (callgrind)")
        if profile is not None:
            calls, _, hot = hot_spots(profile, options.requests, options.top)
            print(
                f"python calls/request:      {calls:.1f} (profiled: CPU means little)"
            )
            print("\n".join(hot))
        return 0
    count = options.requests
    calls, own, hot = profile_calls(options.body_size, count, options.top)
    print(f"python calls/request:      {calls:.1f} ({own:.1f} without the harness)")
    garbage = garbage_per_request(options.body_size, count)
    print(f"cyclic garbage/request:    {garbage:.1f} objects")
    cpu = cpu_per_request(options.body_size, count, options.repeat)
    print(f"CPU us/request:            {cpu:.1f} (best of {options.repeat})")
    if options.callgrind:
        per_request = instructions(options.body_size, max(count // 5, 200), [])
        print(f"instructions/request:      {per_request:,.0f} (callgrind)")
    for line in hot:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
