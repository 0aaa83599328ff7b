"""
The access log's line formats.

``combined`` is nginx's and Apache's combined format (so that the tools that
read those read it), with the consumer as the remote user, followed by
edgeproxy's own fields as ``key=value`` pairs (one line, folded here)::

    203.0.113.7 - alice [23/Nov/2026:10:00:00 +0000] "GET /v1/users HTTP/1.1"
    200 512 "-" "curl/8.5.0" rt=0.004 route=api upstream=10.0.0.1:9001
    rid=0f3c... reason=-

``json`` writes one JSON object per line with the same facts.  Times are UTC.

A TCP connection (a :class:`~edgeproxy.access_log.record.SessionRecord`) has a
line of its own shape in ``combined``, after HAProxy's ``tcplog``::

    203.0.113.7:51234 [23/Nov/2026:10:00:00 +0000] db 10.0.0.5:5432 12.042
    1830 96211 end="closed"

(client, time, listener, server, seconds, bytes from the client, bytes to the
client, how it ended) and ``"kind": "tcp"`` in ``json``.

Every byte a client chose (target, ``Referer``, ``User-Agent``...) is escaped
in ``combined``: ``"``, ``\\``, control characters and bytes outside ASCII as
``\\xHH``, so that no request can forge a line or a field.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping

from edgeproxy.access_log.record import AccessRecord, SessionRecord

LineFormat = Callable[[AccessRecord, float], bytes]
SessionFormat = Callable[[SessionRecord, float], bytes]

_UNSAFE = re.compile(rb"[^\x21\x23-\x5b\x5d-\x7e ]")
_MONTHS = (
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
)


def _escape_byte(match: re.Match[bytes]) -> bytes:
    return b"\\x%02X" % match.group()[0]


def escape(value: bytes | None) -> bytes:
    """``value`` made safe for a quoted field of a line; ``-`` when absent."""
    if not value:
        return b"-"
    return _UNSAFE.sub(_escape_byte, value)


def _text(value: str | None) -> bytes:
    return escape(value.encode("utf-8")) if value else b"-"


def common_log_time(when: float) -> str:
    """``when`` (seconds since the epoch) as ``23/Nov/2026:10:00:00 +0000``."""
    t = time.gmtime(when)
    month = _MONTHS[t.tm_mon - 1]
    return (
        f"{t.tm_mday:02d}/{month}/{t.tm_year}:"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"
    )


def combined(record: AccessRecord, when: float) -> bytes:
    """One ``combined`` line for ``record`` logged at ``when``, with its newline."""
    if record.method:
        request = b"%s %s HTTP/%s" % (
            escape(record.method),
            escape(record.target),
            escape(record.version),
        )
    else:
        request = b"-"
    reason = b'"%s"' % _text(record.reason) if record.reason else b"-"
    line = b'%s - %s [%s] "%s" %d %d "%s" "%s"' % (
        escape(record.client.encode("ascii", "replace")),
        _text(record.consumer),
        common_log_time(when).encode("ascii"),
        request,
        record.status,
        record.body_bytes,
        escape(record.referer),
        escape(record.user_agent),
    )
    return line + b" rt=%.3f route=%s upstream=%s rid=%s reason=%s\n" % (
        record.duration,
        _text(record.route),
        _text(record.upstream),
        _text(record.request_id),
        reason,
    )


def _decoded(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


def _iso_time(when: float) -> str:
    seconds = int(when)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{stamp}.{int((when - seconds) * 1000):03d}Z"


def _json(document: Mapping[str, object]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode("ascii") + b"\n"


def json_line(record: AccessRecord, when: float) -> bytes:
    """One JSON object for ``record`` logged at ``when``, with its newline."""
    document = {
        "time": _iso_time(when),
        "client": record.client,
        "peer": record.peer,
        "method": _decoded(record.method) or None,
        "target": _decoded(record.target) if record.method else None,
        "version": _decoded(record.version) or None,
        "status": record.status,
        "body_bytes": record.body_bytes,
        "duration": round(record.duration, 6),
        "host": _decoded(record.host),
        "referer": _decoded(record.referer),
        "user_agent": _decoded(record.user_agent),
        "route": record.route,
        "upstream": record.upstream,
        "consumer": record.consumer,
        "request_id": record.request_id,
        "reason": record.reason,
    }
    return _json(document)


def session_line(record: SessionRecord, when: float) -> bytes:
    """The ``combined`` format's line for a TCP connection."""
    return b'%s:%d [%s] %s %s %.3f %d %d end="%s"\n' % (
        escape(record.client.encode("ascii", "replace")),
        record.client_port,
        common_log_time(when).encode("ascii"),
        _text(record.listener),
        _text(record.upstream),
        record.duration,
        record.bytes_in,
        record.bytes_out,
        _text(record.end),
    )


def session_json_line(record: SessionRecord, when: float) -> bytes:
    """The ``json`` format's line for a TCP connection."""
    return _json(
        {
            "time": _iso_time(when),
            "kind": "tcp",
            "client": record.client,
            "client_port": record.client_port,
            "listener": record.listener,
            "upstream": record.upstream,
            "duration": round(record.duration, 6),
            "bytes_in": record.bytes_in,
            "bytes_out": record.bytes_out,
            "end": record.end,
        }
    )


FORMATS: dict[str, tuple[LineFormat, SessionFormat]] = {
    "combined": (combined, session_line),
    "json": (json_line, session_json_line),
}
"""The formats ``access_log_format`` may name: HTTP and TCP lines of each."""
