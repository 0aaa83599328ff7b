"""
The ``headers`` filter: set, add and remove header fields on requests and responses.

Options (each optional)::

    [filter:tidy]
    plugin = headers
    request.set = X-Env: production
    request.add = X-Trace: on
    request.remove = X-Debug, Cookie2
    response.set =
        Strict-Transport-Security: max-age=31536000
        X-Frame-Options: DENY
    response.remove = Server, X-Powered-By

``set`` and ``add`` take one ``Name: value`` field per line; ``set`` replaces every
field of that name, ``add`` appends one more.  ``remove`` takes a comma-separated
list of names.  Removals run first, then sets, then adds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from twisted.plugin import IPlugin
from zope.interface import implementer

from edgeproxy.core.context import RequestContext
from edgeproxy.core.message import HeaderPair, Headers, RequestHead, ResponseHead
from edgeproxy.errors import OptionError
from edgeproxy.interfaces import IFilter, IFilterFactory
from edgeproxy.plugin_environment import PluginEnvironment

_TOKEN_CHARS = frozenset(
    b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


@dataclass(frozen=True)
class HeaderEdits:
    """The edits for one direction: names to remove, fields to set, fields to add."""

    remove: tuple[bytes, ...] = ()
    set: tuple[HeaderPair, ...] = ()
    add: tuple[HeaderPair, ...] = ()

    def apply(self, headers: Headers) -> None:
        """Edit ``headers`` in place."""
        for name in self.remove:
            headers.remove(name)
        for name, value in self.set:
            headers.set(name, value)
        for name, value in self.add:
            headers.add(name, value)


@implementer(IFilter)
class HeadersFilter:
    """Applies fixed header edits to every request and response."""

    def __init__(self, request: HeaderEdits, response: HeaderEdits) -> None:
        self.request = request
        self.response = response

    def on_request(self, context: RequestContext, request: RequestHead) -> None:
        """Edit the request's fields."""
        self.request.apply(request.headers)

    def on_response(self, context: RequestContext, response: ResponseHead) -> None:
        """Edit the response's fields."""
        self.response.apply(response.headers)


def _name(text: str) -> bytes:
    name = text.strip().encode("ascii", "replace")
    if not name or not set(name) <= _TOKEN_CHARS:
        raise ValueError(f"{text.strip()!r} is not a header name")
    return name


def _fields(text: str) -> tuple[HeaderPair, ...]:
    fields = []
    for line in text.splitlines():
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise ValueError(f"{line.strip()!r} is not 'Name: value'")
        encoded = value.strip().encode("utf-8")
        if b"\r" in encoded or b"\n" in encoded or b"\x00" in encoded:
            raise ValueError(f"the value of {name.strip()!r} has a control character")
        fields.append((_name(name), encoded))
    return tuple(fields)


def _names(text: str) -> tuple[bytes, ...]:
    return tuple(_name(item) for item in text.split(",") if item.strip())


@implementer(IPlugin, IFilterFactory)
class HeadersFilterFactory:
    """Builds :class:`HeadersFilter` from ``request.*`` and ``response.*`` options."""

    name = "headers"
    description = "Set, add and remove header fields on requests and responses."

    def build(
        self, options: Mapping[str, str], environment: PluginEnvironment
    ) -> HeadersFilter:
        """Parse the edits; every malformed option is reported."""
        problems = []
        parsed: dict[str, dict[str, object]] = {"request": {}, "response": {}}
        parsers = {"set": _fields, "add": _fields, "remove": _names}
        for key, text in options.items():
            direction, _, action = key.partition(".")
            if direction not in parsed or action not in parsers:
                problems.append(
                    (
                        key,
                        "unknown option (use request.set, request.add, "
                        "request.remove, response.set, response.add, response.remove)",
                    )
                )
                continue
            try:
                parsed[direction][action] = parsers[action](text)
            except ValueError as error:
                problems.append((key, str(error)))
        if problems:
            raise OptionError(problems)
        return HeadersFilter(
            HeaderEdits(**parsed["request"]),  # type: ignore[arg-type]
            HeaderEdits(**parsed["response"]),  # type: ignore[arg-type]
        )


headers_factory = HeadersFilterFactory()
