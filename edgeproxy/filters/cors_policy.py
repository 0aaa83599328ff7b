"""
What a ``cors`` filter allows, and how its options say it.

:class:`CorsPolicy` answers the one question that depends on the origin (is it
allowed, and what does ``Access-Control-Allow-Origin`` say);
:func:`read_cors_policy` reads a policy from the filter's options.  The filter
itself is :mod:`edgeproxy.filters.cors`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from edgeproxy.balancing.request_keys import is_token
from edgeproxy.config.values import parse_bool, parse_duration, parse_list
from edgeproxy.errors import OptionError
from edgeproxy.options import parse_options

NORMALIZED_METHODS = frozenset({"DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"})
"""Methods that browsers upper-case, whatever case a script wrote them in."""

_ORIGIN = re.compile(r"([a-z][a-z0-9+.-]*)://([^/?#@\s]+?)(?::(\d+))?")
_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


@dataclass(frozen=True)
class CorsPolicy:
    """
    What a ``cors`` filter allows.

    :ivar any_origin: ``*`` is among the origins.
    :ivar origins: exact origins (normalized, lower case), ``null`` included.
    :ivar origin_patterns: regular expressions an origin may fully match.
    :ivar methods: allowed methods; ``(b"*",)`` for any.
    :ivar headers: allowed request header names as written; ``(b"*",)`` for any.
    :ivar expose_headers: response header names to expose; ``(b"*",)`` for all.
    :ivar credentials: whether credentialed requests are allowed.
    :ivar max_age: seconds a browser may keep a preflight's answer, or ``None``.
    """

    any_origin: bool = False
    origins: frozenset[str] = frozenset()
    origin_patterns: tuple[re.Pattern[str], ...] = ()
    methods: tuple[bytes, ...] = (b"GET", b"HEAD", b"POST")
    headers: tuple[bytes, ...] = ()
    expose_headers: tuple[bytes, ...] = ()
    credentials: bool = False
    max_age: int | None = None

    @property
    def varies_by_origin(self) -> bool:
        """Whether ``Access-Control-Allow-Origin`` depends on the request's origin."""
        return self.credentials or not self.any_origin

    def allow_origin(self, origin: str) -> bytes | None:
        """The ``Access-Control-Allow-Origin`` value for ``origin``, or ``None``."""
        if self.any_origin and not self.credentials:
            return b"*"
        if (
            origin.lower() in self.origins
            or (self.any_origin and origin != "null")
            or any(pattern.fullmatch(origin) for pattern in self.origin_patterns)
        ):
            return origin.encode("ascii")
        return None


def _origin_entries(text: str) -> list[str]:
    """Split ``allow_origins``: by commas, but a ``~`` entry runs to its line's end."""
    entries = []
    for line in text.splitlines():
        rest = line.strip()
        while rest:
            if rest.startswith("~"):
                entries.append(rest)
                break
            item, _, rest = rest.partition(",")
            rest = rest.strip()
            if item.strip():
                entries.append(item.strip())
    return entries


def parse_origins(
    text: str,
) -> tuple[bool, frozenset[str], tuple[re.Pattern[str], ...]]:
    """
    Parse ``allow_origins`` into (any origin, exact origins, patterns).

    :raises ValueError: naming the first entry that is not an origin, ``null``,
        ``*`` or a valid ``~REGEX``.
    """
    any_origin = False
    origins: set[str] = set()
    patterns: list[re.Pattern[str]] = []
    for entry in _origin_entries(text):
        if entry == "*":
            any_origin = True
        elif entry.startswith("~"):
            try:
                patterns.append(re.compile(entry[1:]))
            except re.error as error:
                raise ValueError(
                    f"{entry!r} is not a regular expression: {error}"
                ) from None
        elif entry.lower() == "null":
            origins.add("null")
        else:
            origins.add(_normalized_origin(entry))
    if not (any_origin or origins or patterns):
        raise ValueError("no origin given")
    return any_origin, frozenset(origins), tuple(patterns)


def _normalized_origin(entry: str) -> str:
    match = _ORIGIN.fullmatch(entry.lower())
    if match is None:
        raise ValueError(
            f"{entry!r} is not an origin (write scheme://host[:port], no path)"
        )
    scheme, host, port = match.groups()
    if port is None or _DEFAULT_PORTS.get(scheme) == port:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _names(text: str, what: str) -> tuple[bytes, ...]:
    names = parse_list(text)
    for name in names:
        if name != "*" and not is_token(name):
            raise ValueError(f"{name!r} is not {what}")
    if "*" in names:
        return (b"*",)
    return tuple(name.encode("ascii") for name in names)


def parse_methods(text: str) -> tuple[bytes, ...]:
    """Parse ``allow_methods``; the methods browsers upper-case are upper-cased."""
    methods = _names(text, "a method")
    if not methods:
        raise ValueError("no method given")
    return tuple(
        method.upper() if method.upper().decode() in NORMALIZED_METHODS else method
        for method in methods
    )


def _max_age(text: str) -> int:
    return int(parse_duration(text))


_PARSERS: dict[str, Callable[[str], object]] = {
    "allow_origins": parse_origins,
    "allow_methods": parse_methods,
    "allow_headers": lambda text: _names(text, "a header name"),
    "expose_headers": lambda text: _names(text, "a header name"),
    "allow_credentials": parse_bool,
    "max_age": _max_age,
}


def read_cors_policy(options: Mapping[str, str]) -> CorsPolicy:
    """
    The policy that a ``cors`` filter's options describe.

    :raises OptionError: listing every bad, unknown or missing option.
    """
    values, problems = parse_options(
        options,
        _PARSERS,
        required={"allow_origins": "required: the origins to allow"},
    )
    if problems:
        raise OptionError(problems)
    any_origin, origins, patterns = values["allow_origins"]
    defaults = CorsPolicy()
    return CorsPolicy(
        any_origin=any_origin,
        origins=origins,
        origin_patterns=patterns,
        methods=values.get("allow_methods", defaults.methods),
        headers=values.get("allow_headers", defaults.headers),
        expose_headers=values.get("expose_headers", defaults.expose_headers),
        credentials=values.get("allow_credentials", defaults.credentials),
        max_age=values.get("max_age", defaults.max_age),
    )
