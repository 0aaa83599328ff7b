"""Tests for edgeproxy.core.rewrite: target rewrites, redirects, Location mapping."""

from __future__ import annotations

import re
from typing import Any

import pytest

from edgeproxy.core.message import HeaderPair, Headers, RequestHead
from edgeproxy.core.rewrite import (
    LocationRewrite,
    Redirect,
    Rewrite,
    Template,
    redirect_response,
    rewrite_locations,
    rewrite_target,
)


@pytest.mark.parametrize(
    ("pattern", "text", "subject", "expected"),
    [
        (r"^/(\w+)/(\w+)$", "/$2/$1", b"/a/b", b"/b/a"),
        (r"^/(?P<id>\d+)$", "/item/${id}", b"/42", b"/item/42"),
        (r"^/(\d+)$", "/x${1}0", b"/7", b"/x70"),
        (r"^/(a)(b)?$", "/[$1][$2]", b"/a", b"/[a][]"),
        (r"^/(.*)$", "/cost$$1/$0", b"/q", b"/cost$1//q"),
        (r"^/" + "(x)" * 10 + "$", "/${10}", b"/" + b"x" * 10, b"/x"),
        (r"^/$", "/plain", b"/", b"/plain"),
    ],
)
def test_template_expands(
    pattern: str, text: str, subject: bytes, expected: bytes
) -> None:
    """$N, ${N}, ${name}, $0 and $$ expand; unset captures are empty."""
    regex = re.compile(pattern.encode())
    assert Template(text, regex).expand(regex.search(subject)) == expected


@pytest.mark.parametrize(
    ("pattern", "text", "message"),
    [
        (r"^/(\w+)$", "/$2", r"refers to \$\{2\}"),
        (r"^/(\w+)$", "/${name}", r"refers to \$\{name\}"),
        (r"^/(?P<id>\d+)$", "/${other}", r"refers to \$\{other\}"),
        (r"^/(\w+)$", "/$x", "must be followed by"),
        (r"^/(\w+)$", "/${}", "must be followed by"),
        (r"^/(\w+)$", "/a$", "must be followed by"),
        (r"^/(\w+)$", "/$x/$1", "must be followed by"),
        (None, "/$1", "there is no regex"),
    ],
)
def test_bad_template(pattern: str | None, text: str, message: str) -> None:
    """Unknown captures and stray dollars are configuration errors."""
    regex = None if pattern is None else re.compile(pattern.encode())
    with pytest.raises(ValueError, match=message):
        Template(text, regex)


@pytest.mark.parametrize(
    ("config", "target", "expected"),
    [
        ({"rewrite": r"^/v1/(.*)$ /$1"}, b"/v1/users", b"/users"),
        ({"rewrite": r"^/v1/(.*)$ /$1"}, b"/v1/users?page=2", b"/users?page=2"),
        ({"rewrite": r"^/v1/(.*)$ /$1"}, b"/v2/users?page=2", b"/v2/users?page=2"),
        ({"rewrite": r"^/v1/(.*)$ /$1"}, b"/v1/", b"/"),
        ({"rewrite": r"^/v1/(.*)$ $1"}, b"/v1/users", b"/users"),
        ({"rewrite": r"^/v1/(.*)$ /$1"}, b"/v1/a%2Fb", b"/a%2Fb"),
        ({"rewrite": r"/old/ /new/"}, b"/x/old/y", b"/new/"),
        ({"rewrite": r"^/u/(\d+)$ /user?id=$1"}, b"/u/7", b"/user?id=7"),
        ({"rewrite": r"^/u/(\d+)$ /user?id=$1"}, b"/u/7?x=1", b"/user?id=7&x=1"),
        ({"rewrite": r"^/u/(\d+)$ /user?id=$1"}, b"/u/7?", b"/user?id=7"),
        ({"rewrite": r"^/u/(\d+)$ /user/$1?"}, b"/u/7?x=1", b"/user/7"),
        ({"rewrite": r"^/a$ /b"}, b"/a?", b"/b?"),
        ({"rewrite": r"^/s\?q=(\w+)$ /search/$1"}, b"/s?q=cats", b"/search/cats"),
        ({"rewrite": r"^/s\?q=(\w+)$ /search/$1"}, b"/s?q=c-t", b"/s?q=c-t"),
        ({"rewrite": r"^/(a b)$ /x"}, b"/a b", b"/x"),
        ({"strip_prefix": "/api"}, b"/api/users?x", b"/users?x"),
        ({"strip_prefix": "/api"}, b"/api", b"/"),
        ({"strip_prefix": "/api"}, b"/apix", b"/x"),
        ({"strip_prefix": "/api/"}, b"/api/users", b"/users"),
        ({"strip_prefix": "/api/"}, b"/api", b"/api"),
        ({"strip_prefix": "/api"}, b"/other", b"/other"),
        ({"add_prefix": "/v2"}, b"/users?x=1", b"/v2/users?x=1"),
        ({"add_prefix": "/v2/"}, b"/users", b"/v2/users"),
        ({"add_prefix": "/v2/"}, b"/", b"/v2/"),
        ({"add_prefix": "/"}, b"/users", b"/users"),
        (
            {"strip_prefix": "/api/", "add_prefix": "/internal"},
            b"/api/x",
            b"/internal/x",
        ),
        (
            {"rewrite": r"^/old/(.*)$ /new/$1", "strip_prefix": "/new"},
            b"/old/a?b",
            b"/a?b",
        ),
        ({"rewrite": r"^/(.*)$ /$1", "add_prefix": "/p"}, b"/x", b"/p/x"),
        ({"strip_prefix": "/api"}, b"*", b"*"),
        ({}, b"/same?x", b"/same?x"),
    ],
)
def test_rewrite_target(config: dict[str, str], target: bytes, expected: bytes) -> None:
    """Regex, then strip_prefix, then add_prefix; the result starts with /."""
    assert rewrite_target(Rewrite.from_config(**config), target) == expected


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"rewrite": "/only-one-word"}, "must be a regex and a replacement"),
        ({"rewrite": "^/(x $1"}, r"rewrite '\^/\(x' is not a valid regex"),
        ({"rewrite": "^/x$ /$1"}, r"refers to \$\{1\}"),
        ({"strip_prefix": "api"}, "strip_prefix 'api' must start with '/'"),
        ({"add_prefix": "v2"}, "add_prefix 'v2' must start with '/'"),
    ],
)
def test_bad_rewrite(config: dict[str, str], message: str) -> None:
    """Bad rewrite settings raise ValueError naming the key."""
    with pytest.raises(ValueError, match=message):
        Rewrite.from_config(**config)


def test_rewrite_without_replacement() -> None:
    """A regex needs a replacement."""
    with pytest.raises(ValueError, match="needs a replacement"):
        Rewrite(pattern="^/x")


def test_rewrite_exposes_regex() -> None:
    """The compiled regex is available for a redirect's captures."""
    regex = Rewrite.from_config(r"^/v1/(.*)$ /$1").regex()
    assert regex is not None
    assert regex.pattern == rb"^/v1/(.*)$"
    assert Rewrite().regex() is None


@pytest.mark.parametrize(
    ("config", "target", "host", "status", "location"),
    [
        (
            {"location": "https://new.example/$1", "pattern": r"^/old/(.*)$"},
            b"/old/page",
            b"a.example",
            302,
            b"https://new.example/page",
        ),
        (
            {"location": "/new/$1", "pattern": r"^/old/(.*)$", "status": 301},
            b"/old/page?x=1",
            b"a.example",
            301,
            b"/new/page?x=1",
        ),
        (
            {"location": "/new/$1?", "pattern": r"^/old/(.*)$", "status": 308},
            b"/old/page?x=1",
            None,
            308,
            b"/new/page",
        ),
        (
            {"location": "/new/$1", "pattern": r"^/old/(.*)$", "status": 307},
            b"/elsewhere?x=1",
            None,
            307,
            b"/new/?x=1",
        ),
        (
            {"location": "https://moved.example/"},
            b"/anything",
            b"a.example",
            302,
            b"https://moved.example/",
        ),
        (
            {"location": "/find/$1", "pattern": r"^/s\?q=(\w+)"},
            b"/s?q=cats&page=2",
            None,
            302,
            b"/find/cats",
        ),
        (
            {"https": True, "status": 301},
            b"/a/b?c=1",
            b"A.example:80",
            301,
            b"https://a.example/a/b?c=1",
        ),
        (
            {"https": True, "https_port": 8443},
            b"/a",
            b"a.example:8080",
            302,
            b"https://a.example:8443/a",
        ),
        (
            {"https": True, "https_port": 443},
            b"/a",
            b"[::1]:8080",
            302,
            b"https://[::1]/a",
        ),
        (
            {"https": True},
            b"*",
            b"a.example",
            302,
            b"https://a.example/",
        ),
    ],
)
def test_redirect_response(
    config: dict[str, Any],
    target: bytes,
    host: bytes | None,
    status: int,
    location: bytes,
) -> None:
    """A redirect answers with its status, Location and a short body naming it."""
    response = redirect_response(Redirect(**config), RequestHead(b"GET", target), host)
    assert response.status == status
    assert response.headers.get_all(b"Location") == [location]
    assert response.body == b"Redirecting to " + location + b"\n"


def test_https_redirect_without_host() -> None:
    """An https redirect cannot be made without a host: the answer is a 400."""
    response = redirect_response(Redirect(https=True), RequestHead(b"GET", b"/"), None)
    assert response.status == 400
    assert b"Location" not in response.headers


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"location": "/x", "status": 303}, "redirect_status 303 must be one of"),
        ({"location": "/x", "status": 200}, "redirect_status 200 must be one of"),
        ({}, "exactly one of redirect, https_redirect"),
        ({"location": "/x", "https": True}, "exactly one of redirect, https_redirect"),
        ({"https": True, "https_port": 0}, "https_port 0 is not a port"),
        ({"https": True, "https_port": 70000}, "https_port 70000 is not a port"),
        ({"location": "/$1"}, "there is no regex"),
        ({"location": "/$2", "pattern": "^/(x)"}, r"refers to \$\{2\}"),
        ({"location": "/x", "pattern": "(("}, "regex '\\(\\(' is not a valid regex"),
    ],
)
def test_bad_redirect(config: dict[str, Any], message: str) -> None:
    """Bad redirect settings raise ValueError saying which."""
    with pytest.raises(ValueError, match=message):
        Redirect(**config)


_UPSTREAM = [b"10.0.0.1:9001", b"users.internal"]


@pytest.mark.parametrize(
    ("config", "received", "expected"),
    [
        pytest.param(
            {},
            [(b"Location", b"http://10.0.0.1:9001/x?y=1")],
            [(b"Location", b"https://api.example.com/x?y=1")],
            id="server address becomes the public base",
        ),
        pytest.param(
            {},
            [(b"location", b"HTTP://USERS.internal:80/a#frag")],
            [(b"location", b"https://api.example.com/a#frag")],
            id="host name, case and default port",
        ),
        pytest.param(
            {},
            [(b"Location", b"https://users.internal:443")],
            [(b"Location", b"https://api.example.com/")],
            id="https default port, empty path",
        ),
        pytest.param(
            {},
            [(b"Location", b"http://users.internal?x")],
            [(b"Location", b"https://api.example.com/?x")],
            id="query without path",
        ),
        pytest.param(
            {},
            [(b"Location", b"//10.0.0.1:9001/x")],
            [(b"Location", b"https://api.example.com/x")],
            id="network-path reference",
        ),
        pytest.param(
            {},
            [(b"Location", b"http://10.0.0.1:9002/x")],
            [(b"Location", b"http://10.0.0.1:9002/x")],
            id="other port left alone",
        ),
        pytest.param(
            {},
            [(b"Location", b"https://elsewhere.example/x")],
            [(b"Location", b"https://elsewhere.example/x")],
            id="foreign URL left alone",
        ),
        pytest.param(
            {},
            [(b"Location", b"mailto:a@users.internal")],
            [(b"Location", b"mailto:a@users.internal")],
            id="other scheme left alone",
        ),
        pytest.param(
            {"upstream_hosts": ("backend.local:8080",)},
            [(b"Location", b"http://backend.local:8080/z")],
            [(b"Location", b"https://api.example.com/z")],
            id="configured upstream host",
        ),
        pytest.param(
            {"strip_prefix": "/api/"},
            [(b"Location", b"http://10.0.0.1:9001/x")],
            [(b"Location", b"https://api.example.com/api/x")],
            id="stripped prefix put back",
        ),
        pytest.param(
            {"strip_prefix": "/api"},
            [(b"Location", b"/x"), (b"Content-Location", b"/")],
            [(b"Location", b"/api/x"), (b"Content-Location", b"/api/")],
            id="path gets the prefix mapping only",
        ),
        pytest.param(
            {"add_prefix": "/internal", "strip_prefix": "/api"},
            [(b"Location", b"/internal/x?q"), (b"Location", b"/internal")],
            [(b"Location", b"/api/x?q"), (b"Location", b"/api/")],
            id="added prefix removed, stripped put back",
        ),
        pytest.param(
            {"add_prefix": "/internal", "strip_prefix": "/api"},
            [(b"Location", b"/internalx"), (b"Location", b"/other")],
            [(b"Location", b"/internalx"), (b"Location", b"/other")],
            id="path without the added prefix left alone",
        ),
        pytest.param(
            {"strip_prefix": "/api"},
            [(b"Location", b"x/y"), (b"Location", b"../y"), (b"Location", b"?q")],
            [(b"Location", b"x/y"), (b"Location", b"../y"), (b"Location", b"?q")],
            id="relative references left alone",
        ),
        pytest.param(
            {},
            [(b"Refresh", b"5; url=http://10.0.0.1:9001/next")],
            [(b"Refresh", b"5; url=https://api.example.com/next")],
            id="Refresh URL",
        ),
        pytest.param(
            {"strip_prefix": "/api"},
            [(b"Refresh", b"0;URL='http://users.internal/n'"), (b"Refresh", b"3, /m")],
            [
                (b"Refresh", b"0;URL='https://api.example.com/api/n'"),
                (b"Refresh", b"3, /api/m"),
            ],
            id="Refresh with quotes, case and comma",
        ),
        pytest.param(
            {},
            [(b"Refresh", b"5"), (b"Refresh", b"soon")],
            [(b"Refresh", b"5"), (b"Refresh", b"soon")],
            id="Refresh without URL left alone",
        ),
        pytest.param(
            {"enabled": False, "strip_prefix": "/api"},
            [(b"Location", b"http://10.0.0.1:9001/x")],
            [(b"Location", b"http://10.0.0.1:9001/x")],
            id="disabled",
        ),
        pytest.param(
            {},
            [(b"Link", b"<http://10.0.0.1:9001/x>"), (b"Set-Cookie", b"a=1")],
            [(b"Link", b"<http://10.0.0.1:9001/x>"), (b"Set-Cookie", b"a=1")],
            id="other fields untouched",
        ),
    ],
)
def test_rewrite_locations(
    config: dict[str, Any], received: list[HeaderPair], expected: list[HeaderPair]
) -> None:
    """The upstream's URLs in Location-like fields become public ones."""
    headers = Headers(received)
    result = rewrite_locations(
        headers,
        LocationRewrite(**config),
        upstream_authorities=_UPSTREAM,
        public_scheme=b"https",
        public_host=b"api.example.com",
    )
    assert result.pairs == expected
    assert headers.pairs == received, "the given headers must not change"


def test_rewrite_locations_without_public_host() -> None:
    """Without a public host, mapped URLs become paths the client resolves."""
    result = rewrite_locations(
        Headers([(b"Location", b"http://users.internal/x")]),
        LocationRewrite(strip_prefix="/api"),
        upstream_authorities=_UPSTREAM,
        public_scheme=b"http",
        public_host=None,
    )
    assert result.pairs == [(b"Location", b"/api/x")]


def test_unchanged_headers_are_returned_as_they_are() -> None:
    """When nothing maps, the same Headers object comes back (no copy)."""
    headers = Headers([(b"Location", b"https://elsewhere.example/")])
    result = rewrite_locations(
        headers,
        LocationRewrite(),
        upstream_authorities=_UPSTREAM,
        public_scheme=b"https",
        public_host=b"api.example.com",
    )
    assert result is headers


def test_bad_location_rewrite() -> None:
    """Upstream hosts are host[:port], without scheme or path."""
    with pytest.raises(ValueError, match="location_rewrite_hosts"):
        LocationRewrite(upstream_hosts=("http://backend/",))
