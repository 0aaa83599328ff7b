"""
The running configuration as one frozen snapshot, and the holder that swaps it.

A listener reads ``holder.current`` once for each new request or connection and
keeps that snapshot until it ends, so a reload never changes what a request in
flight sees.  Nothing on the data path keeps a snapshot beyond its request.

Each ``[cache:NAME]`` becomes a :class:`~edgeproxy.http.shared_cache.SharedCache`
around its store; a reload whose section did not change keeps the same object,
so the stored responses (and the requests waiting on one in flight) survive it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from edgeproxy.access_log.sink import STANDARD_OUTPUT
from edgeproxy.balancing.split import TrafficSplit
from edgeproxy.cache.disk import DiskCacheStore
from edgeproxy.cache.memory import MemoryCacheStore
from edgeproxy.cache.store import CacheStore
from edgeproxy.config.model import (
    CacheConfig,
    Config,
    RouteConfig,
    RouteSpecs,
    UpstreamConfig,
)
from edgeproxy.core.addresses import AddressSet
from edgeproxy.core.caching.settings import CacheSettings
from edgeproxy.core.context import RequestContext
from edgeproxy.core.routing import RouteTable
from edgeproxy.errors import ConfigError, ConfigProblem, OptionError
from edgeproxy.http.connection_pool import UpstreamConnectionSettings
from edgeproxy.http.settings import ClientSettings
from edgeproxy.http.shared_cache import SharedCache
from edgeproxy.interfaces import IFilter, IHealthCheck
from edgeproxy.plugin_environment import PluginEnvironment
from edgeproxy.registry import PluginRegistry
from edgeproxy.upstream.pool import UpstreamPool
from edgeproxy.upstream.server import HealthPolicy, ServerTransition, UpstreamServer


@dataclass(frozen=True)
class UpstreamTarget:
    """
    An upstream a route sends requests to, with how to reach its servers.

    :ivar name: the upstream's name.
    :ivar pool: its pool.
    :ivar connections: how to connect to its servers over HTTP.
    :ivar retries: how many more servers a failed request may try.
    """

    name: str
    pool: UpstreamPool
    connections: UpstreamConnectionSettings
    retries: int
    retry_on: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Route:
    """
    A route ready to serve: its policy, its filter chain and its pool.

    :ivar name: the route's name.
    :ivar config: its section.
    :ivar specs: its routing, rewrite, redirect and forwarding policy.
    :ivar filters: its filters, in request order.
    :ivar targets: the upstreams that serve it (none for a redirect-only
        route; several for a traffic split).
    :ivar split: how requests are shared between several targets.
    :ivar cache: the cache that keeps its responses, or ``None``.
    """

    name: str
    config: RouteConfig
    specs: RouteSpecs
    filters: tuple[IFilter, ...]
    targets: tuple[UpstreamTarget, ...]
    split: TrafficSplit | None
    cache: SharedCache | None = None

    def target_for(self, context: RequestContext) -> UpstreamTarget | None:
        """The upstream this request goes to (``None`` for a redirect route)."""
        if self.split is None:
            return self.targets[0] if self.targets else None
        name = self.split.choose(context)
        return next(target for target in self.targets if target.name == name)


@dataclass(frozen=True)
class Snapshot:
    """
    Everything a request or connection needs, built from one configuration.

    :ivar config: the validated configuration it was built from.
    :ivar filters: the built filter of each ``[filter:NAME]``, by name.
    :ivar pools: the pool of each ``[upstream:NAME]``, by name.
    :ivar health_checks: the health check of each upstream that has one.
    :ivar route_tables: for each http listener, its routes in order.
    :ivar caches: the cache of each ``[cache:NAME]``, by name.
    :ivar access_log: the access log's file made absolute, ``-`` for
        standard output, or ``None`` when off.
    """

    config: Config
    filters: Mapping[str, IFilter]
    pools: Mapping[str, UpstreamPool]
    health_checks: Mapping[str, IHealthCheck]
    route_tables: Mapping[str, RouteTable[Route]]
    caches: Mapping[str, SharedCache] = dataclasses.field(
        default_factory=lambda: MappingProxyType({})
    )
    access_log: str | None = None


class SnapshotHolder:
    """The one place that holds the current snapshot."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.current = snapshot

    def swap(self, snapshot: Snapshot) -> Snapshot:
        """Make ``snapshot`` current for new requests; return the previous one."""
        previous, self.current = self.current, snapshot
        return previous


TransitionObserver = Callable[[ServerTransition], None]


def build_snapshot(
    config: Config,
    registry: PluginRegistry,
    environment: PluginEnvironment,
    previous: Snapshot | None = None,
    on_transition: TransitionObserver | None = None,
) -> Snapshot:
    """
    Build every working object that ``config`` describes.

    With ``previous`` (a reload), servers still in the configuration keep
    their health, admin state and counters, and caches whose section did not
    change are the same objects (their contents kept).

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
    pools = {}
    for name, upstream in config.upstreams.items():
        strategy = builder.build(
            "balancing strategy",
            upstream.balance,
            upstream.balance_options,
            section=f"upstream:{name}",
            name_key="balance",
            option_prefix="balance.",
        )
        policy = HealthPolicy(
            # As nginx: a pool of one server never takes it out for failures
            # (there is nowhere else to send the request).
            max_fails=upstream.max_fails if len(upstream.servers) > 1 else 0,
            fail_timeout=upstream.fail_timeout,
            rise=upstream.rise,
            fall=upstream.fall,
        )
        servers = [
            UpstreamServer(spec, policy, on_transition=on_transition)
            for spec in upstream.servers
        ]
        if strategy is not None:
            pools[name] = UpstreamPool(name, servers, strategy)
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
    caches = _caches(config, environment, previous, builder.problems)
    access_log = _access_log(config, environment, builder.problems)
    if builder.problems:
        raise ConfigError(builder.problems)
    if previous is not None:
        now = environment.reactor.seconds()
        for name, pool in pools.items():
            old = previous.pools.get(name)
            if old is not None:
                pool.carry_state_from(old, now)
    route_tables = {
        listener.name: RouteTable(
            (
                route.specs.match,
                _route(route, filters, pools, config.upstreams, caches),
            )
            for route in (
                config.routes[name] for name in listener.routes if name in config.routes
            )
            # A partial configuration (read to report its plugin problems
            # too) may lack a section that had problems of its own.
            if route.specs is not None
            and all(name in pools for name, _ in route.upstream)
            and (route.cache is None or route.cache in caches)
        )
        for listener in config.listeners.values()
        if listener.protocol == "http"
    }
    return Snapshot(
        config=config,
        filters=MappingProxyType(filters),
        pools=MappingProxyType(pools),
        health_checks=MappingProxyType(health_checks),
        route_tables=MappingProxyType(route_tables),
        caches=MappingProxyType(caches),
        access_log=access_log,
    )


def _access_log(
    config: Config, environment: PluginEnvironment, problems: list[ConfigProblem]
) -> str | None:
    """The access log's path made absolute; its directory must exist."""
    path = config.settings.access_log
    if path is None or path == STANDARD_OUTPUT:
        return path
    resolved = environment.resolve(path)
    if not resolved.parent.is_dir():
        problems.append(
            ConfigProblem(
                config.path,
                "edgeproxy",
                "access_log",
                f"the directory {str(resolved.parent)!r} does not exist",
            )
        )
    return str(resolved)


def _caches(
    config: Config,
    environment: PluginEnvironment,
    previous: Snapshot | None,
    problems: list[ConfigProblem],
) -> dict[str, SharedCache]:
    """Each cache of ``config``: the previous one when its section is unchanged."""
    caches = {}
    for name, section in config.caches.items():
        old = previous.caches.get(name) if previous is not None else None
        if (
            old is not None
            and previous is not None
            and previous.config.caches.get(name) == section
            and Path(previous.config.path).parent == Path(config.path).parent
        ):
            caches[name] = old
            continue
        try:
            store = cache_store(section, environment)
        except OSError as error:
            problems.append(
                ConfigProblem(
                    config.path, f"cache:{name}", "store", f"cannot be used: {error}"
                )
            )
            continue
        caches[name] = SharedCache(
            name, store, cache_settings(section), AddressSet(section.purge_from)
        )
    return caches


def cache_store(section: CacheConfig, environment: PluginEnvironment) -> CacheStore:
    """
    The store a ``[cache:NAME]`` describes (a disk one is scanned now).

    :raises OSError: when a disk store's directory cannot be made or read.
    """
    if section.store.startswith("disk:"):
        root = environment.resolve(section.store[len("disk:") :])
        return DiskCacheStore(root, section.max_size, section.max_object_size)
    return MemoryCacheStore(section.max_size, section.max_object_size)


def cache_settings(section: CacheConfig) -> CacheSettings:
    """The policy settings of a ``[cache:NAME]``."""
    kind, _, name = (section.key or "").partition(":")
    return CacheSettings(
        heuristic_fraction=0.1 if section.heuristic else 0.0,
        heuristic_max=section.heuristic_max,
        default_ttl=section.default_ttl,
        stale_if_error=section.stale_if_error,
        key_header=name.encode("latin-1") if kind == "header" else None,
        key_cookie=name.encode("latin-1") if kind == "cookie" else None,
    )


def _route(
    config: RouteConfig,
    filters: Mapping[str, IFilter],
    pools: Mapping[str, UpstreamPool],
    upstreams: Mapping[str, UpstreamConfig],
    caches: Mapping[str, SharedCache],
) -> Route:
    assert config.specs is not None
    targets = tuple(
        UpstreamTarget(
            name,
            pools[name],
            connection_settings(upstreams[name]),
            upstreams[name].retries,
            upstreams[name].retry_on,
        )
        for name, _ in config.upstream
    )
    split = (
        TrafficSplit(config.upstream, config.split_key, config.split_override)
        if len(targets) > 1
        else None
    )
    return Route(
        name=config.name,
        config=config,
        specs=config.specs,
        filters=tuple(filters[name] for name in config.filters),
        targets=targets,
        split=split,
        cache=caches[config.cache] if config.cache is not None else None,
    )


def connection_settings(upstream: UpstreamConfig) -> UpstreamConnectionSettings:
    """How to connect to the servers of ``upstream`` over HTTP."""
    return UpstreamConnectionSettings(
        client=ClientSettings(
            first_byte_timeout=upstream.first_byte_timeout,
            idle_timeout=upstream.read_timeout,
        ),
        connect_timeout=upstream.connect_timeout,
        keepalive=upstream.keepalive,
        keepalive_timeout=upstream.keepalive_timeout,
        tls_verify=upstream.tls_verify,
        tls_ca_file=upstream.tls_ca_file,
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
