"""
The ``twistd edgeproxy`` command: its options and the service it makes.

``--check`` and ``--list-plugins`` do their work while the options are parsed
and exit, before twistd daemonises or starts logging.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from twisted.application.service import IService
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage

from edgeproxy.config.loader import load_config
from edgeproxy.config.model import Config
from edgeproxy.errors import ConfigError, PluginError
from edgeproxy.plugin_environment import PluginEnvironment
from edgeproxy.registry import PluginRegistry, discover
from edgeproxy.snapshot import Snapshot, TransitionObserver, build_snapshot


class Options(usage.Options):
    """Options of ``twistd edgeproxy``."""

    synopsis = "[-c conf.ini] [--check] [--list-plugins]"
    longdesc = (
        "Run edgeproxy: an HTTP/1.1 reverse proxy, WebSocket passthrough and TCP "
        "load balancer, as the INI configuration file describes. "
        "--check validates the configuration and exits (0 when valid); "
        "--list-plugins lists the filter, health-check and balancing-strategy "
        "plugins found on sys.path and exits."
    )
    optParameters = [
        ["config", "c", None, "The configuration file (INI)."],
    ]
    optFlags = [
        ["check", None, "Validate the configuration, print a summary and exit."],
        ["list-plugins", None, "List the plugins found and where, then exit."],
        [
            "demo-upstreams",
            None,
            "Also start a tiny demo web server on each loopback upstream server "
            "address of the configuration (for a first try; not for production).",
        ],
    ]

    def postOptions(self) -> None:
        """Run ``--list-plugins`` or ``--check``, or insist on a config file."""
        if self["list-plugins"]:
            raise SystemExit(list_plugins(discover(), sys.stdout))
        if not self["config"]:
            raise usage.UsageError("give the configuration file with -c conf.ini")
        if self["check"]:
            raise SystemExit(check(self["config"], discover(), sys.stdout, sys.stderr))


def list_plugins(registry: PluginRegistry, out: TextIO) -> int:
    """Write one line per plugin found; return 1 when any module is broken."""
    for info in registry.plugins:
        out.write(
            f"{info.kind:<20} {info.name:<16} {info.module}: {info.description}\n"
        )
    for broken in registry.broken:
        out.write(f"ERROR {broken}\n")
    for duplicate in registry.duplicates:
        out.write(f"ERROR {duplicate}\n")
    return 1 if registry.broken or registry.duplicates else 0


def load(
    path: str,
    registry: PluginRegistry,
    reactor: object,
    on_transition: TransitionObserver | None = None,
    previous: Snapshot | None = None,
) -> Snapshot:
    """
    Read, validate and build the configuration at ``path``.

    :raises edgeproxy.errors.ConfigError: every problem with the file.
    :raises edgeproxy.errors.PluginError: duplicated plugin names.
    """
    registry.check()
    environment = PluginEnvironment(reactor, Path(path).resolve().parent)
    try:
        config = load_config(path)
    except ConfigError as error:
        # Report the plugin problems of the sections that could be read too,
        # so that one --check lists everything.
        if isinstance(error.partial, Config):
            try:
                build_snapshot(error.partial, registry, environment)
            except ConfigError as more:
                raise ConfigError(error.problems + more.problems) from None
        raise
    return build_snapshot(
        config, registry, environment, previous=previous, on_transition=on_transition
    )


def check(path: str, registry: PluginRegistry, out: TextIO, err: TextIO) -> int:
    """Validate the configuration at ``path``: 0 and a summary, or 1 and every error."""
    try:
        snapshot = load(path, registry, MemoryReactorClock())
    except ConfigError as error:
        for problem in error.problems:
            err.write(f"{problem}\n")
        count = len(error.problems)
        err.write(f"{path}: {count} problem{'s' if count != 1 else ''} found\n")
        return 1
    except PluginError as error:
        err.write(f"{error}\n")
        return 1
    out.write(f"{path}: OK: {summary(snapshot.config)}\n")
    return 0


def summary(config: Config) -> str:
    """A one-line count of what a configuration defines."""
    counts = [
        (len(config.listeners), "listener"),
        (len(config.routes), "route"),
        (len(config.upstreams), "upstream"),
        (len(config.filters), "filter"),
    ]
    return ", ".join(f"{n} {word}{'s' if n != 1 else ''}" for n, word in counts)


def makeService(options: Options) -> IService:
    """Build the service tree for ``twistd``; a bad config exits with every error."""
    from twisted.internet import reactor

    from edgeproxy.service import EdgeproxyService, ReloadOnSignal, log_transition

    registry = discover()
    for broken in registry.broken:
        sys.stderr.write(f"warning: {broken}\n")
    path = options["config"]
    try:
        snapshot = load(path, registry, reactor, log_transition)
    except ConfigError as error:
        for problem in error.problems:
            sys.stderr.write(f"{problem}\n")
        raise SystemExit(1) from None
    except PluginError as error:
        sys.stderr.write(f"{error}\n")
        raise SystemExit(1) from None

    def reload(previous: Snapshot) -> Snapshot:
        return load(path, discover(), reactor, log_transition, previous)

    try:
        service = EdgeproxyService(snapshot, reactor, reload)
    except ConfigError as error:
        for problem in error.problems:
            sys.stderr.write(f"{problem}\n")
        raise SystemExit(1) from None
    ReloadOnSignal(service, reactor).setServiceParent(service)
    if options["demo-upstreams"]:
        from edgeproxy.demo import demo_upstreams

        demos = demo_upstreams(snapshot.config, reactor)
        demos.setName("demo-upstreams")
        demos.setServiceParent(service)
    return service
