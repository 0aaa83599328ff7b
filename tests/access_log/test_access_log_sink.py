"""Tests for edgeproxy.access_log.sink: the publisher of records and its file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edgeproxy.access_log.record import AccessRecord, SessionRecord
from edgeproxy.access_log.sink import AccessLog, AccessLogFile

WHEN = 1795435509.0


def record(status: int = 200) -> AccessRecord:
    """A record of a GET answered with ``status``."""
    return AccessRecord(
        client="192.0.2.7",
        peer="192.0.2.7",
        method=b"GET",
        target=b"/",
        version=b"1.1",
        status=status,
    )


def test_no_file_and_no_observer_means_disabled() -> None:
    """With nothing observing, listeners are told not to make records."""
    access_log = AccessLog()
    assert not access_log.enabled
    seen: list[Any] = []
    access_log.add_observer(seen.append)
    assert access_log.enabled
    access_log.log(record(), WHEN)
    assert seen[0]["record"].status == 200
    assert seen[0]["log_time"] == WHEN
    assert seen[0]["log_namespace"] == "edgeproxy.access"


def test_file_gets_one_line_per_record(tmp_path: Path) -> None:
    """Each record is appended to the file as one line, at once."""
    path = tmp_path / "access.log"
    path.write_bytes(b"earlier line\n")
    access_log = AccessLog()
    access_log.use_file(str(path))
    assert access_log.enabled
    access_log.log(record(200), WHEN)
    access_log.log(record(404), WHEN)
    lines = path.read_bytes().splitlines()
    assert lines[0] == b"earlier line"
    assert [line.split(b'" ')[1][:3] for line in lines[1:]] == [b"200", b"404"]
    access_log.close()
    assert not access_log.enabled


def test_use_file_again_opens_a_rotated_file_anew(tmp_path: Path) -> None:
    """After logrotate moves the file, using the path again writes a new file."""
    path = tmp_path / "access.log"
    access_log = AccessLog()
    access_log.use_file(str(path))
    access_log.log(record(200), WHEN)
    path.rename(tmp_path / "access.log.1")
    access_log.use_file(str(path))
    access_log.log(record(201), WHEN)
    access_log.close()
    assert b'" 200 ' in (tmp_path / "access.log.1").read_bytes()
    assert b'" 201 ' in path.read_bytes()
    assert b'" 201 ' not in (tmp_path / "access.log.1").read_bytes()


def test_json_format(tmp_path: Path) -> None:
    """access_log_format = json writes JSON lines."""
    path = tmp_path / "access.json"
    access_log = AccessLog()
    access_log.use_file(str(path), "json")
    access_log.log(record(503), WHEN)
    access_log.close()
    assert path.read_bytes().startswith(b'{"time":')


def test_a_file_that_cannot_be_opened_changes_nothing(tmp_path: Path) -> None:
    """Opening fails with OSError; the file in use stays in use."""
    path = tmp_path / "access.log"
    access_log = AccessLog()
    access_log.use_file(str(path))
    with pytest.raises(OSError):
        access_log.use_file(str(tmp_path / "missing" / "access.log"))
    access_log.log(record(), WHEN)
    access_log.close()
    assert path.read_bytes().count(b"\n") == 1


def test_events_without_a_record_are_ignored(tmp_path: Path) -> None:
    """The file observer writes records only, whatever else is published."""
    path = tmp_path / "access.log"
    observer = AccessLogFile(str(path))
    observer({"log_time": WHEN, "log_format": "something else"})
    observer.close()
    assert path.read_bytes() == b""


def test_tcp_sessions_go_to_the_same_file(tmp_path: Path) -> None:
    """A TCP connection's record is written in the file's format too."""
    path = tmp_path / "access.log"
    access_log = AccessLog()
    access_log.use_file(str(path))
    session = SessionRecord(
        client="192.0.2.7",
        client_port=40000,
        listener="db",
        upstream=None,
        bytes_in=0,
        bytes_out=0,
        duration=0.0,
        end="refused: denied by allow/deny",
    )
    access_log.log(session, WHEN)
    access_log.close()
    assert path.read_bytes().endswith(
        b' db - 0.000 0 0 end="refused: denied by allow/deny"\n'
    )
