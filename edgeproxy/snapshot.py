"""
The running configuration as one frozen snapshot, and the holder that swaps it.

A listener reads ``holder.current`` once for each new request or connection and
keeps that snapshot until it ends, so a reload never changes what a request in
flight sees.  Nothing on the data path keeps a snapshot beyond its request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from edgeproxy.config.model import Config
from edgeproxy.errors import ConfigError, ConfigProblem, OptionError
from edgeproxy.interfaces import IBalancingStrategy, IFilter, IHealthCheck
from edgeproxy.plugin_environment import PluginEnvironment
from edgeproxy.registry import PluginRegistry


@dataclass(frozen=True)
class Snapshot:
    """
    Everything a request needs, built from one configuration.

    :ivar config: the validated configuration it was built from.
    :ivar filters: the built filter of each ``[filter:NAME]``, by name.
    :ivar strategies: the balancing strategy of each upstream, by upstream name.
    :ivar health_checks: the health check of each upstream that has one.
    """

    config: Config
    filters: Mapping[str, IFilter]
    strategies: Mapping[str, IBalancingStrategy]
    health_checks: Mapping[str, IHealthCheck]


class SnapshotHolder:
    """The one place that holds the current snapshot."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.current = snapshot

    def swap(self, snapshot: Snapshot) -> Snapshot:
        """Make ``snapshot`` current for new requests; return the previous one."""
        previous, self.current = self.current, snapshot
        return previous


def build_snapshot(
    config: Config, registry: PluginRegistry, environment: PluginEnvironment
) -> Snapshot:
    """
    Build every plugin object that ``config`` names.

    :raises edgeproxy.errors.ConfigError: listing every unknown plugin and every
        option a plugin rejected, with file, section and key.
    """
    builder = _PluginBuilder(config.path, registry, environment)
    filters = {
        name: builder.build(
            "filter",
            section.plugin,
            section.options,
            section=f"filter:{name}",
            name_key="plugin",
            option_prefix="",
        )
        for name, section in config.filters.items()
    }
    strategies = {
        name: builder.build(
            "balancing strategy",
            upstream.balance,
            upstream.balance_options,
            section=f"upstream:{name}",
            name_key="balance",
            option_prefix="balance.",
        )
        for name, upstream in config.upstreams.items()
    }
    health_checks = {
        name: builder.build(
            "health check",
            upstream.health,
            upstream.health_options,
            section=f"upstream:{name}",
            name_key="health",
            option_prefix="health.",
        )
        for name, upstream in config.upstreams.items()
        if upstream.health is not None
    }
    if builder.problems:
        raise ConfigError(builder.problems)
    return Snapshot(
        config=config,
        filters=MappingProxyType(filters),
        strategies=MappingProxyType(strategies),
        health_checks=MappingProxyType(health_checks),
    )


class _PluginBuilder:
    """Looks plugins up and builds them, turning their complaints into problems."""

    def __init__(
        self, path: str, registry: PluginRegistry, environment: PluginEnvironment
    ) -> None:
        self.path = path
        self.registry = registry
        self.environment = environment
        self.problems: list[ConfigProblem] = []

    def build(
        self,
        kind: str,
        name: str,
        options: Mapping[str, str],
        *,
        section: str,
        name_key: str,
        option_prefix: str,
    ) -> Any:
        try:
            info = self.registry.lookup(kind, name)
        except KeyError as error:
            self.problems.append(
                ConfigProblem(self.path, section, name_key, error.args[0])
            )
            return None
        build: Callable[..., Any] = info.factory.build  # type: ignore[attr-defined]
        try:
            return build(options, self.environment)
        except OptionError as error:
            for key, message in error.problems:
                self.problems.append(
                    ConfigProblem(self.path, section, option_prefix + key, message)
                )
            return None
