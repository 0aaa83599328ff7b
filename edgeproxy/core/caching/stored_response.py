"""
A stored response as the policy sees it: its metadata, and the fields it reads.

The body lives in a store (:mod:`edgeproxy.cache`); :class:`StoredResponse`
is what every policy function reads and what a store keeps beside the body.
"""

from __future__ import annotations

from edgeproxy.core.cache_control import (
    EntityTag,
    field_name_list,
    parse_cache_control,
    parse_entity_tag,
    parse_http_date,
)
from edgeproxy.core.message import Headers


class StoredResponse:
    """
    The metadata of one stored response (its body lives in the store).

    :ivar status: the status code.
    :ivar reason: the reason phrase.
    :ivar headers: the stored fields (hop-by-hop and proxy fields removed, a
        ``Date`` always present); treat as read-only.
    :ivar request_time: when the request that fetched or last validated it left.
    :ivar response_time: when that response arrived.
    :ivar variant: the secondary key it was stored under
        (:func:`~edgeproxy.core.caching.keys.variant_key`).
    :ivar cache_control: its parsed ``Cache-Control``.
    :ivar vary: the lower-cased field names of its ``Vary``, sorted.
    """

    __slots__ = (
        "cache_control",
        "headers",
        "reason",
        "request_time",
        "response_time",
        "status",
        "variant",
        "vary",
    )

    def __init__(
        self,
        status: int,
        reason: bytes,
        headers: Headers,
        request_time: float,
        response_time: float,
        variant: bytes,
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.request_time = request_time
        self.response_time = response_time
        self.variant = variant
        self.cache_control = parse_cache_control(headers.get_all(b"cache-control"))
        self.vary = tuple(sorted(set(field_name_list(headers.get_all(b"vary")))))

    def _identity(self) -> tuple[object, ...]:
        """What makes two stored responses equal."""
        return (
            self.status,
            self.reason,
            self.headers,
            self.request_time,
            self.response_time,
            self.variant,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StoredResponse):
            return NotImplemented
        return self._identity() == other._identity()

    def __repr__(self) -> str:
        return f"StoredResponse({self.status!r}, {self.variant!r}, {self.headers!r})"


def single_date(headers: Headers, name: bytes) -> int | None:
    """The HTTP-date of a field that must appear once (``None`` otherwise)."""
    values = headers.get_all(name)
    if len(set(values)) != 1:
        return None
    return parse_http_date(values[0])


def date_value(stored: StoredResponse) -> float:
    """The stored ``Date``, or the time the response arrived."""
    date = single_date(stored.headers, b"date")
    return stored.response_time if date is None else date


def entity_tag(headers: Headers) -> EntityTag | None:
    """The response's one entity-tag, or ``None``."""
    values = headers.get_all(b"etag")
    return parse_entity_tag(values[0]) if len(values) == 1 else None


def has_validator(headers: Headers) -> bool:
    """Whether a response can be revalidated (ETag or Last-Modified)."""
    return b"etag" in headers or b"last-modified" in headers
