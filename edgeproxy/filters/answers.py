"""
Local answers of gateway filters: a status, a short message, extra header fields.

The body is JSON (``{"status": 401, "error": "Unauthorized", "message": "..."}``)
when the client's ``Accept`` prefers ``application/json`` to ``text/plain``, and
otherwise one line of text (``Unauthorized: ...``).  Every answer carries
``Vary: Accept`` because its body depends on that field.

Also here: :func:`unauthorized`, the 401 of authentication filters, and
:func:`challenge`, the ``WWW-Authenticate`` value it carries.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from http import HTTPStatus

from edgeproxy.core.message import HeaderPair, Headers, LocalResponse, RequestHead

_QUALITY = re.compile(r"q=(0(?:\.\d{0,3})?|1(?:\.0{0,3})?)", re.IGNORECASE)
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_REALM = re.compile(r"[\x20-\x7e]+")


def _quality(parameters: list[str]) -> float | None:
    """The ``q`` of a media range's parameters (1 when absent, None when invalid)."""
    for parameter in parameters:
        name = parameter.split("=", 1)[0].strip().lower()
        if name == "q":
            match = _QUALITY.fullmatch(parameter.strip().replace(" ", ""))
            return float(match.group(1)) if match else None
    return 1.0


def _preference(ranges: list[tuple[str, float]], media_type: str) -> float:
    """The quality the client gives ``media_type``: its most specific range wins."""
    kind = media_type.partition("/")[0]
    best: tuple[int, float] = (-1, 0.0)
    for media_range, quality in ranges:
        if media_range == media_type:
            specificity = 2
        elif media_range == f"{kind}/*":
            specificity = 1
        elif media_range == "*/*":
            specificity = 0
        else:
            continue
        best = max(best, (specificity, quality), key=lambda pair: pair[0])
    return best[1]


def prefers_json(accept: bytes | None) -> bool:
    """
    Whether an ``Accept`` value ranks ``application/json`` above ``text/plain``.

    No ``Accept`` (or ``*/*``) means text: a tie goes to text.
    """
    if not accept:
        return False
    ranges = []
    for item in accept.decode("latin-1").split(","):
        media_range, *parameters = item.split(";")
        quality = _quality(parameters)
        if quality is not None and media_range.strip():
            ranges.append((media_range.strip().lower(), quality))
    return _preference(ranges, "application/json") > _preference(ranges, "text/plain")


def local_answer(
    request: RequestHead | None,
    status: int,
    message: str,
    headers: Iterable[HeaderPair] = (),
) -> LocalResponse:
    """
    A local answer to ``request`` with ``status``, ``message`` and extra fields.

    :param request: the request answered (its ``Accept`` picks JSON or text);
        ``None`` answers in text.
    :param message: one short sentence for the client, without the reason
        phrase; the access log's reason too.
    :param headers: fields to add, such as ``WWW-Authenticate`` or ``Retry-After``.
    """
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    accept = b",".join(request.headers.get_all(b"accept")) if request else None
    if prefers_json(accept):
        document = {"status": status, "error": reason, "message": message}
        body = json.dumps(document, separators=(",", ":")).encode("utf-8") + b"\n"
        content_type = b"application/json"
    else:
        body = f"{reason}: {message}\n".encode()
        content_type = b"text/plain; charset=utf-8"
    fields = Headers([(b"Content-Type", content_type), (b"Vary", b"Accept")])
    for name, value in headers:
        fields.add(name, value)
    return LocalResponse(status, body, fields, reason=message)


def unauthorized(
    request: RequestHead | None, message: str, challenge_value: bytes
) -> LocalResponse:
    """A ``401`` with ``message`` and ``WWW-Authenticate: challenge_value``."""
    return local_answer(request, 401, message, [(b"WWW-Authenticate", challenge_value)])


def quoted_string(text: str) -> str:
    """``text`` as an RFC 9110 quoted-string (``"`` and ``\\`` escaped)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def challenge(scheme: str, parameters: Sequence[tuple[str, str]] = ()) -> bytes:
    """
    A ``WWW-Authenticate`` value: ``Scheme name="value", ...``.

    :raises ValueError: if ``scheme`` or a parameter name is not a token, or a
        value holds a control character.
    """
    if not _TOKEN.fullmatch(scheme):
        raise ValueError(f"{scheme!r} is not an authentication scheme")
    items = []
    for name, value in parameters:
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"{name!r} is not a parameter name")
        if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
            raise ValueError(f"the value of {name!r} has a control character")
        items.append(f"{name}={quoted_string(value)}")
    text = f"{scheme} {', '.join(items)}" if items else scheme
    return text.encode("utf-8")


def parse_realm(text: str) -> str:
    """
    Read a ``realm`` option: printable ASCII, not empty.

    :raises ValueError: otherwise.
    """
    realm = text.strip()
    if not _REALM.fullmatch(realm):
        raise ValueError(f"{realm!r} is not a realm (printable ASCII, not empty)")
    return realm
