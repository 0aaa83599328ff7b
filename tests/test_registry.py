"""Tests for edgeproxy.registry: plugin discovery through twisted.plugin."""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from edgeproxy.errors import PluginError
from edgeproxy.registry import discover

PLUGIN_MODULE = """
from twisted.plugin import IPlugin
from zope.interface import implementer
from edgeproxy.interfaces import {interface}

@implementer(IPlugin, {interface})
class Factory:
    name = {name!r}
    description = "made in a test"
    def build(self, options, environment):
        return None

plugin = Factory()
"""


@pytest.fixture
def plugin_package(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """An importable, empty package standing in for ``twisted.plugins``."""
    name = f"fake_plugins_{tmp_path.name.replace('-', '_')}"
    (tmp_path / name).mkdir()
    (tmp_path / name / "__init__.py").write_text("")
    sys.path.insert(0, str(tmp_path))
    yield tmp_path / name, name
    sys.path.remove(str(tmp_path))
    for module in [m for m in sys.modules if m.startswith(name)]:
        del sys.modules[module]


def add_plugin(directory: Path, module: str, interface: str, name: str) -> None:
    """Write a plugin module holding one factory."""
    (directory / f"{module}.py").write_text(
        textwrap.dedent(PLUGIN_MODULE.format(interface=interface, name=name))
    )


def load(package_name: str) -> ModuleType:
    """Import the stand-in package afresh."""
    return importlib.import_module(package_name)


def test_finds_each_kind(plugin_package: tuple[Path, str]) -> None:
    """Filters, health checks and strategies are found with kind, name and module."""
    directory, package = plugin_package
    add_plugin(directory, "one", "IFilterFactory", "stamp")
    add_plugin(directory, "two", "IHealthCheckFactory", "ping")
    add_plugin(directory, "three", "IBalancingStrategyFactory", "coin")
    registry = discover(load(package))
    found = {(p.kind, p.name, p.module) for p in registry.plugins}
    assert found == {
        ("filter", "stamp", f"{package}.one"),
        ("health check", "ping", f"{package}.two"),
        ("balancing strategy", "coin", f"{package}.three"),
    }
    assert registry.lookup("filter", "stamp").description == "made in a test"
    assert registry.names("health check") == ["ping"]
    assert registry.broken == ()
    registry.check()


def test_broken_module_is_reported_and_hides_nothing(
    plugin_package: tuple[Path, str],
) -> None:
    """A module that fails to import is listed with its error; others still load."""
    directory, package = plugin_package
    add_plugin(directory, "good", "IFilterFactory", "stamp")
    (directory / "bad.py").write_text("import no_such_module_here\n")
    registry = discover(load(package))
    assert [p.name for p in registry.plugins] == ["stamp"]
    [broken] = registry.broken
    assert broken.module == f"{package}.bad"
    assert "No module named 'no_such_module_here'" in broken.error
    assert str(directory / "bad.py") in str(broken)


def test_duplicate_names_name_both_modules(plugin_package: tuple[Path, str]) -> None:
    """Two plugins of one kind with one name stop startup, naming both modules."""
    directory, package = plugin_package
    add_plugin(directory, "first", "IFilterFactory", "stamp")
    add_plugin(directory, "second", "IFilterFactory", "stamp")
    add_plugin(directory, "third", "IHealthCheckFactory", "stamp")
    registry = discover(load(package))
    with pytest.raises(PluginError) as caught:
        registry.check()
    message = str(caught.value)
    assert f"{package}.first" in message
    assert f"{package}.second" in message
    assert "health check" not in message


def test_unknown_name_lists_known_and_broken(plugin_package: tuple[Path, str]) -> None:
    """Looking up a missing name says what exists and which modules were broken."""
    directory, package = plugin_package
    add_plugin(directory, "good", "IFilterFactory", "stamp")
    (directory / "bad.py").write_text("raise RuntimeError('boom')\n")
    registry = discover(load(package))
    with pytest.raises(KeyError) as caught:
        registry.lookup("filter", "jwt")
    message = caught.value.args[0]
    assert "no filter plugin is named 'jwt' (known: stamp)" in message
    assert f"{package}.bad" in message


def test_builtins_are_found_through_twisted_plugins() -> None:
    """The built-in plugins are discovered the same way as third-party ones."""
    registry = discover()
    headers = registry.lookup("filter", "headers")
    assert headers.module == "twisted.plugins.edgeproxy_builtins"
