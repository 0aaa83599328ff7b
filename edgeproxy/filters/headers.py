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

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from twisted.plugin import IPlugin
from zope.interface import implementer

from edgeproxy.core.context import RequestContext
from edgeproxy.core.message import HeaderPair, Headers, RequestHead, ResponseHead
from edgeproxy.errors import OptionError
from edgeproxy.interfaces import IFilter, IFilterFactory
from edgeproxy.options import parse_header_name, parse_options
from edgeproxy.plugin_environment import PluginEnvironment


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
        fields.append((parse_header_name(name), encoded))
    return tuple(fields)


def _names(text: str) -> tuple[bytes, ...]:
    return tuple(parse_header_name(item) for item in text.split(",") if item.strip())


_ACTIONS: dict[str, Callable[[str], tuple[Any, ...]]] = {
    "set": _fields,
    "add": _fields,
    "remove": _names,
}
_PARSERS = {
    f"{direction}.{action}": parser
    for direction in ("request", "response")
    for action, parser in _ACTIONS.items()
}


def _edits(values: Mapping[str, Any], direction: str) -> HeaderEdits:
    return HeaderEdits(
        remove=values.get(f"{direction}.remove", ()),
        set=values.get(f"{direction}.set", ()),
        add=values.get(f"{direction}.add", ()),
    )


@implementer(IPlugin, IFilterFactory)
class HeadersFilterFactory:
    """Builds :class:`HeadersFilter` from ``request.*`` and ``response.*`` options."""

    name = "headers"
    description = "Set, add and remove header fields on requests and responses."

    def build(
        self, options: Mapping[str, str], environment: PluginEnvironment
    ) -> HeadersFilter:
        """Parse the edits; every malformed option is reported."""
        values, problems = parse_options(options, _PARSERS, keep_order=True)
        if problems:
            raise OptionError(problems)
        return HeadersFilter(_edits(values, "request"), _edits(values, "response"))


headers_factory = HeadersFilterFactory()
