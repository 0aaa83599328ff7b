"""Tests for edgeproxy.config.loader: INI text to validated objects."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from edgeproxy.config.loader import load_config, parse_config
from edgeproxy.errors import ConfigError

GOOD = """
[edgeproxy]
admin = tcp:0:interface=127.0.0.1

[listener:web]
protocol = http
endpoint = tcp:0:interface=127.0.0.1
routes = api, site

[route:api]
host = api.example.com, *.api.example.com
path_prefix = /v1/
upstream = users
filters = tidy

[route:site]
upstream = users

[upstream:users]
servers = 127.0.0.1:9001 weight=3, 127.0.0.1:9002
balance = round_robin
health = tcp
health.interval = 5s
fail_timeout = 30s

[filter:tidy]
plugin = headers
response.remove = Server

[listener:db]
protocol = tcp
endpoint = tcp:0
upstream = users
"""


def problems(text: str) -> list[tuple[str, str, str]]:
    """Return (section, key, message) for each problem in config ``text``."""
    with pytest.raises(ConfigError) as caught:
        parse_config(textwrap.dedent(text), "conf.ini")
    return [(p.section, p.key, p.message) for p in caught.value.problems]


def test_good_config() -> None:
    """A valid file becomes typed, frozen objects, keys mapped to fields."""
    config = parse_config(GOOD, "conf.ini")
    assert config.settings.admin == "tcp:0:interface=127.0.0.1"
    web = config.listeners["web"]
    assert (web.protocol, web.routes) == ("http", ("api", "site"))
    api = config.routes["api"]
    assert api.host == ("api.example.com", "*.api.example.com")
    assert api.filters == ("tidy",)
    users = config.upstreams["users"]
    assert users.fail_timeout == 30.0
    assert users.max_fails == 1
    assert dict(users.health_options) == {"interval": "5s"}
    assert dict(config.filters["tidy"].options) == {"response.remove": "Server"}
    assert config.listeners["db"].upstream == "users"
    with pytest.raises(AttributeError):
        users.max_fails = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[listener:web]\nprotocol = http\nendpoint = tcp:8080\nroutes = r\n"
            "[route:r]\nupstream = u\npath_prefx = /\n[upstream:u]\nservers = a:1\n",
            ("route:r", "path_prefx", "did you mean 'path_prefix'?"),
        ),
        (
            "[upstream:u]\nservers = a:1\nfail_timeout = 30x\n",
            ("upstream:u", "fail_timeout", "'30x' is not a duration"),
        ),
        (
            "[upstream:u]\nservers = a:1\nmax_fails = -1\n",
            ("upstream:u", "max_fails", "less than 0"),
        ),
        (
            "[listener:web]\nprotocol = http\nendpoint = tcp:notaport\nroutes = r\n"
            "[route:r]\nupstream = u\n[upstream:u]\nservers = a:1\n",
            ("listener:web", "endpoint", "is not a server endpoint"),
        ),
        (
            "[listener:web]\nprotocol = http\nendpoint = nosuchtype:1\nroutes = r\n"
            "[route:r]\nupstream = u\n[upstream:u]\nservers = a:1\n",
            ("listener:web", "endpoint", "is not a server endpoint"),
        ),
        (
            "[listener:web]\nprotocol = udp\nendpoint = tcp:1\n",
            ("listener:web", "protocol", "is not a protocol"),
        ),
        (
            "[listener:web]\nprotocol = http\nendpoint = tcp:1\nroutes = missing\n",
            ("listener:web", "routes", "no [route:missing] section"),
        ),
        (
            "[route:r]\nupstream = gone\n",
            ("route:r", "upstream", "no [upstream:gone] section"),
        ),
        ("[route:r]\npath_prefix = /\n", ("route:r", "upstream", "required")),
        ("[upstream:u]\nbalance = x\n", ("upstream:u", "servers", "required")),
        (
            "[edgeproxy]\naccess_log_format = xml\n",
            ("edgeproxy", "access_log_format", "is not an access log format"),
        ),
        ("[cluster:x]\na = 1\n", ("cluster:x", "", "unknown section")),
        ("[DEFAULT]\na = 1\n", ("DEFAULT", "", "unknown section")),
        ("[listener]\nprotocol = http\n", ("listener", "", "unknown section")),
        ("[edgeproxy:x]\n", ("edgeproxy:x", "", "unknown section")),
        ("[route:a b]\nupstream = u\n", ("route:a b", "", "not a valid name")),
        (
            "[upstream:u]\nservers = a:1\nhealth.path = /h\n",
            ("upstream:u", "health.path", "no health check"),
        ),
        (
            "[listener:t]\nprotocol = tcp\nendpoint = tcp:1\n",
            ("listener:t", "upstream", "a tcp listener needs an upstream"),
        ),
        (
            "[listener:w]\nprotocol = http\nendpoint = tcp:1\n",
            ("listener:w", "routes", "an http listener needs routes"),
        ),
        (
            "[filter:f]\nrequest.set = X: y\n",
            ("filter:f", "plugin", "required"),
        ),
        (
            "[route:r]\nupstream = u\nupstream = v\n",
            ("route:r", "upstream", "appears twice"),
        ),
        ("[route:r]\n[route:r]\n", ("route:r", "", "appears twice")),
        ("just text\n", ("", "", "not a valid INI file")),
    ],
)
def test_problem_names_section_and_key(
    text: str, expected: tuple[str, str, str]
) -> None:
    """Each kind of mistake is reported with its section, key and a clear reason."""
    section, key, fragment = expected
    found = problems(text)
    assert any(
        (s, k) == (section, key) and fragment in message for s, k, message in found
    ), found


def test_every_problem_is_reported_together() -> None:
    """Problems across sections are gathered, not stopped at the first."""
    found = problems(
        """
        [listener:a]
        protocol = http
        endpoint = tcp:1
        routes = r
        [listener:b]
        protocol = http
        endpoint = tcp:1
        routes = r
        [route:r]
        upstream = u
        colour = blue
        [upstream:u]
        servers = a:1
        fail_timeout = soon
        """
    )
    assert {(s, k) for s, k, _ in found} == {
        ("listener:b", "endpoint"),
        ("route:r", "colour"),
        ("upstream:u", "fail_timeout"),
    }


def test_invalid_section_is_not_also_reported_missing() -> None:
    """A reference to a section that has its own problem does not add noise."""
    found = problems(
        "[route:r]\nupstream = u\n[upstream:u]\nservers = a:1\nmax_fails = x\n"
    )
    assert [(s, k) for s, k, _ in found] == [("upstream:u", "max_fails")]


def test_problem_text_names_file(tmp_path: Path) -> None:
    """The message of a config error starts with the file, section and key."""
    path = tmp_path / "broken.ini"
    path.write_text("[upstream:u]\nservers = a:1\nfail_timeout = 3x\n")
    with pytest.raises(ConfigError) as caught:
        load_config(str(path))
    assert str(caught.value) == (
        f"{path}: [upstream:u] fail_timeout: '3x' is not a duration "
        "(write e.g. 250ms, 30s, 5m, 1h)"
    )


def test_unreadable_file(tmp_path: Path) -> None:
    """A missing file is a config error, not a traceback."""
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(str(tmp_path / "absent.ini"))


def test_comments_after_values() -> None:
    """A comment after white space ends the value; one glued to it does not."""
    config = parse_config(
        "[upstream:u]\nservers = a:1  # the only one\nmax_fails = 3 ; enough\n"
        "[route:r]\nupstream = u\npath_regex = ^/a#b$\n"
    )
    assert config.upstreams["u"].servers[0].key == "a:1"
    assert config.upstreams["u"].max_fails == 3
    assert config.routes["r"].path_regex == "^/a#b$"


def test_unparsable_servers_is_not_also_missing() -> None:
    """A key with a bad value is reported once, not also as a missing key."""
    found = problems("[upstream:u]\nservers = a:0\n")
    assert [(s, k) for s, k, _ in found] == [("upstream:u", "servers")]


@pytest.mark.parametrize("key", ["fail_timeout", "health_interval", "health_timeout"])
def test_zero_durations_refused_where_they_cannot_work(key: str) -> None:
    """Windows and intervals of 0 are config errors, not crashes at startup."""
    found = problems(f"[upstream:u]\nservers = a:1\n{key} = 0s\n")
    assert [(s, k) for s, k, _ in found] == [("upstream:u", key)]


def test_allow_and_deny_are_for_tcp_listeners() -> None:
    """An http listener refuses allow/deny (it would not enforce them), with a hint."""
    found = problems(
        "[listener:w]\nprotocol = http\nendpoint = tcp:1\nroutes = r\n"
        "allow = 10.0.0.0/8\n"
        "[route:r]\nupstream = u\n[upstream:u]\nservers = a:1\n"
    )
    assert [(s, k) for s, k, _ in found] == [("listener:w", "allow")]
    assert "ip_acl" in found[0][2]
