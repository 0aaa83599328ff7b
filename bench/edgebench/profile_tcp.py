"""
What the TCP listener costs edgeproxy per megabyte relayed and per connection.

    PYTHONPATH=.:bench python -m edgebench.profile_tcp                 # both, CPU
    PYTHONPATH=.:bench python -m edgebench.profile_tcp --mode stream   # one of them
    PYTHONPATH=.:bench python -m edgebench.profile_tcp --top 30        # + hot spots
    PYTHONPATH=.:bench python -m edgebench.profile_tcp --callgrind     # + instructions

Each run starts a proxy process: edgeproxy's ``TCPListenerFactory`` (all
default settings, as in the benchmark: idle timeout on, no PROXY protocol, no
access log) on a real reactor and loopback sockets, in front of a pool of one
server.  The proxy process starts a load process, which is the origin and the
client, so that only the proxy's work is counted:

- ``stream``: one connection that sends ``--megabytes`` MiB through the proxy
  to a sink that only reads (what one iperf3 stream does); the figure is CPU
  microseconds per MiB relayed;
- ``connrate``: ``--connections`` short connections, ``--concurrency`` at a
  time, each one HTTP request with ``Connection: close`` answered by a tiny
  origin that then closes (what wrk -c50 does through the TCP listener); the
  figure is CPU microseconds per connection.

The proxy's CPU (``getrusage``: user, and system for the sockets) is taken
from the start of its reactor to the load's end, and each figure is the
median of ``--repeat`` runs; on a shared machine compare medians, not rates.
With ``--top``, one more run is profiled (cProfile, CPU time) for the hot
spots and Python calls per unit.  With ``--callgrind``, the proxy's user-space
instructions are counted by valgrind (the load process runs outside it), as
the difference between a run of ``N`` units and one of ``2N``: steady from
run to run, so small gains show.
"""

from __future__ import annotations

import argparse
import cProfile
import re
import resource
import statistics
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from typing import Any

from edgebench.profile_request import callgrind_per_unit, hot_spots
from edgeproxy.config.loader import parse_config
from edgeproxy.registry import discover
from edgeproxy.snapshot import SnapshotHolder, build_snapshot
from edgeproxy.tcp import TCPListenerFactory, TCPListenerSettings
from edgeproxy.testing import environment

CONFIG = """
[listener:tcp]
protocol = tcp
endpoint = tcp:0
upstream = origin

[upstream:origin]
servers = 127.0.0.1:{port}
max_fails = 0
"""
"""The benchmark's TCP listener and pool (bench/configs/edgeproxy.ini)."""

MODES = ("stream", "connrate")
UNITS = {"stream": "MiB", "connrate": "connection"}
MIB = 1024 * 1024

LOAD_SCRIPT = textwrap.dedent(
    """
    import asyncio, os, socket, sys, threading

    MIB = 1024 * 1024

    def stream(megabytes):
        # Blocking sockets in threads: the cheapest client and sink in Python.
        listener = socket.create_server(("127.0.0.1", 0))
        print(listener.getsockname()[1], flush=True)
        proxy_port = int(sys.stdin.readline())
        received = [0]
        def sink():
            connection, _ = listener.accept()
            buffer = bytearray(MIB)
            while True:
                size = connection.recv_into(buffer)
                if not size:
                    break
                received[0] += size
            connection.close()
        reader = threading.Thread(target=sink)
        reader.start()
        source = socket.create_connection(("127.0.0.1", proxy_port))
        chunk = b"x" * (128 * 1024)  # iperf3's default write
        for _ in range(megabytes * 8):
            source.sendall(chunk)
        source.shutdown(socket.SHUT_WR)
        reader.join()
        source.close()
        assert received[0] == megabytes * MIB, received[0]
        print("done", received[0], flush=True)

    async def connrate(count, concurrency):
        response = (
            b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\nConnection: close\\r\\n"
            b"\\r\\nok"
        )
        async def origin(reader, writer):
            try:
                await reader.readuntil(b"\\r\\n\\r\\n")
                writer.write(response)
            finally:
                writer.close()
        server = await asyncio.start_server(
            origin, "127.0.0.1", 0, backlog=4096
        )
        print(server.sockets[0].getsockname()[1], flush=True)
        proxy_port = int(sys.stdin.readline())
        request = (
            b"GET / HTTP/1.1\\r\\nHost: 127.0.0.1:%d\\r\\nConnection: close\\r\\n\\r\\n"
            % proxy_port
        )
        left = [count]
        done = [0]
        async def client():
            while left[0] > 0:
                left[0] -= 1
                reader, writer = await asyncio.open_connection("127.0.0.1", proxy_port)
                writer.write(request)
                answer = await reader.read()
                assert answer == response, answer
                writer.close()
                done[0] += 1
        await asyncio.gather(*(client() for _ in range(concurrency)))
        print("done", done[0], flush=True)

    mode = sys.argv[1]
    if mode == "stream":
        stream(int(sys.argv[2]))
    else:
        asyncio.run(connrate(int(sys.argv[2]), int(sys.argv[3])))
    os._exit(0)
    """
)


@dataclass(frozen=True)
class Measurement:
    """The proxy process's CPU seconds over one run, and the units it carried."""

    user: float
    system: float
    units: int

    def per_unit(self) -> tuple[float, float]:
        """User and system CPU microseconds per unit (MiB or connection)."""
        return 1e6 * self.user / self.units, 1e6 * self.system / self.units


def run_proxy(
    mode: str, amount: int, concurrency: int, profile: cProfile.Profile | None
) -> Measurement:
    """
    Run the proxy in this process until its load process is done.

    :param amount: MiB to stream, or connections to make.
    :param profile: when given, the reactor runs under it.
    """
    from twisted.internet import reactor as global_reactor

    reactor: Any = global_reactor
    load = subprocess.Popen(
        [sys.executable, "-c", LOAD_SCRIPT, mode, str(amount), str(concurrency)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert load.stdin is not None and load.stdout is not None
    origin_port = int(load.stdout.readline())
    snapshot = build_snapshot(
        parse_config(CONFIG.format(port=origin_port)),
        discover(),
        environment(reactor),
    )
    factory = TCPListenerFactory(
        SnapshotHolder(snapshot), "tcp", TCPListenerSettings(), reactor
    )
    listening = reactor.listenTCP(0, factory, backlog=4096, interface="127.0.0.1")
    marks: list[tuple[float, float]] = []
    finished: list[int] = []

    def load_done(line: str) -> None:
        marks.append(_cpu_times())
        finished.append(int(line.split()[1]))
        reactor.stop()

    def wait_for_load() -> None:
        assert load.stdout is not None
        reactor.callInThread(
            lambda: reactor.callFromThread(load_done, load.stdout.readline())
        )

    reactor.callWhenRunning(wait_for_load)
    load.stdin.write(f"{listening.getHost().port}\n")
    load.stdin.flush()
    marks.append(_cpu_times())
    if profile is not None:
        profile.enable()
    reactor.run(installSignalHandlers=False)
    if profile is not None:
        profile.disable()
    if load.wait(timeout=60) != 0:
        raise RuntimeError(f"the load process exited with {load.returncode}")
    (user_0, system_0), (user_1, system_1) = marks
    units = finished[0] // MIB if mode == "stream" else finished[0]
    return Measurement(user_1 - user_0, system_1 - system_0, units)


def _cpu_times() -> tuple[float, float]:
    """This process's user and system CPU seconds (its threads included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def measure(
    mode: str, amount: int, concurrency: int, top: int = 0
) -> tuple[Measurement, list[str]]:
    """
    One run in a fresh proxy process (a reactor runs once per process).

    :param top: when more than 0, the run is profiled, and the lines returned
        give the Python calls per unit and the ``top`` hot spots.
    """
    done = subprocess.run(
        [
            *_command(),
            *("--only-run", mode, "--amount", str(amount)),
            *("--concurrency", str(concurrency), "--top", str(top)),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    found = re.search(r"measured (\S+) (\S+) (\d+)\n", done.stdout)
    if found is None:
        raise RuntimeError(f"no measurement in:\n{done.stdout}{done.stderr}")
    run = Measurement(float(found[1]), float(found[2]), int(found[3]))
    return run, done.stdout[found.end() :].splitlines()


def instructions(mode: str, amount: int, concurrency: int) -> float:
    """Proxy instructions per unit: callgrind on ``amount`` and ``2 * amount``."""

    def command(run: int) -> list[str]:
        return [
            *_command(),
            "--only-run",
            mode,
            "--amount",
            str(run),
            "--concurrency",
            str(concurrency),
        ]

    return callgrind_per_unit(command, amount, timeout=600)


def _command() -> list[str]:
    return [sys.executable, "-m", "edgebench.profile_tcp"]


def report(mode: str, options: argparse.Namespace) -> list[str]:
    """The figures of one mode, as lines of text."""
    amount = options.megabytes if mode == "stream" else options.connections
    unit = UNITS[mode]
    runs = [
        measure(mode, amount, options.concurrency)[0] for _ in range(options.repeat)
    ]
    users = [run.per_unit()[0] for run in runs]
    systems = [run.per_unit()[1] for run in runs]
    totals = [user + system for user, system in zip(users, systems, strict=True)]
    lines = [
        f"{mode}: {statistics.median(totals):.1f} us CPU/{unit} "
        f"({statistics.median(users):.1f} user, {statistics.median(systems):.1f} "
        f"system; median of {len(runs)}: "
        + ", ".join(f"{total:.1f}" for total in totals)
        + ")"
    ]
    if options.callgrind:
        small = max(amount // 8, 1)
        per_unit = instructions(mode, small, options.concurrency)
        lines.append(f"{mode}: {per_unit:,.0f} instructions/{unit} (callgrind)")
    if options.top:
        lines.extend(measure(mode, amount, options.concurrency, options.top)[1])
    return lines


def main(argv: list[str] | None = None) -> int:
    """Measure and print the per-MiB and per-connection figures."""
    parser = argparse.ArgumentParser(
        prog="python -m edgebench.profile_tcp", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--mode", choices=[*MODES, "both"], default="both")
    parser.add_argument("--megabytes", type=int, default=512, help="MiB streamed")
    parser.add_argument("--connections", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=50, help="for connrate")
    parser.add_argument("--repeat", type=int, default=3, help="runs (median kept)")
    parser.add_argument("--top", type=int, default=0, help="show the N hot spots")
    parser.add_argument(
        "--callgrind", action="store_true", help="also count instructions (slow)"
    )
    parser.add_argument("--only-run", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--amount", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.only_run is not None:
        # CPU time, not wall time: waiting in epoll costs nothing.
        profile = cProfile.Profile(time.process_time) if options.top else None
        mode = options.only_run
        run = run_proxy(mode, options.amount, options.concurrency, profile)
        print(f"measured {run.user} {run.system} {run.units}")
        if profile is not None:
            calls, _, hot = hot_spots(profile, run.units, options.top)
            print(f"{mode}: {calls:.1f} python calls/{UNITS[mode]} (profiled run)")
            print("\n".join(hot))
        return 0
    for mode in MODES if options.mode == "both" else (options.mode,):
        for line in report(mode, options):
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
