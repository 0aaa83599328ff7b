"""
The header fields a cache reads, parsed the way RFC 9111 and RFC 9110 ask.

:func:`parse_cache_control` reads ``Cache-Control`` (RFC 9111 section 5.2):
directive names are case-insensitive, arguments are tokens or quoted-strings
(with backslash escapes), whitespace and empty list elements are tolerated,
repeated field lines are one list, unknown directives are kept and ignored by
the policy.  Malformed input never raises: a directive that cannot be read is
skipped, an argument that is not a valid number reads as :data:`INVALID`.

Beside it: ``Pragma: no-cache`` (section 5.4), HTTP-dates (RFC 9110 section
5.6.7), entity-tags (RFC 9110 section 8.8.3) and comma-separated field-name
lists (``Vary``, ``Connection``).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Iterator
from email.utils import formatdate
from typing import NamedTuple

DELTA_SECONDS_MAX = 2147483648
"""The value of a delta-seconds too large to represent (RFC 9111 section 1.2.2)."""

INVALID = -1
"""What :meth:`CacheControl.seconds` returns for an unusable argument."""

_TCHARS = frozenset(
    b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)
# More digits than this is past DELTA_SECONDS_MAX whatever they are.
_MAX_DIGITS = len(str(DELTA_SECONDS_MAX))


def is_token(value: bytes) -> bool:
    """Whether ``value`` is a non-empty RFC 9110 token."""
    return bool(value) and all(byte in _TCHARS for byte in value)


def _elements(value: bytes) -> Iterator[tuple[bytes, bytes | None]]:
    """
    The ``name[=argument]`` elements of one ``Cache-Control`` field line.

    Commas inside a quoted-string do not split.  An unterminated quoted-string
    runs to the end of the line.  Names are returned lower-cased.
    """
    length = len(value)
    position = 0
    while position < length:
        end = position
        while end < length and value[end] not in b",=":
            end += 1
        name = value[position:end].strip(b" \t").lower()
        argument: bytes | None = None
        if end < length and value[end] == ord("="):
            argument, end = _argument(value, end + 1)
        if is_token(name):
            yield name, argument
        position = end + 1


def _argument(value: bytes, position: int) -> tuple[bytes, int]:
    """The argument starting at ``position`` and the index of the comma after it."""
    length = len(value)
    while position < length and value[position] in b" \t":
        position += 1
    if position < length and value[position] == ord('"'):
        unquoted, position = _quoted_string(value, position + 1)
        # Anything between the closing quote and the next comma is junk.
        comma = value.find(b",", position)
        return unquoted, length if comma < 0 else comma
    comma = value.find(b",", position)
    end = length if comma < 0 else comma
    return value[position:end].strip(b" \t"), end


def _quoted_string(value: bytes, position: int) -> tuple[bytes, int]:
    """The content of a quoted-string whose opening quote ends before ``position``."""
    out = bytearray()
    length = len(value)
    while position < length:
        byte = value[position]
        if byte == ord('"'):
            return bytes(out), position + 1
        if byte == ord("\\") and position + 1 < length:
            position += 1
            byte = value[position]
        out.append(byte)
        position += 1
    return bytes(out), length


def delta_seconds(argument: bytes | None) -> int:
    """
    A delta-seconds argument as an int, or :data:`INVALID`.

    Only ``1*DIGIT`` is valid (no sign, no fraction, no spaces inside);
    values past 2**31 read as 2**31 (RFC 9111 section 1.2.2).
    """
    if not argument or not argument.isdigit():
        return INVALID
    if len(argument) > _MAX_DIGITS:
        return DELTA_SECONDS_MAX
    return min(int(argument), DELTA_SECONDS_MAX)


class CacheControl:
    """
    The directives of a message's ``Cache-Control`` fields.

    Names are lower-case ``str``; each name maps to the arguments of each of
    its occurrences, in order (``None`` for an occurrence without one).
    """

    __slots__ = ("directives",)

    def __init__(self, directives: dict[str, list[bytes | None]] | None = None) -> None:
        self.directives: dict[str, list[bytes | None]] = directives or {}

    def __contains__(self, name: object) -> bool:
        return name in self.directives

    def __repr__(self) -> str:
        return f"CacheControl({self.directives!r})"

    def arguments(self, name: str) -> list[bytes | None]:
        """The arguments of every occurrence of ``name`` (empty when absent)."""
        return self.directives.get(name, [])

    def seconds(self, name: str) -> int | None:
        """
        The delta-seconds argument of ``name``.

        ``None`` when the directive is absent; :data:`INVALID` when an
        occurrence has no argument or a malformed one, or when occurrences
        disagree (RFC 9111 section 4.2.1 lets a cache treat conflicting
        freshness information as stale, which is what callers do with it).
        """
        arguments = self.directives.get(name)
        if arguments is None:
            return None
        values = {delta_seconds(argument) for argument in arguments}
        if len(values) != 1:
            return INVALID
        return values.pop()

    def field_names(self, name: str) -> frozenset[bytes] | None:
        """
        The field names a qualified ``no-cache`` or ``private`` lists.

        Lower-cased, the union over every occurrence.  ``None`` when the
        directive is absent, or when any occurrence is unqualified or lists no
        valid name: then the directive applies to the whole response.
        """
        arguments = self.directives.get(name)
        if not arguments:
            return None
        names: set[bytes] = set()
        for argument in arguments:
            listed = field_name_list([argument]) if argument is not None else []
            if not listed:
                return None
            names.update(listed)
        return frozenset(names)


EMPTY_CACHE_CONTROL = CacheControl()
"""The directives of a message without ``Cache-Control``."""


def parse_cache_control(values: Iterable[bytes]) -> CacheControl:
    """Parse the values of every ``Cache-Control`` field of a message, in order."""
    directives: dict[str, list[bytes | None]] = {}
    for value in values:
        for name, argument in _elements(value):
            directives.setdefault(name.decode("ascii"), []).append(argument)
    return CacheControl(directives) if directives else EMPTY_CACHE_CONTROL


def pragma_no_cache(values: Iterable[bytes]) -> bool:
    """Whether ``Pragma`` field values hold the ``no-cache`` directive."""
    return any(name == b"no-cache" for value in values for name, _ in _elements(value))


def field_name_list(values: Iterable[bytes]) -> list[bytes]:
    """
    The lower-cased members of comma-separated token lists (``Vary``).

    Empty members are dropped; ``*`` is kept; members that are not tokens
    are dropped.
    """
    names = []
    for value in values:
        for member in value.split(b","):
            name = member.strip(b" \t").lower()
            if is_token(name):
                names.append(name)
    return names


# --- HTTP-date ---------------------------------------------------------------

_MONTHS = {
    name: number
    for number, name in enumerate(
        b"jan feb mar apr may jun jul aug sep oct nov dec".split(),
        start=1,
    )
}
_DAY = rb"(?:mon|tue|wed|thu|fri|sat|sun)"
_LONG_DAY = rb"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_TIME = rb"(\d\d):(\d\d):(\d\d)"
_MONTH = rb"([a-z]{3})"
_IMF_FIXDATE = re.compile(
    _DAY + rb", (\d\d?) " + _MONTH + rb" (\d{4}) " + _TIME + b" gmt"
)
_RFC850_DATE = re.compile(
    _LONG_DAY + rb", (\d\d)-" + _MONTH + rb"-(\d\d) " + _TIME + b" gmt"
)
_ASCTIME_DATE = re.compile(
    _DAY + b" " + _MONTH + rb" ([ \d]\d) " + _TIME + rb" (\d{4})"
)


def parse_http_date(value: bytes) -> int | None:
    """
    An HTTP-date as seconds since the epoch, or ``None`` when invalid.

    All three formats of RFC 9110 section 5.6.7 are accepted, case-insensitively
    (RFC 9111 section 4.2), and a one-digit day (5.6.7 asks recipients to be
    robust); a zone other than GMT is invalid.  A two-digit
    rfc850 year is read as 1970-2069 (the 50-year rule of 5.6.7, pinned to a
    fixed pivot because this module reads no clock).  ``0`` and other
    non-dates give ``None``, which a cache treats as "in the past".
    """
    text = value.strip(b" \t").lower()
    match = _IMF_FIXDATE.fullmatch(text)
    if match is not None:
        day, month, year, hour, minute, second = match.groups()
    else:
        match = _RFC850_DATE.fullmatch(text)
        if match is not None:
            day, month, short_year, hour, minute, second = match.groups()
            year = b"%d" % (int(short_year) + (1900 if int(short_year) >= 70 else 2000))
        else:
            match = _ASCTIME_DATE.fullmatch(text)
            if match is None:
                return None
            month, day, hour, minute, second, year = match.groups()
    month_number = _MONTHS.get(month)
    if month_number is None:
        return None
    fields = (int(year), month_number, int(day), int(hour), int(minute), int(second))
    if not (1 <= fields[2] <= 31 and fields[3] <= 23 and fields[4] <= 59):
        return None
    if fields[5] > 60:  # 60 is a leap second
        return None
    return calendar.timegm((*fields, 0, 0, 0))


def format_http_date(seconds: float) -> bytes:
    """``seconds`` since the epoch as an IMF-fixdate."""
    return formatdate(int(seconds), usegmt=True).encode("ascii")


# --- entity-tags -------------------------------------------------------------


class EntityTag(NamedTuple):
    """An entity-tag: its opaque part (quotes included) and whether it is weak."""

    opaque: bytes
    weak: bool = False

    def strong_match(self, other: EntityTag) -> bool:
        """RFC 9110 section 8.8.3.2 strong comparison."""
        return not self.weak and not other.weak and self.opaque == other.opaque

    def weak_match(self, other: EntityTag) -> bool:
        """RFC 9110 section 8.8.3.2 weak comparison."""
        return self.opaque == other.opaque


_ENTITY_TAG = re.compile(rb'[ \t]*(W/)?("[^"]*")[ \t]*')


def parse_entity_tag(value: bytes) -> EntityTag | None:
    """An ``ETag`` field value, or ``None`` when it is not one entity-tag."""
    match = _ENTITY_TAG.fullmatch(value)
    if match is None:
        return None
    return EntityTag(match.group(2), match.group(1) is not None)


class EntityTagList(NamedTuple):
    """An ``If-None-Match`` (or ``If-Match``) value: ``*`` or entity-tags."""

    wildcard: bool
    tags: tuple[EntityTag, ...]


def parse_entity_tag_list(values: Iterable[bytes]) -> EntityTagList:
    """
    The entity-tags of ``If-None-Match`` field values.

    ``*`` anywhere makes the list a wildcard; malformed members are skipped.
    """
    tags: list[EntityTag] = []
    wildcard = False
    for value in values:
        position = 0
        while position < len(value):
            match = _ENTITY_TAG.match(value, position)
            if match is not None:
                tags.append(EntityTag(match.group(2), match.group(1) is not None))
                position = match.end()
            comma = value.find(b",", position)
            member = value[position : len(value) if comma < 0 else comma]
            wildcard = wildcard or member.strip(b" \t") == b"*"
            if comma < 0:
                break
            position = comma + 1
    return EntityTagList(wildcard, tuple(tags))
