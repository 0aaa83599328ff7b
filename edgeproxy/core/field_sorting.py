"""
The one pass over a message's fields that both directions of the proxy make.

:func:`sort_fields` copies the ordinary fields of a message and sets aside the
ones the forwarding policy has to look at (hop-by-hop fields, forwarding
fields, ``Via``); :func:`sort_without_named` runs it again when
``Connection`` names further fields to remove.  The name sets here say which
fields each pass looks at: every name is lowered once and tested against one
precomputed set, and any field outside it is copied as it is.
"""

from __future__ import annotations

from collections.abc import Sequence

from edgeproxy.core.forwarding import ForwardingPolicy
from edgeproxy.core.message import HeaderPair
from edgeproxy.core.rewrite import LOCATION_FIELDS

_CONNECTION = b"connection"
_UPGRADE = b"upgrade"
_VIA = b"via"
X_FORWARDED_FOR = b"x-forwarded-for"
"""The lowered name of ``X-Forwarded-For``."""
X_REAL_IP = b"x-real-ip"
"""The lowered name of ``X-Real-IP``."""
X_FORWARDED_PROTO = b"x-forwarded-proto"
"""The lowered name of ``X-Forwarded-Proto``."""
X_FORWARDED_HOST = b"x-forwarded-host"
"""The lowered name of ``X-Forwarded-Host``."""
_FORWARDED = b"forwarded"
DATE = b"date"
"""The lowered name of ``Date``."""
CONTENT_LENGTH = b"content-length"
"""The lowered name of ``Content-Length``."""

_RESPONSE_HOP_BY_HOP = frozenset(
    {
        _CONNECTION,
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        _UPGRADE,
    }
)
_REQUEST_HOP_BY_HOP = _RESPONSE_HOP_BY_HOP | {b"proxy-authorization"}
_FORWARDING = frozenset(
    {X_FORWARDED_FOR, X_REAL_IP, X_FORWARDED_PROTO, X_FORWARDED_HOST, _FORWARDED}
)
NO_NAMES: frozenset[bytes] = frozenset()
"""No field names (nothing dropped)."""
ONLY_CONTENT_LENGTH = frozenset({CONTENT_LENGTH})
"""``Content-Length`` alone: what a pass that frames the message drops."""
REQUEST_SPECIAL = _REQUEST_HOP_BY_HOP | _FORWARDING | {b"host", _VIA}
"""
The names a request pass looks at: hop-by-hop, forwarding fields, ``Via``,
and Host (rebuilt, exactly one and first, so the received ones are skipped).
"""
FRAMED_REQUEST_SPECIAL = REQUEST_SPECIAL | ONLY_CONTENT_LENGTH
"""
:data:`REQUEST_SPECIAL` when the pass writes the framing fields too
(``Content-Length`` goes; ``Transfer-Encoding`` is hop-by-hop already).
"""
RESPONSE_SPECIAL = _RESPONSE_HOP_BY_HOP | {_VIA}
"""The names a response pass looks at: hop-by-hop fields and ``Via``."""
NOTED = frozenset({DATE, CONTENT_LENGTH}) | LOCATION_FIELDS
"""The kept names that a pass with a ``seen`` list writes down."""
FRAMED_RESPONSE_SPECIAL = RESPONSE_SPECIAL | NOTED
"""
:data:`RESPONSE_SPECIAL` when the framing fields go in the same pass:
``Content-Length`` is dropped (or noted, where it stays), ``Date`` and the
fields with URLs to rewrite are noted.
"""
# Connection options that name no other field to remove.
_PLAIN_OPTIONS = _REQUEST_HOP_BY_HOP | {b"close"}
# Fields that a Connection option may not remove: dropping them would change the
# framing or the target of what we send (a request smuggling lever).
_PROTECTED = frozenset({b"host", CONTENT_LENGTH})


def _add_options(value: bytes, options: set[bytes]) -> None:
    """Add the options listed in a lowered ``Connection`` value."""
    for item in value.split(b","):
        token = item.strip()
        if token:
            options.add(token)


def folded(values: list[bytes], ours: bytes) -> bytes:
    """A list-valued field: the received values, then ours, as one value."""
    return b", ".join([*values, ours])


class SortedFields:
    """
    What one pass over a message's fields set aside from the copied ones.

    :ivar options: the ``Connection`` options beyond the usual ones.
    :ivar upgrade: the ``Upgrade`` fields.
    :ivar via: the values of ``Via`` (when the policy writes ``Via``).
    :ivar xff: a trusted peer's ``X-Forwarded-For`` values.
    :ivar forwarded: a trusted peer's ``Forwarded`` values (when the policy
        writes ``Forwarded``).
    :ivar present: the lowered names of a trusted peer's other forwarding
        fields, kept in place.
    """

    __slots__ = ("forwarded", "options", "present", "upgrade", "via", "xff")

    def __init__(self) -> None:
        self.options: set[bytes] = set()
        self.upgrade: list[HeaderPair] = []
        self.via: list[bytes] = []
        self.xff: list[bytes] = []
        self.forwarded: list[bytes] = []
        self.present: set[bytes] = set()


def sort_fields(
    pairs: Sequence[HeaderPair],
    kept: list[HeaderPair],
    special: frozenset[bytes],
    dropped: frozenset[bytes],
    policy: ForwardingPolicy,
    trusted: bool,
    seen: list[bytes] | None = None,
) -> SortedFields | None:
    """
    Copy the ordinary fields of ``pairs`` to ``kept``; sort out the others.

    Hop-by-hop fields, Host, and the names in ``dropped`` are skipped;
    forwarding fields are skipped unless ``trusted``, in which case the ones
    the policy rewrites are collected and the others kept in place (a
    trusted ``X-Forwarded-For`` is always collected, to find the client).
    With a ``seen`` list, the (lowered) names of the kept fields of
    ``NOTED`` (those in ``special``) are added to it.
    Returns ``None`` when nothing was set aside (most messages).
    """
    found: SortedFields | None = None
    for pair in pairs:
        lname = pair[0].lower()
        if lname not in special:
            kept.append(pair)
        elif lname in dropped:
            continue
        elif seen is not None and lname in NOTED:
            kept.append(pair)
            seen.append(lname)
        elif lname == _CONNECTION:
            # Nearly always a lone "keep-alive", "close" or "upgrade".
            option = pair[1].lower()
            if option not in _PLAIN_OPTIONS:
                found = found or SortedFields()
                _add_options(option, found.options)
        elif lname == _UPGRADE:
            found = found or SortedFields()
            found.upgrade.append(pair)
        elif lname == _VIA:
            if policy.via:
                found = found or SortedFields()
                found.via.append(pair[1])
            else:
                kept.append(pair)
        elif lname in _FORWARDING and trusted:
            found = found or SortedFields()
            if lname == X_FORWARDED_FOR:
                found.xff.append(pair[1])
                if not policy.x_forwarded_for:
                    kept.append(pair)
            elif lname == _FORWARDED and policy.forwarded:
                found.forwarded.append(pair[1])
            else:
                kept.append(pair)
                found.present.add(lname)
    return found


def sort_without_named(
    pairs: Sequence[HeaderPair],
    kept: list[HeaderPair],
    start: int,
    special: frozenset[bytes],
    found: SortedFields,
    policy: ForwardingPolicy,
    trusted: bool,
    also_dropped: frozenset[bytes] = NO_NAMES,
    seen: list[bytes] | None = None,
) -> SortedFields | None:
    """
    Sort ``pairs`` again without the fields that ``Connection`` names.

    ``found`` is what the first pass, which copied to ``kept`` from
    ``start`` on (dropping ``also_dropped``, noting names in ``seen``), set
    aside.
    """
    named = found.options - _PLAIN_OPTIONS - _PROTECTED
    if not named:
        return found
    dropped = frozenset(named) | also_dropped
    del kept[start:]
    if seen is not None:
        del seen[:]
    return sort_fields(pairs, kept, special | dropped, dropped, policy, trusted, seen)
