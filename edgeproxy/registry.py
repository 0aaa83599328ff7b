"""
Plugin discovery and lookup by kind and name.

Built-in and third-party plugins are found the same way: objects providing
:class:`twisted.plugin.IPlugin` and one of edgeproxy's factory interfaces, in
any module of a ``twisted/plugins/`` directory on ``sys.path``
(:func:`twisted.plugin.getCache` does the walking and caching).
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType

from twisted.plugin import getCache
from twisted.python.modules import getModule
from zope.interface.interface import InterfaceClass

from edgeproxy.errors import PluginError
from edgeproxy.interfaces import (
    IBalancingStrategyFactory,
    IFilterFactory,
    IHealthCheckFactory,
    IPluginFactory,
)

#: Each kind of plugin, as ``--list-plugins`` names it, with its interface.
KINDS: dict[str, InterfaceClass] = {
    "filter": IFilterFactory,
    "health check": IHealthCheckFactory,
    "balancing strategy": IBalancingStrategyFactory,
}


@dataclass(frozen=True)
class PluginInfo:
    """
    One plugin found.

    :ivar kind: a key of :data:`KINDS`.
    :ivar name: the name configuration files use.
    :ivar module: the dotted name of the plugin module that holds it.
    :ivar description: its one-line description.
    :ivar factory: the plugin object itself.
    """

    kind: str
    name: str
    module: str
    description: str
    factory: IPluginFactory


@dataclass(frozen=True)
class BrokenModule:
    """A plugin module that failed to import, with the error it raised."""

    module: str
    path: str
    error: str

    def __str__(self) -> str:
        return (
            f"plugin module {self.module} ({self.path}) failed to import: {self.error}"
        )


class PluginRegistry:
    """
    The plugins that were found, looked up by kind and name.

    :ivar plugins: every plugin found, sorted by kind and name.
    :ivar broken: plugin modules that failed to import.
    :ivar duplicates: messages naming the modules of each duplicated name.
    """

    def __init__(
        self, plugins: Iterable[PluginInfo], broken: Iterable[BrokenModule] = ()
    ) -> None:
        self.plugins = tuple(sorted(plugins, key=lambda p: (p.kind, p.name)))
        self.broken = tuple(broken)
        self._by_kind: dict[str, dict[str, PluginInfo]] = {kind: {} for kind in KINDS}
        duplicates = []
        for info in self.plugins:
            found = self._by_kind[info.kind].get(info.name)
            if found is not None:
                duplicates.append(
                    f"two {info.kind} plugins are named {info.name!r}: "
                    f"one in {found.module}, one in {info.module}"
                )
            else:
                self._by_kind[info.kind][info.name] = info
        self.duplicates = tuple(duplicates)

    def lookup(self, kind: str, name: str) -> PluginInfo:
        """
        Return the plugin of ``kind`` called ``name``.

        :raises KeyError: with a message listing the names that do exist (and
            any modules that failed to import, which may be where it was).
        """
        found = self._by_kind[kind].get(name)
        if found is None:
            known = ", ".join(sorted(self._by_kind[kind])) or "none"
            message = f"no {kind} plugin is named {name!r} (known: {known})"
            if self.broken:
                message += "; plugin modules that failed to import: " + ", ".join(
                    broken.module for broken in self.broken
                )
            raise KeyError(message)
        return found

    def names(self, kind: str) -> list[str]:
        """The names of the plugins of ``kind``, sorted."""
        return sorted(self._by_kind[kind])

    def check(self) -> None:
        """
        Refuse to start with duplicated plugin names.

        :raises edgeproxy.errors.PluginError: naming both modules of each duplicate.
        """
        if self.duplicates:
            raise PluginError(self.duplicates)


def discover(package: ModuleType | None = None) -> PluginRegistry:
    """
    Find every edgeproxy plugin in ``package`` (by default ``twisted.plugins``).

    A module that fails to import is recorded in ``broken`` and hides nothing
    else.
    """
    if package is None:
        import twisted.plugins

        package = twisted.plugins
    cache = getCache(package)
    plugins = []
    # A module may hold one plugin object under two names (an import and an
    # alias): that is one plugin, not a duplicate.
    seen: set[int] = set()
    for dropin in cache.values():
        for cached in dropin.plugins:
            kinds = [
                kind
                for kind, interface in KINDS.items()
                if any(provided.isOrExtends(interface) for provided in cached.provided)
            ]
            if not kinds:
                continue
            factory = cached.load()
            if id(factory) in seen:
                continue
            seen.add(id(factory))
            for kind in kinds:
                plugins.append(
                    PluginInfo(
                        kind=kind,
                        name=str(factory.name),
                        module=dropin.moduleName,
                        description=str(factory.description),
                        factory=factory,
                    )
                )
    return PluginRegistry(plugins, _broken_modules(package, cache))


def _broken_modules(
    package: ModuleType, cache: dict[str, object]
) -> list[BrokenModule]:
    """The modules of ``package`` that ``getCache`` could not load, and why."""
    broken = []
    for module in getModule(package.__name__).iterModules():
        if module.name.split(".")[-1] in cache:
            continue
        try:
            module.load()
        except Exception as error:
            summary = "".join(traceback.format_exception_only(error)).strip()
            broken.append(BrokenModule(module.name, module.filePath.path, summary))
    return broken
