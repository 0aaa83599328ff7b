"""
Everything a benchmark runs against: the origins on the load core and the
targets (the direct origin, nginx, HAProxy, Varnish, edgeproxy plain and as a
gateway) on the proxy core, with their configurations filled in from the
templates in ``bench/configs``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from edgebench.gateway import Credentials, make_credentials, redis_argv
from edgebench.hits import HitMark
from edgebench.machine import CpuPlan
from edgebench.processes import ProcessGroup, Started, bench_environment, free_ports

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
REPOSITORY = Path(__file__).resolve().parents[2]
SMALL_BODY = ("edgeproxy benchmark, 128 byte body. " * 4)[:127] + "\n"
FILE_SIZES = {"/64k": 64 * 1024, "/1m": 1024 * 1024}
CACHED_COPIES = {"/cached/small": "/small", "/cached/64k": "/64k"}
"""Paths the origin lets caches keep, and the path with the same body."""
HIT_MARKS = {
    "nginx": HitMark("X-Cache-Status", "HIT"),
    "varnish": HitMark("X-Cache", "hit"),
    "edgeproxy": HitMark("Cache-Status", "edgeproxy; hit"),
}
"""How each cache says that it answered a hit (see bench/configs)."""
GATEWAY_STORES = {"edgeproxy-jwt": "memory", "edgeproxy-jwt-redis": "redis"}
"""The gateway targets and where their rate limiter counts."""


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
    hit_mark: HitMark | None = None
    """How its cache marks a hit; None: it has no cache."""
    token_required: bool = False
    """It refuses requests without the bench's JWT."""
    redis_port: int | None = None
    """The redis-server its rate limiter counts in."""


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
    for path, same in CACHED_COPIES.items():
        bodies[path] = bodies[same]
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
        self.credentials: Credentials | None = make_credentials()
        """The gateway's secret and token; None without PyJWT."""
        # nginx's workers run as another user when started by root: the files
        # they read and their temporary directories go where that user may
        # go, whatever the permissions of the results directory.
        self.shared_dir = Path(tempfile.mkdtemp(prefix="edgebench-"))
        self.shared_dir.chmod(0o755)

    @property
    def origin_port(self) -> int:
        """The first port of the origin (where its request count is read)."""
        assert self.origins is not None
        return self.origins.ports["ORIGIN_PORT"]

    def missing(self, name: str) -> str | None:
        """Why target ``name`` cannot run on this machine, or None when it can."""
        needs = {"varnish": "varnishd", "edgeproxy-jwt-redis": "redis-server"}
        program = needs.get(name)
        if program is not None and which(program) is None:
            return f"{program} is not installed (bench/setup installs it)"
        if name in GATEWAY_STORES and self.credentials is None:
            return "PyJWT is not installed: no token to send"
        return None

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
        """Start proxy ``name`` (one of ``scenarios.PROXIES``) on the proxy core."""
        if name == "varnish":
            return self._start_varnish(instance)
        if name in GATEWAY_STORES:
            return self._start_gateway(name, instance)
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
            started = self._start(
                label, self._edgeproxy_argv(config, label), list(ports.values()),
                cpu, env=edge_environment(),
            )  # fmt: skip
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
            hit_mark=HIT_MARKS.get(name),
        )

    def _edgeproxy_argv(self, config: Path, label: str) -> list[str]:
        """edgeproxy from this checkout in the foreground, logging to the run's logs."""
        argv = twistd_argv(self.edge_python)
        argv += ["-n", "--pidfile=", f"--logfile={self.run_dir / label}.twistd.log"]
        return [*argv, "edgeproxy", "-c", str(config)]

    def _start_varnish(self, instance: str) -> Target:
        """Varnish with the VCL of bench/configs, one thread pool, 64 MB of malloc."""
        (port,) = free_ports(1)
        label = f"varnish-{instance}"
        # varnishd's compiler and child run as an unprivileged user: the VCL
        # and the working directory go where that user may read and write.
        vcl = fill("varnish.vcl", self._values({}), self.shared_dir, f"{label}.vcl")
        shutil.copyfile(vcl, self.run_dir / vcl.name)
        argv = [_need("varnishd"), "-F", "-n", str(self.shared_dir / label)]
        argv += ["-a", f"127.0.0.1:{port}", "-f", str(vcl), "-T", "none"]
        argv += ["-s", "malloc,64m", "-p", "thread_pools=1"]
        started = self._start(label, argv, [port], self.plan.proxy)
        return Target(
            "varnish",
            http_port=port,
            upload_port=port,
            websocket_port=port,
            tcp_stream_port=None,
            tcp_http_port=None,
            pids=[started.pid],
            hit_mark=HIT_MARKS["varnish"],
        )

    def _start_gateway(self, name: str, instance: str) -> Target:
        """edgeproxy behind jwt + rate_limit; for Redis, its redis-server first."""
        if self.credentials is None:
            raise RuntimeError("PyJWT is not installed: no token to send")
        (port,) = free_ports(1)
        label = f"{name}-{instance}"
        store, redis_port = "memory", None
        if GATEWAY_STORES[name] == "redis":
            (redis_port,) = free_ports(1)
            argv = redis_argv(_need("redis-server"), redis_port, self.shared_dir)
            # Beside the origins: a service the proxy uses, not the proxy.
            self._start(f"redis-{instance}", argv, [redis_port], self.plan.load)
            store = f"redis://127.0.0.1:{redis_port}/0"
        values = self._values({"HTTP_PORT": port})
        values.update(JWT_SECRET=self.credentials.secret, RATE_STORE=store)
        config = fill("edgeproxy-gateway.ini", values, self.run_dir, f"{label}.ini")
        started = self._start(
            label, self._edgeproxy_argv(config, label), [port], self.plan.proxy,
            env=edge_environment(),
        )  # fmt: skip
        return Target(
            name,
            http_port=port,
            upload_port=port,
            websocket_port=port,
            tcp_stream_port=None,
            tcp_http_port=None,
            pids=[started.pid],
            token_required=True,
            redis_port=redis_port,
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
