"""Tests for edgeproxy.tap: the --check and --list-plugins commands."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from twisted.python import usage

from edgeproxy.registry import PluginInfo, PluginRegistry, discover
from edgeproxy.tap import Options, check, list_plugins

VALID = """
[listener:web]
protocol = http
endpoint = tcp:0:interface=127.0.0.1
routes = all

[route:all]
upstream = web
filters = tidy

[upstream:web]
servers = 127.0.0.1:9001

[filter:tidy]
plugin = headers
response.remove = Server
"""


def run_check(tmp_path: Path, text: str) -> tuple[int, str, str]:
    """Run --check on ``text``; return the exit code, stdout and stderr."""
    path = tmp_path / "conf.ini"
    path.write_text(text)
    out, err = io.StringIO(), io.StringIO()
    code = check(str(path), discover(), out, err)
    return code, out.getvalue(), err.getvalue()


def test_check_valid(tmp_path: Path) -> None:
    """A valid config exits 0 with a one-line summary and nothing on stderr."""
    code, out, err = run_check(tmp_path, VALID)
    assert code == 0
    assert (
        out
        == f"{tmp_path / 'conf.ini'}: OK: 1 listener, 1 route, 1 upstream, 1 filter\n"
    )
    assert err == ""


def test_check_lists_every_error(tmp_path: Path) -> None:
    """Value and plugin problems are listed together, then counted."""
    text = VALID.replace("plugin = headers", "plugin = nosuch").replace(
        "servers = 127.0.0.1:9001", "servers = 127.0.0.1:9001\nfail_timeout = 30x"
    )
    code, out, err = run_check(tmp_path, text)
    assert code == 1
    assert out == ""
    lines = err.splitlines()
    assert lines[-1].endswith("conf.ini: 2 problems found")
    assert "[upstream:web] fail_timeout: '30x' is not a duration" in lines[0]
    assert "[filter:tidy] plugin: no filter plugin is named 'nosuch'" in lines[1]


def test_check_reports_plugin_option_errors(tmp_path: Path) -> None:
    """An unknown plugin and a plugin's own option errors name section and key."""
    text = VALID.replace("response.remove = Server", "response.sett = X: 1") + (
        "\n[filter:other]\nplugin = nosuch\n"
    )
    code, _, err = run_check(tmp_path, text)
    assert code == 1
    assert "[filter:tidy] response.sett: unknown option" in err
    assert "[filter:other] plugin: no filter plugin is named 'nosuch'" in err
    assert err.splitlines()[-1].endswith("2 problems found")


def test_list_plugins() -> None:
    """Each plugin is listed with kind, name, module and description."""
    out = io.StringIO()
    assert list_plugins(discover(), out) == 0
    lines = out.getvalue().splitlines()
    [headers] = [line for line in lines if " headers " in line]
    assert headers.startswith("filter")
    assert "twisted.plugins.edgeproxy_builtins: Set, add and remove" in headers


def test_list_plugins_reports_duplicates() -> None:
    """Duplicated names are listed as errors and make the command fail."""
    factory = discover().lookup("filter", "headers").factory
    info = PluginInfo("filter", "headers", "a.mod", "x", factory)
    registry = PluginRegistry(
        [info, PluginInfo("filter", "headers", "b.mod", "y", factory)]
    )
    out = io.StringIO()
    assert list_plugins(registry, out) == 1
    assert (
        "ERROR two filter plugins are named 'headers': one in a.mod, one in b.mod"
        in (out.getvalue())
    )


def test_config_is_required() -> None:
    """Running without -c is a usage error, not a traceback."""
    with pytest.raises(usage.UsageError, match=r"-c conf\.ini"):
        Options().parseOptions([])


def test_check_survives_sections_missing_from_a_partial_config(tmp_path: Path) -> None:
    """A route or upstream with its own problem does not break the rest of --check."""
    text = (
        VALID.replace("servers = 127.0.0.1:9001", "servers = 127.0.0.1:9001\nrise = 0")
        .replace("filters = tidy", "filters = tidy\ncolour = blue")
        .replace("plugin = headers", "plugin = nosuch")
    )
    code, _, err = run_check(tmp_path, text)
    assert code == 1
    assert "Traceback" not in err
    assert "[upstream:web] rise: 0 is less than 1" in err
    assert "[route:all] colour: unknown key" in err
    assert "[filter:tidy] plugin: no filter plugin is named 'nosuch'" in err
