"""
Which route serves a request: host, path, method, header and query conditions.

Paths, header values and query parameters are compared as received: nothing is
percent-decoded (``%2F`` is not ``/``), no dot segment is resolved, no
duplicate slash merged, no case folded.  A route written for ``/v1/`` does not
match ``/V1/`` nor ``/%761/``; that is deliberate: the upstream sees the same
bytes we matched, so a route cannot be dodged by an encoding the upstream
would decode differently.  Only the host is normalised (case, port, trailing
dot), because RFC 9110 makes those differences meaningless.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Generic, TypeAlias, TypeVar

from edgeproxy.core.message import RequestHead

Payload = TypeVar("Payload")

# RFC 3986 host (reg-name or IP-literal) with an optional port, as allowed in
# Host and in the authority of an absolute-form target (userinfo is refused).
_AUTHORITY = re.compile(
    rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::[0-9]*)?"
)
_HTTP_SCHEMES = (b"http", b"https")

# A header condition: (lowered name, exact value, or regex to search for).
_HeaderTest: TypeAlias = tuple[bytes, bytes | None, re.Pattern[bytes] | None]


# Requests name few hosts: a hit costs no regex and no Python call.
@lru_cache(maxsize=1024)
def _is_authority(value: bytes) -> bool:
    """Whether ``value`` is a host with an optional port, as Host allows."""
    return _AUTHORITY.fullmatch(value) is not None


def _host_field(head: RequestHead) -> bytes | None:
    """The Host of ``head``, checked as RFC 9112 section 3.2 requires."""
    values = head.headers.get_all(b"host")
    if len(values) > 1:
        raise ValueError("more than one Host field")
    if not values:
        if head.version == b"1.0":
            return None
        raise ValueError("an HTTP/1.1 request needs a Host field")
    host = values[0]
    if not host:
        return None
    if not _is_authority(host):
        raise ValueError(f"bad Host field {host!r}")
    return host


def effective_host_and_target(head: RequestHead) -> tuple[bytes | None, bytes]:
    """
    The host a request is for, and its target in origin form.

    An origin-form target (``/path?query``) and ``*`` (for OPTIONS only) come
    back unchanged, with the Host field's value (``None`` when HTTP/1.0 sent
    none, or Host is empty).  An absolute-form target with an ``http`` or
    ``https`` scheme (``http://a.example/x``) comes back as its path and query
    (``/x``; ``/`` when empty; ``*`` for an OPTIONS without path or query),
    with its authority as the host: RFC 9112 section 3.2.2 makes it win over
    Host.  The host is returned as received (case and port kept).

    Raises ``ValueError`` (answer 400) for any other target (authority-form,
    another scheme, a fragment, userinfo), for several Host fields, a bad
    Host, or an HTTP/1.1 request without Host.  An absolute-form request
    without Host is accepted (its target names the host); its Host, being
    ignored, is not checked beyond being single.
    """
    target = head.target
    if target[:1] == b"/":
        return _host_field(head), target
    if target == b"*":
        if head.method != b"OPTIONS":
            raise ValueError("the target '*' is only for OPTIONS")
        return _host_field(head), target
    scheme, separator, rest = target.partition(b"://")
    if not separator or scheme.lower() not in _HTTP_SCHEMES:
        raise ValueError(f"unsupported request target {target[:100]!r}")
    end = len(rest)
    for delimiter in (b"/", b"?", b"#"):
        found = rest.find(delimiter, 0, end)
        if found >= 0:
            end = found
    authority, remainder = rest[:end], rest[end:]
    if len(head.headers.get_all(b"host")) > 1:
        raise ValueError("more than one Host field")
    if b"#" in remainder:
        raise ValueError("a request target cannot have a fragment")
    if _AUTHORITY.fullmatch(authority) is None or authority[:1] == b":":
        raise ValueError(f"bad authority in request target {target[:100]!r}")
    if not remainder and head.method == b"OPTIONS":
        return authority, b"*"
    if remainder[:1] != b"/":
        remainder = b"/" + remainder
    return authority, remainder


@lru_cache(maxsize=1024)
def host_key(host: bytes) -> bytes:
    """
    ``host`` as routes compare it: lower case, no port, no trailing dot.

    ``b"API.Example.com.:8080"`` gives ``b"api.example.com"``;
    ``b"[::1]:80"`` gives ``b"[::1]"``.
    """
    lowered = host.lower()
    if lowered[:1] == b"[":
        name = lowered[: lowered.find(b"]") + 1]
    else:
        name = lowered.partition(b":")[0]
    return name[:-1] if name[-1:] == b"." else name


def _compile(key: str, pattern: str) -> re.Pattern[bytes]:
    """Compile a configured regex for matching bytes; ValueError when bad."""
    try:
        return re.compile(pattern.encode("utf-8"))
    except re.error as error:
        raise ValueError(f"{key} {pattern!r} is not a valid regex: {error}") from None


def _host_pattern(host: str) -> str:
    """A configured host, checked and lowered; wildcards keep their ``*.``."""
    name = host.strip().lower()
    if name.endswith("."):
        name = name[:-1]
    bare = name[2:] if name.startswith("*.") else name
    if not bare or "*" in bare or "/" in bare:
        raise ValueError(
            f"host {host!r} must be a name, an address or '*.' followed by a name"
        )
    has_port = not bare.endswith("]") if bare[:1] == "[" else ":" in bare
    if has_port:
        raise ValueError(f"host {host!r} must not have a port")
    if _AUTHORITY.fullmatch(bare.encode("utf-8")) is None:
        raise ValueError(f"host {host!r} has characters a host cannot have")
    return name


@dataclass(frozen=True)
class RouteMatch:
    """
    The conditions a request must meet for a route; all must hold.

    A field left empty places no condition, so ``RouteMatch()`` matches every
    request.  Filled from these keys of a ``[route:NAME]`` section:

    - ``host`` -> ``hosts``: exact names or addresses (``api.example.com``,
      ``10.0.0.1``, ``[::1]``) and wildcards (``*.example.com``: one or more
      labels before ``.example.com``, not ``example.com`` itself); compared
      without case, port or trailing dot.
    - ``path_prefix`` -> ``path_prefix``: the path (target before ``?``)
      starts with these bytes, as received (``/v1/`` does not match ``/v1``).
    - ``path_regex`` -> ``path_regex``: ``re.search`` on the path finds the
      regex (anchor it with ``^...$`` to match the whole path).
    - ``methods`` -> ``methods``: the method is one of these (written in any
      case in the config; compared upper case, as methods are case-sensitive).
    - ``header.NAME = VALUE`` -> ``headers`` pairs ``(NAME, VALUE)``: some
      field NAME has exactly that value.
    - ``header_regex.NAME = REGEX`` -> ``header_regexes`` pairs: ``re.search``
      finds REGEX in some field NAME.
    - ``query`` -> ``query``: a list of ``name`` (the parameter is present)
      and ``name=value`` (some parameter ``name`` has exactly that value);
      names and values are compared raw, not percent-decoded.

    Raises ``ValueError``, naming the key, for a bad host or regex.
    """

    hosts: tuple[str, ...] = ()
    path_prefix: str = ""
    path_regex: str = ""
    methods: frozenset[str] = frozenset()
    headers: tuple[tuple[str, str], ...] = ()
    header_regexes: tuple[tuple[str, str], ...] = ()
    query: tuple[str, ...] = ()
    _exact_hosts: frozenset[bytes] = field(init=False, repr=False, compare=False)
    _host_suffixes: tuple[bytes, ...] = field(init=False, repr=False, compare=False)
    _prefix: bytes = field(init=False, repr=False, compare=False)
    _regex: re.Pattern[bytes] | None = field(init=False, repr=False, compare=False)
    _methods: frozenset[bytes] = field(init=False, repr=False, compare=False)
    _header_tests: tuple[_HeaderTest, ...] = field(
        init=False, repr=False, compare=False
    )
    _query_tests: tuple[tuple[bytes, bytes | None], ...] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        names = [_host_pattern(host).encode("utf-8") for host in self.hosts]
        exact = frozenset(name for name in names if not name.startswith(b"*."))
        # "*.example.com" matches any name ending in ".example.com" that has
        # something before it: one or more labels.
        suffixes = tuple(name[1:] for name in names if name.startswith(b"*."))
        header_tests: list[_HeaderTest] = [
            (name.strip().lower().encode("latin-1"), value.encode("latin-1"), None)
            for name, value in self.headers
        ]
        header_tests += [
            (
                name.strip().lower().encode("latin-1"),
                None,
                _compile(f"header_regex.{name}", pattern),
            )
            for name, pattern in self.header_regexes
        ]
        query_tests: list[tuple[bytes, bytes | None]] = []
        for condition in self.query:
            name, equals, value = condition.encode("utf-8").partition(b"=")
            if not name:
                raise ValueError(f"query condition {condition!r} has no name")
            query_tests.append((name, value if equals else None))
        regex = _compile("path_regex", self.path_regex) if self.path_regex else None
        initial: dict[str, object] = {
            "_exact_hosts": exact,
            "_host_suffixes": suffixes,
            "_prefix": self.path_prefix.encode("utf-8"),
            "_regex": regex,
            "_methods": frozenset(m.strip().upper().encode() for m in self.methods),
            "_header_tests": tuple(header_tests),
            "_query_tests": tuple(query_tests),
        }
        for attribute, setting in initial.items():
            object.__setattr__(self, attribute, setting)

    def host_matches(self, key: bytes | None) -> bool:
        """Whether a host, normalised by :func:`host_key`, meets ``hosts``."""
        if not self.hosts:
            return True
        if key is None:
            return False
        if key in self._exact_hosts:
            return True
        return any(
            key.endswith(suffix) and len(key) > len(suffix)
            for suffix in self._host_suffixes
        )

    def matches(self, head: RequestHead, host: bytes | None) -> bool:
        """Whether ``head``, for ``host`` (as received), meets every condition."""
        path, _, query = head.target.partition(b"?")
        key = host_key(host) if host is not None else None
        return self.host_matches(key) and self._request_matches(head, path, query)

    def _request_matches(self, head: RequestHead, path: bytes, query: bytes) -> bool:
        """Every condition but the host's."""
        if not path.startswith(self._prefix):
            return False
        if self._methods and head.method not in self._methods:
            return False
        if self._regex is not None and self._regex.search(path) is None:
            return False
        if self._header_tests and not _headers_meet(head, self._header_tests):
            return False
        return not self._query_tests or _query_meets(query, self._query_tests)


def _headers_meet(
    head: RequestHead,
    tests: Sequence[_HeaderTest],
) -> bool:
    """Whether, for each test, some field of that name passes it."""
    pairs = head.headers.pairs
    for wanted, value, regex in tests:
        for name, received in pairs:
            if name.lower() != wanted:
                continue
            if regex is None:
                if received == value:
                    break
            elif regex.search(received) is not None:
                break
        else:
            return False
    return True


def _query_meets(query: bytes, tests: Sequence[tuple[bytes, bytes | None]]) -> bool:
    """Whether the raw query has each parameter (with the value, if given)."""
    parameters: dict[bytes, list[bytes]] = {}
    for item in query.split(b"&"):
        name, _, value = item.partition(b"=")
        parameters.setdefault(name, []).append(value)
    for name, wanted in tests:
        values = parameters.get(name)
        if values is None or (wanted is not None and wanted not in values):
            return False
    return True


# A route as a table tries it: (match, payload, host known to pass, path
# prefix, whether the prefix is its only condition besides the host).
_Entry: TypeAlias = tuple[RouteMatch, Payload, bool, bytes, bool]


class RouteTable(Generic[Payload]):
    """
    Routes in the order they were listed; the first that matches wins.

    The payload is what the caller wants back for a route (its name, its
    frozen settings).  Routes whose only host conditions are exact names are
    indexed by name, so a request only tries the routes that can serve its
    host.
    """

    __slots__ = ("_by_host", "_default", "_listed")

    def __init__(self, routes: Iterable[tuple[RouteMatch, Payload]]) -> None:
        listed = list(routes)
        self._listed = tuple(payload for _, payload in listed)
        indexed: dict[bytes, list[int]] = {}
        unindexed: set[int] = set()
        for index, (route, _) in enumerate(listed):
            if route.hosts and not route._host_suffixes:
                for name in route._exact_hosts:
                    indexed.setdefault(name, []).append(index)
            else:
                unindexed.add(index)

        def candidates(
            indices: Iterable[int], host_known: bool
        ) -> tuple[_Entry[Payload], ...]:
            # host_known: the host already passed this route's host test (or
            # the route has none); prefix_only: the path prefix is the only
            # other condition, tested inline.
            entries = []
            for i in sorted(indices):
                route, payload = listed[i]
                prefix_only = not (
                    route._methods
                    or route._regex is not None
                    or route._header_tests
                    or route._query_tests
                )
                known = (host_known and i not in unindexed) or not route.hosts
                entries.append((route, payload, known, route._prefix, prefix_only))
            return tuple(entries)

        self._by_host = {
            name: candidates({*indices, *unindexed}, True)
            for name, indices in indexed.items()
        }
        self._default = candidates(unindexed, False)

    def payloads(self) -> tuple[Payload, ...]:
        """Every route's payload, in the listed order."""
        return self._listed

    def match(self, head: RequestHead, host: bytes | None) -> Payload | None:
        """
        The payload of the first route that ``head`` matches, or ``None``.

        ``host`` is the request's host as received, from
        :func:`effective_host_and_target` (``None`` when there is none: routes
        with host conditions then do not match).
        """
        key = host_key(host) if host is not None else None
        routes = self._default
        if key is not None:
            routes = self._by_host.get(key, routes)
        path, _, query = head.target.partition(b"?")
        for route, payload, host_known, prefix, prefix_only in routes:
            if (
                path.startswith(prefix)
                and (host_known or route.host_matches(key))
                and (prefix_only or route._request_matches(head, path, query))
            ):
                return payload
        return None
