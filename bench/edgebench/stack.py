"""
Everything a benchmark runs against: the origins on the load core and the
targets (the direct origin, nginx, HAProxy, edgeproxy) on the proxy core, with
their configurations filled in from the templates in ``bench/configs``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from edgebench.machine import CpuPlan
from edgebench.processes import ProcessGroup, Started, bench_environment, free_ports

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
REPOSITORY = Path(__file__).resolve().parents[2]
SMALL_BODY = ("edgeproxy benchmark, 128 byte body. " * 4)[:127] + "\n"
FILE_SIZES = {"/64k": 64 * 1024, "/1m": 1024 * 1024}


def which(name: str) -> str | None:
    """The path of program ``name`` (also in the sbin directories)."""
    found = shutil.which(name)
    if found:
        return found
    for directory in ("/usr/sbin", "/sbin", "/usr/local/sbin"):
        candidate = Path(directory) / name
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return None


@dataclass
class Target:
    """Where one target takes each kind of load, and whose CPU is its cost."""

    name: str
    http_port: int
    upload_port: int
    websocket_port: int
    tcp_stream_port: int | None
    """None: no TCP listener (nginx here)."""
    tcp_http_port: int | None
    pids: list[int] = field(default_factory=list)


@dataclass
class Origins:
    """The servers behind every target, and their ports."""

    ports: dict[str, int]
    pids: list[int]

    def direct(self) -> Target:
        """The origins reached without a proxy."""
        return Target(
            "direct",
            http_port=self.ports["ORIGIN_PORT"],
            upload_port=self.ports["SINK_PORT"],
            websocket_port=self.ports["WS_PORT"],
            tcp_stream_port=self.ports["IPERF_PORT"],
            tcp_http_port=self.ports["ORIGIN_PORT"],
        )


def fill(template: str, values: dict[str, str | int], out_dir: Path, name: str) -> Path:
    """Write ``bench/configs/<template>`` with every ``{{NAME}}`` replaced."""
    text = (CONFIGS / template).read_text()
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", str(value))
    if "{{" in text:
        raise RuntimeError(f"{template}: a placeholder was not filled in")
    path = out_dir / name
    path.write_text(text)
    return path


def prepare_shared_dir(shared_dir: Path) -> dict[str, bytes]:
    """Write the origin's files; return the body of every path it serves."""
    (shared_dir / "www").mkdir(parents=True, exist_ok=True)
    (shared_dir / "tmp").mkdir(exist_ok=True)
    noise = os.urandom(max(FILE_SIZES.values()))
    bodies = {"/small": SMALL_BODY.encode()}
    for path, size in FILE_SIZES.items():
        (shared_dir / "www" / path.lstrip("/")).write_bytes(noise[:size])
        bodies[path] = noise[:size]
    return bodies


class Stack:
    """Starts origins and targets; ``processes.stop_all()`` ends them."""

    def __init__(
        self,
        run_dir: Path,
        plan: CpuPlan,
        processes: ProcessGroup,
        edge_python: str,
        file_limit: int,
        max_connections: int,
        start_timeout: float = 30.0,
    ) -> None:
        self.run_dir = run_dir
        self.plan = plan
        self.processes = processes
        self.edge_python = edge_python
        self.file_limit = file_limit
        self.max_connections = max_connections
        self.start_timeout = start_timeout
        self.origins: Origins | None = None
        self.bodies: dict[str, bytes] = {}
        # nginx's workers run as another user when started by root: the files
        # they read and their temporary directories go where that user may
        # go, whatever the permissions of the results directory.
        self.shared_dir = Path(tempfile.mkdtemp(prefix="edgebench-"))
        self.shared_dir.chmod(0o755)

    def remove_shared_dir(self) -> None:
        """Delete the origin's files (once nothing runs)."""
        shutil.rmtree(self.shared_dir, ignore_errors=True)

    def _values(self, extra: dict[str, int]) -> dict[str, str | int]:
        assert self.origins is not None
        return {
            **self.origins.ports,
            **extra,
            "RUN_DIR": str(self.run_dir),
            "SHARED_DIR": str(self.shared_dir),
            "FILE_LIMIT": self.file_limit,
            "MAX_CONNECTIONS": self.max_connections,
            "SMALL_BODY": SMALL_BODY.replace("\n", "\\n"),
        }

    def _start(
        self,
        name: str,
        argv: list[str],
        ports: list[int],
        cpu: int,
        env: dict[str, str] | None = None,
    ) -> Started:
        started = self.processes.start(name, argv, cpu, env=env)
        self.processes.wait_for_ports(started, ports, self.start_timeout)
        return started

    def start_origins(self, websocket: bool) -> Origins:
        """nginx (two ports), iperf3 server, upload sink, WebSocket echo: load core."""
        self.bodies = prepare_shared_dir(self.shared_dir)
        names = ["ORIGIN_PORT", "ORIGIN_PORT_2", "IPERF_PORT", "SINK_PORT", "WS_PORT"]
        ports = dict(zip(names, free_ports(len(names)), strict=True))
        self.origins = Origins(ports, [])
        nginx, iperf3 = which("nginx"), which("iperf3")
        if nginx is None or iperf3 is None:
            raise RuntimeError("nginx or iperf3 is missing: run bench/setup")
        config = fill(
            "nginx-origin.conf", self._values({}), self.run_dir, "origin.conf"
        )
        load = self.plan.load
        origin = self._start(
            "origin-nginx",
            [nginx, "-e", str(self.run_dir / "origin.stderr"), "-c", str(config)],
            [ports["ORIGIN_PORT"], ports["ORIGIN_PORT_2"]],
            load,
        )
        iperf = self._start(
            "origin-iperf3",
            [iperf3, "-s", "-B", "127.0.0.1", "-p", str(ports["IPERF_PORT"])],
            [ports["IPERF_PORT"]],
            load,
        )
        server = [sys.executable, "-m", "edgebench.servers"]
        env = bench_environment()
        sink = self._start(
            "origin-sink", [*server, "sink", str(ports["SINK_PORT"])],
            [ports["SINK_PORT"]], load, env=env,
        )  # fmt: skip
        self.origins.pids = [origin.pid, iperf.pid, sink.pid]
        if websocket:
            echo = self._start(
                "origin-ws-echo", [*server, "ws-echo", str(ports["WS_PORT"])],
                [ports["WS_PORT"]], load, env=env,
            )  # fmt: skip
            self.origins.pids.append(echo.pid)
        return self.origins

    def start_target(self, name: str, instance: str = "main") -> Target:
        """Start proxy ``name`` (nginx, haproxy, edgeproxy) on the proxy core."""
        keys = ["HTTP_PORT", "UPLOAD_PORT", "TCP_STREAM_PORT", "TCP_HTTP_PORT"]
        ports = dict(zip(keys, free_ports(len(keys)), strict=True))
        values = self._values(ports)
        values["INSTANCE"] = instance
        label = f"{name}-{instance}"
        cpu = self.plan.proxy
        if name == "nginx":
            ports["UPLOAD_PORT"] = ports["HTTP_PORT"]
            config = fill("nginx-proxy.conf", values, self.run_dir, f"{label}.conf")
            argv = [_need("nginx"), "-e", str(self.run_dir / f"{label}.stderr")]
            started = self._start(
                label, [*argv, "-c", str(config)], [ports["HTTP_PORT"]], cpu
            )
        elif name == "haproxy":
            ports["UPLOAD_PORT"] = ports["HTTP_PORT"]
            config = fill("haproxy.cfg", values, self.run_dir, f"{label}.cfg")
            listening = [ports["HTTP_PORT"], ports["TCP_STREAM_PORT"]]
            started = self._start(
                label, [_need("haproxy"), "-db", "-f", str(config)], listening, cpu
            )
        elif name == "edgeproxy":
            config = fill("edgeproxy.ini", values, self.run_dir, f"{label}.ini")
            argv = twistd_argv(self.edge_python)
            argv += ["-n", "--pidfile=", f"--logfile={self.run_dir / label}.twistd.log"]
            argv += ["edgeproxy", "-c", str(config)]
            started = self._start(
                label, argv, list(ports.values()), cpu, env=edge_environment()
            )
        else:
            raise ValueError(f"unknown target {name!r}")
        tcp = name != "nginx"
        return Target(
            name,
            http_port=ports["HTTP_PORT"],
            upload_port=ports["UPLOAD_PORT"],
            websocket_port=ports["HTTP_PORT"],
            tcp_stream_port=ports["TCP_STREAM_PORT"] if tcp else None,
            tcp_http_port=ports["TCP_HTTP_PORT"] if tcp else None,
            pids=[started.pid],
        )


def _need(program: str) -> str:
    path = which(program)
    if path is None:
        raise RuntimeError(f"{program} is missing: run bench/setup")
    return path


def twistd_argv(python: str) -> list[str]:
    """How to run twistd with interpreter ``python``."""
    script = Path(python).parent / "twistd"
    if script.exists():
        return [str(script)]
    return [python, "-c", "from twisted.scripts.twistd import run; run()"]


def edge_environment() -> dict[str, str]:
    """The environment of edgeproxy: this checkout first on its path."""
    path = os.environ.get("PYTHONPATH", "")
    return dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPOSITORY), path]))
    )
