"""Tests for edgeproxy.upstream.server_list: the ``servers`` syntax."""

from __future__ import annotations

import pytest

from edgeproxy.upstream.server_list import ServerSpec, parse_servers


def test_parses_the_documented_example() -> None:
    """Every address form and parameter of the documented example is understood."""
    specs, problems = parse_servers(
        "10.0.0.1:9001 weight=3, 10.0.0.2:9001, 10.0.0.3:9001 backup, "
        "https://api.internal:443 max_conns=100 server_name=api.internal, "
        "[::1]:9000 down",
        allow_tls=True,
    )
    assert problems == ()
    assert specs == (
        ServerSpec("10.0.0.1", 9001, tls=False, weight=3),
        ServerSpec("10.0.0.2", 9001, tls=False),
        ServerSpec("10.0.0.3", 9001, tls=False, backup=True),
        ServerSpec(
            "api.internal", 443, tls=True, max_conns=100, server_name="api.internal"
        ),
        ServerSpec("::1", 9000, tls=False, down=True),
    )


def test_defaults() -> None:
    """A bare address has weight 1, no cap, no backup, not down, no server name."""
    (spec,), _ = parse_servers("db:5432", allow_tls=False)
    assert (spec.weight, spec.max_conns, spec.backup, spec.down) == (1, 0, False, False)
    assert spec.server_name is None


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("10.0.0.1:9001", "10.0.0.1:9001"),
        ("Backend.Example:80", "backend.example:80"),
        ("[::1]:9000", "[::1]:9000"),
        ("[2001:DB8:0:0::1]:443", "[2001:db8::1]:443"),
        ("https://api.internal", "api.internal:443"),
        ("HTTPS://api.internal:8443", "api.internal:8443"),
    ],
)
def test_keys_are_normalised_host_and_port(text: str, key: str) -> None:
    """A server's key is host:port, lower case, IPv6 compressed and bracketed."""
    (spec,), problems = parse_servers(text, allow_tls=True)
    assert problems == ()
    assert spec.key == key


def test_line_breaks_and_trailing_comma_are_allowed() -> None:
    """A list written one entry per line, with a trailing comma, parses."""
    specs, problems = parse_servers(
        "\n  a:1 weight=2,\n  b:2\n    backup,\n", allow_tls=False
    )
    assert problems == ()
    assert [(s.key, s.weight, s.backup) for s in specs] == [
        ("a:1", 2, False),
        ("b:2", 1, True),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "no servers are listed"),
        (" , ,", "no servers are listed"),
        ("a", "a port is needed"),
        ("a:0", "not a number from 1 to 65535"),
        ("a:65536", "not a number from 1 to 65535"),
        ("a:http", "not a number from 1 to 65535"),
        ("a:+80", "not a number from 1 to 65535"),
        (":80", "the host is missing"),
        ("bad_host!:80", "is not a host name"),
        ("-a:80", "is not a host name"),
        ("10.0.0.300:80", "is not an IPv4 address"),
        ("::1:80", "must be written in brackets"),
        ("[::1:80", "needs a closing ']'"),
        ("[::g]:80", "is not an IPv6 address"),
        ("[::1]80", "a ':' and a port must follow"),
        ("[::1]", "a port is needed"),
        ("http://a:80", "the only scheme allowed is https://"),
        ("a:80 weight=0", "weight=0 is not a whole number from 1 to 1000"),
        ("a:80 weight=1001", "weight=1001 is not a whole number from 1 to 1000"),
        ("a:80 weight=x", "weight=x is not a whole number"),
        ("a:80 weight=", "weight needs a value"),
        ("a:80 max_conns=-1", "max_conns=-1 is not a whole number 0 or more"),
        ("a:80 weight=2 weight=3", "weight is given more than once"),
        ("a:80 backup=yes", "backup takes no value"),
        ("a:80 b:81", "unknown parameter 'b:81'"),
        ("a:80 heavy", "unknown parameter 'heavy'"),
        ("a:80 server_name=a", "server_name is only for https:// servers"),
        ("https://a:443 server_name=x/y", "server_name 'x/y' is not a host name"),
        ("a:80, a:80 backup", "a:80 is listed more than once"),
        ("A:80, a:80", "a:80 is listed more than once"),
        ("https://a:80, a:80", "a:80 is listed more than once"),
    ],
)
def test_bad_lists_are_refused(text: str, expected: str) -> None:
    """Each mistake is reported with a message saying what is wrong."""
    _, problems = parse_servers(text, allow_tls=True)
    assert len(problems) == 1
    assert expected in problems[0]


def test_https_only_where_allowed() -> None:
    """A TCP upstream (allow_tls=False) refuses https:// servers."""
    specs, problems = parse_servers("https://a:443", allow_tls=False)
    assert specs == ()
    assert problems == ("'https://a:443': https:// is only for HTTP upstreams",)


def test_every_problem_is_reported_naming_its_entry() -> None:
    """All bad entries are reported together, each message naming its entry."""
    specs, problems = parse_servers(
        "good:1, a:0, b:2 weight=0 nope, good:1", allow_tls=False
    )
    assert [s.key for s in specs] == ["good:1"]
    assert problems == (
        "'a:0': port '0' is not a number from 1 to 65535",
        "'b:2 weight=0 nope': unknown parameter 'nope' (known: backup, down, "
        "max_conns, server_name, weight; entries are separated by commas)",
        "'b:2 weight=0 nope': weight=0 is not a whole number from 1 to 1000",
        "'good:1': good:1 is listed more than once",
    )
