"""The twistd edgeproxy command as a user runs it: --help, --check, --list-plugins."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import REPO, THIRDPARTY, run_twistd

CONFIGS = sorted((REPO / "conf").glob("*.ini"))


def test_twistd_lists_edgeproxy() -> None:
    """twistd's own help lists the edgeproxy command, and it documents its options."""
    assert "edgeproxy" in run_twistd("--help").stdout
    usage = run_twistd("edgeproxy", "--help").stdout
    assert "--check" in usage
    assert "--list-plugins" in usage
    assert "--config" in usage


@pytest.mark.parametrize("config", CONFIGS, ids=[c.name for c in CONFIGS])
def test_shipped_configs_check(config: Path) -> None:
    """Every example in conf/ passes --check with a one-line summary."""
    result = run_twistd("-n", "edgeproxy", "-c", str(config), "--check")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{config}: OK: ")
    assert result.stdout.count("\n") == 1


def test_check_lists_every_error(tmp_path: Path) -> None:
    """A broken file exits non-zero and names file, section and key of each error."""
    config = tmp_path / "broken.ini"
    config.write_text(
        "[listener:web]\nprotocol = http\nendpoint = tcp:nope\nroutes = site\n"
        "[route:site]\nupstream = app\n"
        "[upstream:web]\nservers = 127.0.0.1:1\nfail_timeout = 30x\nbalance = nosuch\n"
        "[filter:f]\nplugin = headers\nrequest.sett = X: 1\n"
    )
    result = run_twistd("-n", "edgeproxy", "-c", str(config), "--check")
    assert result.returncode == 1
    assert result.stdout == ""
    errors = result.stderr.splitlines()
    expected = [
        f"{config}: [listener:web] endpoint: 'tcp:nope' is not a server endpoint",
        f"{config}: [upstream:web] fail_timeout: '30x' is not a duration",
        f"{config}: [route:site] upstream: no [upstream:app] section",
        f"{config}: [filter:f] request.sett: unknown option",
    ]
    for line in expected:
        assert any(error.startswith(line) for error in errors), result.stderr
    assert "Traceback" not in result.stderr


def test_check_reports_plugin_errors(tmp_path: Path) -> None:
    """Unknown plugins and a plugin's own option errors are config errors too."""
    config = tmp_path / "plugins.ini"
    config.write_text(
        "[upstream:web]\nservers = 127.0.0.1:1\nbalance = nosuch\n"
        "[filter:f]\nplugin = headers\nrequest.sett = X: 1\n"
    )
    result = run_twistd("-n", "edgeproxy", "-c", str(config), "--check")
    assert result.returncode == 1
    assert (
        f"{config}: [upstream:web] balance: no balancing strategy plugin"
        in result.stderr
    )
    assert f"{config}: [filter:f] request.sett: unknown option" in result.stderr
    assert result.stderr.splitlines()[-1] == f"{config}: 2 problems found"


def test_list_plugins_shows_builtins() -> None:
    """--list-plugins lists built-ins with kind, name, module and description."""
    result = run_twistd("edgeproxy", "--list-plugins")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(
        line.split()[:2] == ["filter", "headers"]
        and "twisted.plugins.edgeproxy_builtins" in line
        for line in lines
    )


def test_thirdparty_plugin_drop_in(tmp_path: Path) -> None:
    """A twisted/plugins/ module on sys.path is listed and usable from a config."""
    listing = run_twistd("edgeproxy", "--list-plugins", extra_path=THIRDPARTY)
    assert listing.returncode == 0, listing.stdout + listing.stderr
    found = {tuple(line.split()[:3]) for line in listing.stdout.splitlines()}
    assert ("filter", "acme_stamp", "twisted.plugins.acme_edge:") in found
    assert ("health", "check", "acme_assume_up") in found
    assert ("balancing", "strategy", "acme_first") in found
    config = tmp_path / "acme.ini"
    config.write_text(
        "[listener:web]\nprotocol = http\nendpoint = tcp:0:interface=127.0.0.1\n"
        "routes = all\n[route:all]\nupstream = app\nfilters = stamp\n"
        "[upstream:app]\nservers = 127.0.0.1:1\nbalance = acme_first\n"
        "health = acme_assume_up\n"
        "[filter:stamp]\nplugin = acme_stamp\nvalue = acme\n"
    )
    checked = run_twistd(
        "-n", "edgeproxy", "-c", str(config), "--check", extra_path=THIRDPARTY
    )
    assert checked.returncode == 0, checked.stderr
    wrong = tmp_path / "wrong.ini"
    wrong.write_text(config.read_text().replace("value = acme", "colour = red"))
    refused = run_twistd(
        "-n", "edgeproxy", "-c", str(wrong), "--check", extra_path=THIRDPARTY
    )
    assert refused.returncode == 1
    assert "[filter:stamp] colour: unknown option" in refused.stderr
    assert "[filter:stamp] value: this option is required" in refused.stderr


def test_broken_plugin_module_is_reported(tmp_path: Path) -> None:
    """A plugin module that fails to import is reported and hides no other plugin."""
    plugins = tmp_path / "twisted" / "plugins"
    plugins.mkdir(parents=True)
    (plugins / "broken_edge.py").write_text("import no_such_module_anywhere\n")
    result = run_twistd("edgeproxy", "--list-plugins", extra_path=tmp_path)
    assert result.returncode == 1
    assert "broken_edge" in result.stdout
    assert "No module named 'no_such_module_anywhere'" in result.stdout
    assert any(
        line.split()[:2] == ["filter", "headers"] for line in result.stdout.splitlines()
    )


def test_duplicate_plugin_names_fail(tmp_path: Path) -> None:
    """Two plugins with one name make --list-plugins fail, naming both modules."""
    plugins = tmp_path / "twisted" / "plugins"
    plugins.mkdir(parents=True)
    source = (THIRDPARTY / "twisted" / "plugins" / "acme_edge.py").read_text()
    (plugins / "acme_copy.py").write_text(source)
    result = run_twistd("edgeproxy", "--list-plugins", extra_path=tmp_path)
    assert result.returncode == 0, result.stdout
    both = f"{tmp_path}{__import__('os').pathsep}{THIRDPARTY}"
    result = run_twistd("edgeproxy", "--list-plugins", extra_path=Path(both))
    assert result.returncode == 1
    assert (
        "two filter plugins are named 'acme_stamp': one in twisted.plugins.acme_copy, "
        "one in twisted.plugins.acme_edge"
        in result.stdout
        or "one in twisted.plugins.acme_edge, one in twisted.plugins.acme_copy"
        in result.stdout
    )


def test_first_minute_with_demo_upstreams(tmp_path: Path) -> None:
    """The README's first run: quickstart.ini with demo upstreams answers via both."""
    from tests.integration.conftest import EdgeproxyProcess, free_port
    from tests.integration.http_client import get

    web, first, second = free_port(), free_port(), free_port()
    text = (REPO / "conf" / "quickstart.ini").read_text()
    text = text.replace("tcp:8080:", f"tcp:{web}:")
    text = text.replace("127.0.0.1:9001", f"127.0.0.1:{first}")
    text = text.replace("127.0.0.1:9002", f"127.0.0.1:{second}")
    config = tmp_path / "quickstart.ini"
    config.write_text(text)
    proxy = EdgeproxyProcess(config, web, extra_args=("--demo-upstreams",))
    try:
        answers = [get(web, b"/hello", host=b"127.0.0.1") for _ in range(4)]
    finally:
        proxy.stop()
    assert {answer.status for answer in answers} == {200}
    assert {answer.header(b"X-Demo-Upstream") for answer in answers} == {
        f"127.0.0.1:{first}".encode(),
        f"127.0.0.1:{second}".encode(),
    }
    assert answers[0].body.startswith(b"Hello from demo upstream 127.0.0.1:")
    assert b"You asked for: GET /hello" in answers[0].body
