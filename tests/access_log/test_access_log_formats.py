"""Tests for edgeproxy.access_log.formats: the combined and JSON lines."""

from __future__ import annotations

import calendar
import json

import pytest

from edgeproxy.access_log.formats import (
    combined,
    common_log_time,
    escape,
    json_line,
    session_json_line,
    session_line,
)
from edgeproxy.access_log.record import AccessRecord, SessionRecord

WHEN = calendar.timegm((2026, 11, 23, 10, 5, 9)) + 0.25


def record(**changes: object) -> AccessRecord:
    """A record of a proxied GET, with ``changes``."""
    fields: dict[str, object] = {
        "client": "203.0.113.7",
        "peer": "10.0.0.9",
        "method": b"GET",
        "target": b"/v1/users?page=2",
        "version": b"1.1",
        "status": 200,
        "body_bytes": 512,
        "duration": 0.0042,
        "host": b"api.example.com",
        "referer": b"https://app.example/",
        "user_agent": b"curl/8.5.0",
        "route": "api",
        "upstream": "10.0.0.1:9001",
        "consumer": "alice",
        "request_id": "0f3c",
        "reason": None,
    }
    fields.update(changes)
    return AccessRecord(**fields)  # type: ignore[arg-type]


def test_combined_line_is_nginx_combined_then_edgeproxy_fields() -> None:
    """The line reads as nginx's combined format, then rt, route, upstream, rid."""
    assert combined(record(), WHEN) == (
        b'203.0.113.7 - alice [23/Nov/2026:10:05:09 +0000] "GET /v1/users?page=2 '
        b'HTTP/1.1" 200 512 "https://app.example/" "curl/8.5.0" rt=0.004 '
        b"route=api upstream=10.0.0.1:9001 rid=0f3c reason=-\n"
    )


def test_combined_line_of_a_local_answer_quotes_its_reason() -> None:
    """A local answer's reason is quoted; absent fields are dashes."""
    line = combined(
        record(
            status=401,
            consumer=None,
            upstream=None,
            request_id=None,
            referer=None,
            reason="filter jwt_users: token expired",
        ),
        WHEN,
    )
    assert line.startswith(b"203.0.113.7 - - [")
    assert b'" 401 512 "-" "curl/8.5.0"' in line
    assert line.endswith(
        b' upstream=- rid=- reason="filter jwt_users: token expired"\n'
    )


def test_combined_line_without_a_request_line() -> None:
    """A request refused before its head was read logs "-" as its request."""
    line = combined(
        AccessRecord(
            client="192.0.2.1",
            peer="192.0.2.1",
            method=b"",
            target=b"",
            version=b"",
            status=400,
            reason="malformed request line",
        ),
        WHEN,
    )
    assert b'] "-" 400 0 "-" "-" rt=0.000 route=-' in line


@pytest.mark.parametrize(
    ("raw", "written"),
    [
        (b'say "hi"', b"say \\x22hi\\x22"),
        (b"a\\b", b"a\\x5Cb"),
        (b"x\r\n1.2.3.4 - - [forged]", b"x\\x0D\\x0A1.2.3.4 - - [forged]"),
        ("é".encode(), b"\\xC3\\xA9"),
        (b"\x00\x7f", b"\\x00\\x7F"),
        (b"", b"-"),
        (None, b"-"),
    ],
)
def test_client_bytes_are_escaped(raw: bytes | None, written: bytes) -> None:
    """Quotes, backslashes, control and non-ASCII bytes cannot forge a line."""
    assert escape(raw) == written


def test_a_forged_user_agent_stays_on_one_line() -> None:
    """A User-Agent with CR LF and quotes leaves one line with its fields in place."""
    forged = b'x"\r\n127.0.0.1 - - "GET / HTTP/1.1" 200'
    line = combined(record(user_agent=forged), WHEN)
    assert line.count(b"\n") == 1
    assert line.count(b'"') == 6


def test_common_log_time_is_utc() -> None:
    """Times are written in UTC with a +0000 offset."""
    assert common_log_time(WHEN) == "23/Nov/2026:10:05:09 +0000"


def test_json_line_holds_every_fact() -> None:
    """The JSON format is one object per line with every field, absent ones null."""
    line = json_line(record(reason="filter x: no", referer=None), WHEN)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {
        "time": "2026-11-23T10:05:09.250Z",
        "client": "203.0.113.7",
        "peer": "10.0.0.9",
        "method": "GET",
        "target": "/v1/users?page=2",
        "version": "1.1",
        "status": 200,
        "body_bytes": 512,
        "duration": 0.0042,
        "host": "api.example.com",
        "referer": None,
        "user_agent": "curl/8.5.0",
        "route": "api",
        "upstream": "10.0.0.1:9001",
        "consumer": "alice",
        "request_id": "0f3c",
        "reason": "filter x: no",
    }


def test_json_line_escapes_control_bytes() -> None:
    """Control and non-ASCII bytes are JSON escapes: the line stays one line."""
    line = json_line(record(target=b"/a\nb\xff"), WHEN)
    assert line.count(b"\n") == 1
    assert json.loads(line)["target"] == "/a\nb\xff"


SESSION = SessionRecord(
    client="203.0.113.7",
    client_port=51234,
    listener="db",
    upstream="10.0.0.5:5432",
    bytes_in=1830,
    bytes_out=96211,
    duration=12.0421,
    end="closed",
)


def test_tcp_line_reads_like_haproxy_tcplog() -> None:
    """A TCP connection's line: client:port, time, listener, server, seconds, bytes."""
    assert session_line(SESSION, WHEN) == (
        b"203.0.113.7:51234 [23/Nov/2026:10:05:09 +0000] db 10.0.0.5:5432 "
        b'12.042 1830 96211 end="closed"\n'
    )


def test_tcp_json_line_says_its_kind() -> None:
    """The JSON line of a TCP connection has kind "tcp" and its facts."""
    document = json.loads(session_json_line(SESSION, WHEN))
    assert document["kind"] == "tcp"
    assert (document["upstream"], document["bytes_in"], document["end"]) == (
        "10.0.0.5:5432",
        1830,
        "closed",
    )
