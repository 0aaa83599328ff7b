"""
The long-running processes of a benchmark: started pinned to one core, each in
its own session, and stopped by the process group of the PID started here (so
nginx's workers go with their master, and nothing else is touched).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"


def log(message: str) -> None:
    """Progress on stderr (stdout carries the results)."""
    print(f"[edgebench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr)


def pinned(cpu: int, argv: Sequence[str]) -> list[str]:
    """``argv`` run on core ``cpu`` only."""
    return ["taskset", "-c", str(cpu), *argv]


def bench_environment() -> dict[str, str]:
    """The environment of Python processes that import ``edgebench``."""
    bench = str(Path(__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH", "")
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [bench, path])))


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that nothing listens on now."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind((HOST, 0))
        return [int(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def listening_ports() -> set[int]:
    """The TCP ports something listens on, from /proc/net/tcp and tcp6.

    Read rather than probed: a probe connection is a client to the server
    behind a TCP proxy, and iperf3's server takes one that sends nothing as a
    broken test.
    """
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as rows:
                next(rows)
                for row in rows:
                    fields = row.split()
                    if fields[3] == "0A":  # TCP_LISTEN
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except OSError:
            continue
    return ports


@dataclass
class Started:
    """One process started here: its name, the process and its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    cpu: int

    @property
    def pid(self) -> int:
        """The PID started (the root of its process tree)."""
        return self.process.pid

    def log_tail(self, lines: int = 20) -> str:
        """The end of the process's output."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class ProcessGroup:
    """Every process a benchmark starts; ``stop_all`` ends each one by its PID."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[Started] = []

    def start(
        self,
        name: str,
        argv: Sequence[str],
        cpu: int,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Started:
        """Start ``argv`` pinned to ``cpu``, output to ``<log_dir>/<name>.log``."""
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "ab") as output:
            process = subprocess.Popen(
                pinned(cpu, argv),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
            )
        started = Started(name, process, log_path, cpu)
        self.started.append(started)
        log(f"started {name} (pid {process.pid}, cpu{cpu}): {shlex.join(argv)}")
        return started

    def wait_for_ports(
        self, started: Started, ports: Sequence[int], timeout: float = 30.0
    ) -> None:
        """Wait until ``started`` accepts connections on every port, or raise."""
        deadline = time.perf_counter() + timeout
        for port in ports:
            while port not in listening_ports():
                if started.process.poll() is not None:
                    raise RuntimeError(
                        f"{started.name} exited with {started.process.returncode}:\n"
                        f"{started.log_tail()}"
                    )
                if time.perf_counter() > deadline:
                    raise RuntimeError(
                        f"{started.name} did not listen on {port} within "
                        f"{timeout:.0f} s:\n{started.log_tail()}"
                    )
                time.sleep(0.05)

    def stop(self, started: Started, timeout: float = 10.0) -> None:
        """End ``started`` and its process group: SIGTERM, then SIGKILL."""
        process = started.process
        if process.poll() is None:
            self._signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"{started.name} ignored SIGTERM for {timeout:.0f} s: SIGKILL")
        # Children may outlive their leader; the group is still ours to end.
        self._signal_group(process.pid, signal.SIGKILL)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            log(f"warning: {started.name} (pid {process.pid}) did not exit")
        if started in self.started:
            self.started.remove(started)

    def stop_all(self) -> None:
        """End every process still running, the last started first."""
        for started in reversed(list(self.started)):
            self.stop(started)

    @staticmethod
    def _signal_group(pid: int, signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signum)
