"""
What the gateway scenario needs besides the proxies: an HS256 secret and a
token signed with it (PyJWT, made at bench start, sent by wrk), and a
redis-server of its own for the rate limiter's Redis store.
"""

from __future__ import annotations

import datetime
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

from edgebench.processes import HOST

TOKEN_LIFETIME = datetime.timedelta(days=1)
"""How long a token stays valid: longer than any session."""
SUBJECT = "edgebench"


@dataclass(frozen=True)
class Credentials:
    """The jwt filter's secret and a valid token for it."""

    secret: str
    token: str

    @property
    def header(self) -> str:
        """The request field that carries the token, as ``wrk -H`` takes it."""
        return f"Authorization: Bearer {self.token}"


def make_credentials() -> Credentials | None:
    """A fresh 32-byte secret and an HS256 token; None without PyJWT."""
    try:
        import jwt
    except ImportError:
        return None
    # 32 characters of hex: 32 bytes as written in the INI file, the least
    # the filter takes for HS256.
    secret = secrets.token_hex(16)
    # A token's times are wall-clock times, as the filter reads them.
    issued = datetime.datetime.now(datetime.timezone.utc)
    claims = {"sub": SUBJECT, "iat": issued, "exp": issued + TOKEN_LIFETIME}
    return Credentials(secret, jwt.encode(claims, secret, algorithm="HS256"))


def redis_argv(program: str, port: int, directory: Path) -> list[str]:
    """redis-server on 127.0.0.1:``port``, in the foreground, nothing on disk."""
    return [
        program,
        "--bind", HOST,
        "--port", str(port),
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
        "--dir", str(directory),
    ]  # fmt: skip


def redis_key_count(port: int, timeout: float = 5.0) -> int:
    """``DBSIZE`` of database 0 of the Redis server on ``port``."""
    with socket.create_connection((HOST, port), timeout=timeout) as connection:
        connection.sendall(b"DBSIZE\r\n")
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = connection.recv(64)
            if not chunk:
                break
            reply += chunk
    if not reply.startswith(b":"):
        raise RuntimeError(f"redis-server answered DBSIZE with {reply[:100]!r}")
    return int(reply[1:].strip())
