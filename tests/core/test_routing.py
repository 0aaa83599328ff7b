"""Tests for edgeproxy.core.routing: which route serves a request."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from edgeproxy.core.message import HeaderPair, Headers, RequestHead
from edgeproxy.core.routing import (
    RouteMatch,
    RouteTable,
    effective_host_and_target,
    host_key,
)

_A = [(b"Host", b"a.example")]


@pytest.mark.parametrize(
    ("method", "target", "headers", "version", "expected"),
    [
        (b"GET", b"/x?y=1", _A, b"1.1", (b"a.example", b"/x?y=1")),
        (
            b"GET",
            b"/",
            [(b"host", b"A.Example:8080")],
            b"1.1",
            (b"A.Example:8080", b"/"),
        ),
        (b"GET", b"//x", _A, b"1.1", (b"a.example", b"//x")),
        (b"GET", b"/", [], b"1.0", (None, b"/")),
        (b"GET", b"/", [(b"Host", b"")], b"1.1", (None, b"/")),
        (b"GET", b"/", [(b"Host", b"[::1]:80")], b"1.1", (b"[::1]:80", b"/")),
        (b"OPTIONS", b"*", _A, b"1.1", (b"a.example", b"*")),
        (b"GET", b"http://b.example/x", _A, b"1.1", (b"b.example", b"/x")),
        (
            b"GET",
            b"HTTPS://B.example:8443/x?q",
            _A,
            b"1.1",
            (b"B.example:8443", b"/x?q"),
        ),
        (b"GET", b"http://b.example", _A, b"1.1", (b"b.example", b"/")),
        (b"GET", b"http://b.example?q=1", _A, b"1.1", (b"b.example", b"/?q=1")),
        (b"OPTIONS", b"http://b.example", _A, b"1.1", (b"b.example", b"*")),
        (b"OPTIONS", b"http://b.example/", _A, b"1.1", (b"b.example", b"/")),
        (b"GET", b"http://[::1]:8080/x", _A, b"1.1", (b"[::1]:8080", b"/x")),
        (b"GET", b"http://b.example/x", [], b"1.1", (b"b.example", b"/x")),
        (
            b"GET",
            b"http://b.example/%2F/../x",
            _A,
            b"1.1",
            (b"b.example", b"/%2F/../x"),
        ),
    ],
)
def test_effective_host_and_target(
    method: bytes,
    target: bytes,
    headers: list[HeaderPair],
    version: bytes,
    expected: tuple[bytes | None, bytes],
) -> None:
    """Origin form passes with Host; absolute form's authority wins over Host."""
    head = RequestHead(method, target, Headers(headers), version)
    assert effective_host_and_target(head) == expected


@pytest.mark.parametrize(
    ("method", "target", "headers", "message"),
    [
        (b"GET", b"*", _A, "only for OPTIONS"),
        (b"CONNECT", b"a.example:443", _A, "unsupported request target"),
        (b"GET", b"ftp://a.example/x", _A, "unsupported request target"),
        (b"GET", b"a.example/x", _A, "unsupported request target"),
        (b"GET", b"", _A, "unsupported request target"),
        (b"GET", b"http://user@a.example/x", _A, "bad authority"),
        (b"GET", b"http:///x", _A, "bad authority"),
        (b"GET", b"http://:80/x", _A, "bad authority"),
        (b"GET", b"http://a.example/x#top", _A, "fragment"),
        (b"GET", b"http://a.example/x", [*_A, *_A], "more than one Host"),
        (b"GET", b"/", [*_A, (b"HOST", b"b.example")], "more than one Host"),
        (b"GET", b"/", [(b"Host", b"a b")], "bad Host"),
        (b"GET", b"/", [(b"Host", b"a.example/x")], "bad Host"),
        (b"GET", b"/", [(b"Host", b"u@a.example")], "bad Host"),
        (b"GET", b"/", [], "needs a Host"),
    ],
)
def test_bad_target_or_host(
    method: bytes, target: bytes, headers: list[HeaderPair], message: str
) -> None:
    """Targets other than origin, absolute http(s) or OPTIONS * are refused."""
    head = RequestHead(method, target, Headers(headers))
    with pytest.raises(ValueError, match=message):
        effective_host_and_target(head)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        (b"api.example.com", b"api.example.com"),
        (b"API.Example.COM", b"api.example.com"),
        (b"api.example.com:8080", b"api.example.com"),
        (b"api.example.com.", b"api.example.com"),
        (b"api.example.com.:443", b"api.example.com"),
        (b"[::1]:80", b"[::1]"),
        (b"[2001:DB8::1]", b"[2001:db8::1]"),
        (b"10.0.0.1:9001", b"10.0.0.1"),
    ],
)
def test_host_key(host: bytes, expected: bytes) -> None:
    """Hosts compare without case, port or trailing dot."""
    assert host_key(host) == expected


def _request(
    method: bytes = b"GET", target: bytes = b"/", headers: Sequence[HeaderPair] = ()
) -> RequestHead:
    """A request head for the tables below."""
    return RequestHead(method, target, Headers(headers))


@pytest.mark.parametrize(
    ("conditions", "head", "host", "expected"),
    [
        pytest.param({}, _request(), None, True, id="empty matches all"),
        ({"hosts": ("api.example.com",)}, _request(), b"api.example.com", True),
        ({"hosts": ("api.example.com",)}, _request(), b"API.example.com:80", True),
        ({"hosts": ("api.example.com",)}, _request(), b"api.example.com.", True),
        ({"hosts": ("API.Example.com.",)}, _request(), b"api.example.com", True),
        ({"hosts": ("api.example.com",)}, _request(), b"www.example.com", False),
        ({"hosts": ("api.example.com",)}, _request(), None, False),
        ({"hosts": ("*.example.com",)}, _request(), b"a.example.com", True),
        ({"hosts": ("*.example.com",)}, _request(), b"a.b.example.com:8443", True),
        ({"hosts": ("*.example.com",)}, _request(), b"example.com", False),
        ({"hosts": ("*.example.com",)}, _request(), b"badexample.com", False),
        ({"hosts": ("*.example.com",)}, _request(), b"a.example.com.evil", False),
        ({"hosts": ("a.test", "*.example.com")}, _request(), b"a.test", True),
        ({"hosts": ("[::1]",)}, _request(), b"[::1]:8080", True),
        ({"path_prefix": "/v1/"}, _request(target=b"/v1/users"), None, True),
        ({"path_prefix": "/v1/"}, _request(target=b"/v1"), None, False),
        ({"path_prefix": "/v1/"}, _request(target=b"/V1/users"), None, False),
        ({"path_prefix": "/v1/"}, _request(target=b"/%761/users"), None, False),
        ({"path_prefix": "/v1/"}, _request(target=b"/x?/v1/"), None, False),
        ({"path_prefix": "/a/"}, _request(target=b"/a%2Fb"), None, False),
        ({"path_regex": r"^/u/(\d+)$"}, _request(target=b"/u/42?x=1"), None, True),
        ({"path_regex": r"^/u/(\d+)$"}, _request(target=b"/u/4x"), None, False),
        ({"path_regex": r"\.php"}, _request(target=b"/a/b.php/c"), None, True),
        ({"methods": frozenset({"get", "HEAD"})}, _request(), None, True),
        ({"methods": frozenset({"get", "HEAD"})}, _request(b"HEAD"), None, True),
        ({"methods": frozenset({"GET"})}, _request(b"POST"), None, False),
        ({"methods": frozenset({"GET"})}, _request(b"get"), None, False),
        (
            {"headers": (("X-Tenant", "acme"),)},
            _request(headers=[(b"x-tenant", b"acme")]),
            None,
            True,
        ),
        (
            {"headers": (("X-Tenant", "acme"),)},
            _request(headers=[(b"X-Tenant", b"other"), (b"X-Tenant", b"acme")]),
            None,
            True,
        ),
        (
            {"headers": (("X-Tenant", "acme"),)},
            _request(headers=[(b"X-Tenant", b"Acme")]),
            None,
            False,
        ),
        ({"headers": (("X-Tenant", "acme"),)}, _request(), None, False),
        (
            {"header_regexes": (("User-Agent", r"^curl/"),)},
            _request(headers=[(b"User-Agent", b"curl/8.5")]),
            None,
            True,
        ),
        (
            {"header_regexes": (("User-Agent", r"^curl/"),)},
            _request(headers=[(b"User-Agent", b"not curl/8.5")]),
            None,
            False,
        ),
        ({"query": ("debug",)}, _request(target=b"/?debug"), None, True),
        ({"query": ("debug",)}, _request(target=b"/?a=1&debug=0"), None, True),
        ({"query": ("debug",)}, _request(target=b"/?debugger=1"), None, False),
        ({"query": ("debug",)}, _request(target=b"/debug"), None, False),
        ({"query": ("v=2",)}, _request(target=b"/?v=1&v=2"), None, True),
        ({"query": ("v=2",)}, _request(target=b"/?v=20"), None, False),
        ({"query": ("v=",)}, _request(target=b"/?v="), None, True),
        ({"query": ("v=",)}, _request(target=b"/?v"), None, True),
        ({"query": ("q=a b",)}, _request(target=b"/?q=a%20b"), None, False),
        pytest.param(
            {
                "hosts": ("*.example.com",),
                "path_prefix": "/api/",
                "methods": frozenset({"POST"}),
                "headers": (("X-Env", "prod"),),
                "query": ("v=2",),
            },
            _request(b"POST", b"/api/x?v=2", [(b"X-Env", b"prod")]),
            b"a.example.com",
            True,
            id="all conditions met",
        ),
        pytest.param(
            {
                "hosts": ("*.example.com",),
                "path_prefix": "/api/",
                "methods": frozenset({"POST"}),
                "headers": (("X-Env", "prod"),),
                "query": ("v=2",),
            },
            _request(b"POST", b"/api/x?v=2", [(b"X-Env", b"test")]),
            b"a.example.com",
            False,
            id="one condition unmet",
        ),
    ],
)
def test_route_match(
    conditions: dict[str, Any], head: RequestHead, host: bytes | None, expected: bool
) -> None:
    """Every condition must hold; paths, values and queries compare as received."""
    route = RouteMatch(**conditions)
    assert route.matches(head, host) is expected
    assert RouteTable([(route, "hit")]).match(head, host) == (
        "hit" if expected else None
    )


@pytest.mark.parametrize(
    ("conditions", "message"),
    [
        ({"hosts": ("",)}, "host '' must be"),
        ({"hosts": ("*",)}, "host '\\*' must be"),
        ({"hosts": ("a.*.example.com",)}, "must be a name"),
        ({"hosts": ("example.com/x",)}, "must be a name"),
        ({"hosts": ("example.com:8080",)}, "must not have a port"),
        ({"hosts": ("[::1]:80",)}, "must not have a port"),
        ({"hosts": ("exa mple.com",)}, "characters a host cannot have"),
        ({"path_regex": "^/(x"}, "path_regex '\\^/\\(x' is not a valid regex"),
        ({"header_regexes": (("X-A", "[a"),)}, "header_regex.X-A '\\[a'"),
        ({"query": ("=x",)}, "query condition '=x' has no name"),
    ],
)
def test_bad_route_match(conditions: dict[str, Any], message: str) -> None:
    """Bad conditions raise ValueError naming the key and value."""
    with pytest.raises(ValueError, match=message):
        RouteMatch(**conditions)


_TABLE = RouteTable(
    [
        (RouteMatch(path_prefix="/health"), "health"),
        (RouteMatch(hosts=("api.example.com",), path_prefix="/v1/"), "api-v1"),
        (RouteMatch(hosts=("*.example.com",), path_prefix="/v1/"), "wild-v1"),
        (RouteMatch(hosts=("api.example.com", "api.example.org")), "api"),
        (RouteMatch(hosts=("www.example.com",), methods=frozenset({"GET"})), "www"),
        (RouteMatch(path_prefix="/static/"), "static"),
    ]
)


@pytest.mark.parametrize(
    ("method", "target", "host", "expected"),
    [
        (b"GET", b"/health", b"api.example.com", "health"),
        (b"GET", b"/v1/users", b"api.example.com", "api-v1"),
        (b"GET", b"/v1/users", b"API.EXAMPLE.COM:443", "api-v1"),
        (b"GET", b"/v1/users", b"shop.example.com", "wild-v1"),
        (b"GET", b"/v2/users", b"api.example.com", "api"),
        (b"GET", b"/v2/users", b"api.example.org", "api"),
        (b"GET", b"/v1/users", b"api.example.org", "api"),
        (b"GET", b"/", b"www.example.com", "www"),
        (b"POST", b"/static/a.css", b"www.example.com", "static"),
        (b"POST", b"/", b"www.example.com", None),
        (b"GET", b"/static/a.css", None, "static"),
        (b"GET", b"/v1/users", None, None),
        (b"GET", b"/other", b"unknown.test", None),
    ],
)
def test_first_listed_route_wins(
    method: bytes, target: bytes, host: bytes | None, expected: str | None
) -> None:
    """The first route in listed order that matches is chosen, whatever the index."""
    assert _TABLE.match(_request(method, target), host) == expected


def test_empty_table_matches_nothing() -> None:
    """A table without routes answers None."""
    assert RouteTable[str]([]).match(_request(), b"a.example") is None


def test_specs_compare_by_value() -> None:
    """Equal conditions make equal, hashable specs (reload compares them)."""
    first = RouteMatch(hosts=("a.example",), path_regex="^/x", query=("v=1",))
    second = RouteMatch(hosts=("a.example",), path_regex="^/x", query=("v=1",))
    assert first == second
    assert hash(first) == hash(second)
    assert first != RouteMatch(hosts=("a.example",), path_regex="^/y")
