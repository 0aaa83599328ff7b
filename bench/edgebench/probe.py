"""
Single requests from the harness (never during a measured run): what the
preflight and the cache checks ask a target or the origin.
"""

from __future__ import annotations

import http.client
from collections.abc import Mapping
from dataclasses import dataclass

from edgebench.processes import HOST

TIMEOUT = 10.0


@dataclass(frozen=True)
class Answer:
    """One response: its status, header fields and whole body."""

    status: int
    fields: http.client.HTTPMessage
    body: bytes

    def field(self, name: str) -> str:
        """The value of field ``name`` (any case), or "" when absent."""
        return self.fields.get(name, "")


def fetch(port: int, path: str, headers: Mapping[str, str] | None = None) -> Answer:
    """``GET path`` on 127.0.0.1:``port`` over a new connection; any status."""
    connection = http.client.HTTPConnection(HOST, port, timeout=TIMEOUT)
    try:
        connection.request("GET", path, headers=dict(headers or {}))
        response = connection.getresponse()
        return Answer(response.status, response.headers, response.read())
    finally:
        connection.close()
