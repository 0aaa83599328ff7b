"""
Helpers for integration tests: real ``twistd edgeproxy`` processes on loopback.

Every process a test starts is ended by the test, by its PID, within bounded
time.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
THIRDPARTY = Path(__file__).resolve().parent / "thirdparty"

pytestmark = pytest.mark.integration


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/integration/ is an integration test."""
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.integration)


def twistd_command() -> list[str]:
    """The twistd of the Python running the tests."""
    script = Path(sys.executable).parent / "twistd"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


def environment(extra_path: Path | None = None) -> dict[str, str]:
    """The environment for a child process, with ``extra_path`` on its sys.path."""
    env = dict(os.environ)
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(extra_path), env.get("PYTHONPATH", "")])
        )
    return env


def run_twistd(
    *arguments: str, extra_path: Path | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``twistd ARGUMENTS`` to completion (at most 60 s)."""
    return subprocess.run(
        [*twistd_command(), *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment(extra_path),
        cwd=cwd,
        check=False,
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(
    port: int, process: subprocess.Popen[bytes], timeout: float = 20.0
) -> None:
    """Wait until 127.0.0.1:``port`` accepts connections, or fail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the process exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listened on port {port} within {timeout} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """End ``process`` (SIGTERM, then SIGKILL after 10 s), reap it, close its pipes."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    for pipe in (process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()


class EdgeproxyProcess:
    """A running ``twistd -n edgeproxy -c CONFIG`` and its log file."""

    def __init__(
        self,
        config: Path,
        wait_port: int,
        extra_path: Path | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.log = config.with_suffix(".log")
        self.process = subprocess.Popen(
            [
                *twistd_command(),
                "-n",
                "--pidfile=",
                f"--logfile={self.log}",
                "edgeproxy",
                "-c",
                str(config),
                *extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=environment(extra_path),
        )
        try:
            wait_for_port(wait_port, self.process)
        except AssertionError:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait(timeout=10)
            assert self.process.stderr is not None
            errors = self.process.stderr.read().decode()
            stop(self.process)
            raise AssertionError(
                f"edgeproxy did not start:\n{errors}\n{self.log_text()}"
            ) from None

    def log_text(self) -> str:
        """What edgeproxy logged so far."""
        return self.log.read_text() if self.log.exists() else ""

    def stop(self) -> None:
        """End the process."""
        stop(self.process)


@pytest.fixture
def start_edgeproxy(tmp_path: Path) -> Iterator[object]:
    """Start edgeproxy processes from config text; all are ended after the test."""
    started: list[EdgeproxyProcess] = []

    def start(
        text: str, wait_port: int, extra_path: Path | None = None
    ) -> EdgeproxyProcess:
        config = tmp_path / f"edgeproxy-{len(started)}.ini"
        config.write_text(text)
        process = EdgeproxyProcess(config, wait_port, extra_path)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
