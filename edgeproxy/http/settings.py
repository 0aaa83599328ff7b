"""
The limits and timeouts of the HTTP data path, one value per side.

A listener's :class:`ServerSettings` and an upstream pool's
:class:`ClientSettings` are built from the configuration; the defaults follow
nginx where it has an equivalent.  A timeout of 0 means none.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """
    Limits and timeouts of one HTTP listener (defaults in the spirit of nginx).

    :ivar max_head_size: bytes of request line and fields (431 beyond).
    :ivar max_field_count: header fields (431 beyond).
    :ivar max_target_length: bytes of the request target (414 beyond).
    :ivar max_body_size: bytes of a request body (413 beyond); 0 for no limit.
    :ivar head_timeout: seconds for a head to arrive (408).
    :ivar body_timeout: seconds a request body may pause (408).
    :ivar keep_alive_timeout: seconds an idle connection is kept.
    :ivar send_timeout: seconds a client may leave its socket full.
    :ivar body_buffer_size: bytes of request body kept while nobody reads
        it, before the client is paused.
    """

    max_head_size: int = 16 * 1024
    max_field_count: int = 100
    max_target_length: int = 8 * 1024
    max_body_size: int = 1024 * 1024
    head_timeout: float = 60.0
    body_timeout: float = 60.0
    keep_alive_timeout: float = 75.0
    send_timeout: float = 60.0
    body_buffer_size: int = 64 * 1024


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """
    Limits and timeouts of the connections to one upstream pool.

    :ivar first_byte_timeout: seconds from the request being sent to the
        first byte of the response (nginx's ``proxy_read_timeout``).
    :ivar idle_timeout: seconds without a byte while a response is read.
    :ivar send_timeout: seconds the upstream may leave its socket full while
        a request is sent (nginx's ``proxy_send_timeout``).
    :ivar max_head_size: bytes of a response head.
    :ivar max_field_count: header fields of a response head.
    :ivar body_buffer_size: bytes of response body kept while the client side
        is not ready, before the upstream is paused.
    """

    first_byte_timeout: float = 60.0
    idle_timeout: float = 60.0
    send_timeout: float = 60.0
    max_head_size: int = 64 * 1024
    max_field_count: int = 100
    body_buffer_size: int = 64 * 1024
