"""
Reading an INI file into a :class:`~edgeproxy.config.model.Config`.

Every problem is gathered, each naming the file, section and key, and raised
together as one :class:`~edgeproxy.errors.ConfigError`.  Unknown sections and
keys are errors.
"""

from __future__ import annotations

import configparser
import dataclasses
import difflib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from edgeproxy.config.endpoints import check_server_endpoint
from edgeproxy.config.model import (
    SECTION_KINDS,
    CacheConfig,
    Config,
    FilterConfig,
    GlobalSettings,
    ListenerConfig,
    RouteConfig,
    SectionKind,
    UpstreamConfig,
)
from edgeproxy.config.routes import build_route_specs
from edgeproxy.config.values import parse_name
from edgeproxy.errors import ConfigError, ConfigProblem
from edgeproxy.tls import certificate_problems, is_tls_endpoint

# configparser treats its default section specially (its keys leak into every
# other section); a name no one can write turns that off, so that a [DEFAULT]
# section is reported as unknown like any other.
_NO_DEFAULT_SECTION = "\x00"

_KINDS_BY_PREFIX = {kind.prefix: kind for kind in SECTION_KINDS}

_HTTP_ONLY_KEYS = frozenset(
    {
        "max_head_size",
        "max_header_count",
        "max_uri_length",
        "max_body_size",
        "head_timeout",
        "body_timeout",
        "keepalive_timeout",
        "send_timeout",
        "tls_certificates",
        "tls_min_version",
        "tls_ciphers",
    }
)
_TCP_ONLY_KEYS = frozenset(
    {
        "allow",
        "deny",
        "max_connections",
        "max_connections_per_ip",
        "accept_proxy_protocol",
        "send_proxy_protocol",
        "connect_timeout",
        "idle_timeout",
        "proxy_protocol_timeout",
    }
)


def load_config(path: str) -> Config:
    """
    Read and validate the configuration file at ``path``.

    :raises edgeproxy.errors.ConfigError: listing every problem found.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(
            [ConfigProblem(path, "", "", f"cannot read: {error}")]
        ) from None
    return parse_config(text, path)


def parse_config(text: str, path: str = "<string>") -> Config:
    """
    Validate configuration ``text``; ``path`` names it in problems.

    :raises edgeproxy.errors.ConfigError: listing every problem found.
    """
    parser = configparser.ConfigParser(
        interpolation=None,
        inline_comment_prefixes=("#", ";"),
        default_section=_NO_DEFAULT_SECTION,
        empty_lines_in_values=False,
    )
    try:
        parser.read_string(text, source=path)
    except configparser.Error as error:
        raise ConfigError([_syntax_problem(path, error)]) from None
    return _SectionReader(path, parser).read()


def _syntax_problem(path: str, error: configparser.Error) -> ConfigProblem:
    if isinstance(error, configparser.DuplicateOptionError):
        return ConfigProblem(
            path,
            error.section,
            error.option,
            f"the key appears twice (line {error.lineno})",
        )
    if isinstance(error, configparser.DuplicateSectionError):
        return ConfigProblem(
            path, error.section, "", f"the section appears twice (line {error.lineno})"
        )
    message = str(error).replace("\n", " ")
    return ConfigProblem(path, "", "", f"not a valid INI file: {message}")


class _SectionReader:
    """Turns a parsed INI file into model objects, gathering problems."""

    def __init__(self, path: str, parser: configparser.ConfigParser) -> None:
        self.path = path
        self.parser = parser
        self.problems: list[ConfigProblem] = []
        # Sections that exist but had problems: references to them are not
        # reported again as missing.
        self.invalid: set[str] = set()

    def problem(self, section: str, key: str, message: str) -> None:
        self.problems.append(ConfigProblem(self.path, section, key, message))

    def read(self) -> Config:
        settings = GlobalSettings()
        found: dict[str, dict[str, Any]] = {
            kind.prefix: {} for kind in SECTION_KINDS if kind.named
        }
        for section in self.parser.sections():
            kind, name = self._classify(section)
            if kind is None:
                continue
            value = self._build(section, kind, name)
            if value is None:
                self.invalid.add(section)
                continue
            if kind.named:
                found[kind.prefix][name] = value
            else:
                settings = value
        config = Config(
            path=self.path,
            settings=settings,
            listeners=MappingProxyType(found["listener"]),
            routes=MappingProxyType(found["route"]),
            upstreams=MappingProxyType(found["upstream"]),
            filters=MappingProxyType(found["filter"]),
            caches=MappingProxyType(found["cache"]),
        )
        self._check_references(config)
        if self.problems:
            raise ConfigError(self.problems, partial=config)
        return config

    def _classify(self, section: str) -> tuple[SectionKind | None, str]:
        prefix, colon, name = section.partition(":")
        kind = _KINDS_BY_PREFIX.get(prefix.strip())
        if kind is None or kind.named != bool(colon):
            known = ", ".join(kind.title for kind in SECTION_KINDS)
            self.problem(section, "", f"unknown section (known: {known})")
            return None, ""
        if kind.named:
            try:
                name = parse_name(name)
            except ValueError as error:
                self.problem(section, "", str(error))
                return None, ""
        return kind, name

    def _build(self, section: str, kind: SectionKind, name: str) -> Any:
        keys = {field.name: field for field in kind.settings()}
        values: dict[str, Any] = {}
        collected: dict[str, dict[str, str]] = {
            target: {} for target in kind.prefixed_keys.values()
        }
        if kind.plugin_options:
            collected[kind.plugin_options] = {}
        ok = True
        for key, text in self.parser.items(section):
            field = keys.get(key)
            if field is not None:
                try:
                    values[key] = field.metadata["parse"](text)
                except ValueError as error:
                    self.problem(section, key, str(error))
                    ok = False
                continue
            target = self._plugin_target(kind, key)
            if target is None:
                self.problem(section, key, self._unknown_key(kind, key))
                ok = False
            else:
                prefix = next((p for p in kind.prefixed_keys if key.startswith(p)), "")
                collected[target][key[len(prefix) :]] = text.strip()
        given = {key for key, _ in self.parser.items(section)}
        for key, field in keys.items():
            if key not in given and _is_required(field):
                self.problem(section, key, "this key is required")
                ok = False
        if not ok:
            return None
        for target, options in collected.items():
            values[target] = MappingProxyType(options)
        if kind.named:
            values["name"] = name
        built = kind.model(**values)
        if isinstance(built, RouteConfig):
            built, problems = build_route_specs(built)
            for key, message in problems:
                self.problem(section, key, message)
            if problems:
                return None
        return built

    @staticmethod
    def _plugin_target(kind: SectionKind, key: str) -> str | None:
        for prefix, target in kind.prefixed_keys.items():
            if key.startswith(prefix) and len(key) > len(prefix):
                return target
        return kind.plugin_options

    @staticmethod
    def _unknown_key(kind: SectionKind, key: str) -> str:
        names = [field.name for field in kind.settings()]
        names += [f"{prefix}KEY" for prefix in kind.prefixed_keys]
        close = difflib.get_close_matches(key, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown key for {kind.title} (known: {', '.join(names)}){hint}"

    def _check_references(self, config: Config) -> None:
        if config.settings.admin is not None:
            self._check_endpoint("edgeproxy", "admin", config.settings.admin)
        endpoints: dict[str, str] = {}
        for listener in config.listeners.values():
            self._check_listener(config, listener, endpoints)
        for route in config.routes.values():
            self._check_route(config, route)
        for upstream in config.upstreams.values():
            if upstream.health_options and upstream.health is None:
                first = next(iter(upstream.health_options))
                self.problem(
                    f"upstream:{upstream.name}",
                    f"health.{first}",
                    "health options are given but no health check (set health = ...)",
                )

    def _check_listener(
        self, config: Config, listener: ListenerConfig, endpoints: dict[str, str]
    ) -> None:
        section = f"listener:{listener.name}"
        self._check_endpoint(section, "endpoint", listener.endpoint)
        other = endpoints.setdefault(listener.endpoint, listener.name)
        if other != listener.name:
            self.problem(section, "endpoint", f"listener:{other} uses it already")
        other_protocol, other_keys = (
            ("tcp", _TCP_ONLY_KEYS)
            if listener.protocol == "http"
            else ("http", _HTTP_ONLY_KEYS)
        )
        for key, _ in self.parser.items(section):
            if key in other_keys:
                hint = (
                    " (for http, use an ip_acl filter on the routes)"
                    if key in ("allow", "deny")
                    else ""
                )
                self.problem(
                    section,
                    key,
                    f"only {other_protocol} listeners take this key{hint}",
                )
        if listener.protocol == "http":
            if not listener.routes:
                self.problem(section, "routes", "an http listener needs routes")
            if listener.upstream is not None:
                self.problem(
                    section, "upstream", "an http listener sends requests by routes"
                )
            self._check_names(
                section, "routes", listener.routes, config.routes, "route"
            )
            self._check_tls(section, listener)
        else:
            if listener.upstream is None:
                self.problem(section, "upstream", "a tcp listener needs an upstream")
            if listener.routes:
                self.problem(section, "routes", "a tcp listener has no routes")
            upstream = config.upstreams.get(listener.upstream or "")
            if upstream is not None and any(s.tls for s in upstream.servers):
                self.problem(
                    f"upstream:{upstream.name}",
                    "servers",
                    f"https:// servers cannot serve the tcp listener:{listener.name} "
                    "(TLS passes through a tcp listener untouched: list host:port)",
                )
            self._check_names(
                section,
                "upstream",
                _maybe(listener.upstream),
                config.upstreams,
                "upstream",
            )

    def _check_tls(self, section: str, listener: ListenerConfig) -> None:
        if not listener.tls_certificates:
            for key, _ in self.parser.items(section):
                if key in ("tls_min_version", "tls_ciphers"):
                    self.problem(
                        section,
                        key,
                        "this key needs tls_certificates (an ssl: endpoint "
                        "takes its TLS options in the endpoint string)",
                    )
            return
        if is_tls_endpoint(listener.endpoint):
            self.problem(
                section,
                "endpoint",
                "with tls_certificates edgeproxy terminates TLS itself: "
                "write a tcp: endpoint",
            )
        for message in certificate_problems(listener.tls_certificates):
            self.problem(section, "tls_certificates", message)

    def _check_route(self, config: Config, route: RouteConfig) -> None:
        section = f"route:{route.name}"
        if not route.upstream and not (route.redirect or route.https_redirect):
            self.problem(section, "upstream", "this key is required")
        names = tuple(name for name, _ in route.upstream)
        self._check_names(section, "upstream", names, config.upstreams, "upstream")
        if len(names) < 2:
            for key in ("split_key", "split_override"):
                if getattr(route, key) is not None:
                    self.problem(section, key, "only a traffic split takes this key")
        self._check_names(section, "filters", route.filters, config.filters, "filter")
        self._check_names(section, "cache", _maybe(route.cache), config.caches, "cache")

    def _check_names(
        self,
        section: str,
        key: str,
        names: tuple[str, ...],
        defined: Mapping[str, object],
        kind: str,
    ) -> None:
        for name in names:
            if name not in defined and f"{kind}:{name}" not in self.invalid:
                self.problem(section, key, f"no [{kind}:{name}] section")

    def _check_endpoint(self, section: str, key: str, description: str) -> None:
        reason = check_server_endpoint(description)
        if reason is not None:
            self.problem(section, key, reason)


def _is_required(field: dataclasses.Field[Any]) -> bool:
    return (
        field.default is dataclasses.MISSING
        and field.default_factory is dataclasses.MISSING
    )


def _maybe(name: str | None) -> tuple[str, ...]:
    return () if name is None else (name,)


__all__ = [
    "CacheConfig",
    "Config",
    "FilterConfig",
    "ListenerConfig",
    "RouteConfig",
    "UpstreamConfig",
    "load_config",
    "parse_config",
]
