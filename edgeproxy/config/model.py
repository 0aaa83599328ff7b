"""
The configuration as frozen, typed objects: one class per kind of section.

Each field is a configuration key of the same name.  Its metadata holds the
parser for the key's text and the key's documentation, so that the loader, the
``--check`` output and the configuration reference all come from this one
place.  A field without a default is a required key.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from edgeproxy.balancing.request_keys import parse_request_key
from edgeproxy.config.values import (
    parse_bool,
    parse_duration,
    parse_int,
    parse_list,
    parse_name,
    parse_size,
)
from edgeproxy.core.addresses import AddressSet
from edgeproxy.core.forwarding import ForwardingPolicy
from edgeproxy.core.rewrite import LocationRewrite, Redirect, Rewrite
from edgeproxy.core.routing import RouteMatch
from edgeproxy.tls import (
    CertificateFiles,
    parse_certificate_files,
    parse_tls_ciphers,
    parse_tls_min_version,
)
from edgeproxy.upstream.server_list import ServerSpec, parse_servers


def setting(
    parse: Callable[[str], Any], doc: str, default: Any = dataclasses.MISSING
) -> Any:
    """Declare a configuration key: its parser, its documentation, its default."""
    return field(default=default, metadata={"parse": parse, "doc": doc})


def _names(text: str) -> tuple[str, ...]:
    return tuple(parse_name(item) for item in parse_list(text))


def _protocol(text: str) -> str:
    protocol = text.strip().lower()
    if protocol not in ("http", "tcp"):
        raise ValueError(f"{text.strip()!r} is not a protocol (write http or tcp)")
    return protocol


def _text(text: str) -> str:
    return text.strip()


def _optional_text(text: str) -> str | None:
    return text.strip() or None


def _optional_name(text: str) -> str | None:
    return parse_name(text) if text.strip() else None


def _methods(text: str) -> frozenset[str]:
    methods = frozenset(item.upper() for item in parse_list(text))
    bad = sorted(m for m in methods if not m.isalpha())
    if bad:
        raise ValueError(f"{bad[0]!r} is not a method name")
    return methods


def _regex(text: str) -> str:
    pattern = text.strip()
    try:
        re.compile(pattern.encode("utf-8"))
    except re.error as error:
        raise ValueError(f"{pattern!r} is not a regular expression: {error}") from None
    return pattern


def _redirect_status(text: str) -> int:
    status = parse_int(text)
    if status not in (301, 302, 307, 308):
        raise ValueError(f"{status} is not a redirect status (301, 302, 307, 308)")
    return status


def _port(text: str) -> int | None:
    if not text.strip():
        return None
    port = parse_int(text, minimum=1)
    if port > 65535:
        raise ValueError(f"{port} is not a port")
    return port


def _addresses(text: str) -> tuple[str, ...]:
    entries = parse_list(text)
    AddressSet(entries)
    return entries


def _servers(text: str) -> tuple[ServerSpec, ...]:
    servers, problems = parse_servers(text, allow_tls=True)
    if problems:
        raise ValueError("; ".join(problems))
    if not servers:
        raise ValueError("no servers are listed")
    return servers


def _upstream_shares(text: str) -> tuple[tuple[str, float], ...]:
    entries = parse_list(text)
    if len(entries) == 1 and "%" not in entries[0]:
        return ((parse_name(entries[0]), 100.0),)
    shares: list[tuple[str, float]] = []
    for entry in entries:
        parts = entry.split()
        if len(parts) != 2 or not parts[1].endswith("%"):
            raise ValueError(f"{entry!r} is not 'NAME PERCENT%' (e.g. canary 5%)")
        try:
            percent = float(parts[1][:-1])
        except ValueError:
            raise ValueError(f"{parts[1]!r} is not a percent") from None
        if not 0 < percent <= 100:
            raise ValueError(f"{parts[1]!r} is not a percent above 0")
        shares.append((parse_name(parts[0]), percent))
    names = [name for name, _ in shares]
    if len(set(names)) != len(names):
        raise ValueError("an upstream is named twice")
    if shares and abs(sum(percent for _, percent in shares) - 100) > 1e-6:
        raise ValueError("the percents must add up to 100")
    return tuple(shares)


def _split_key(text: str) -> str | None:
    key = text.strip()
    if not key:
        return None
    if key != "client_ip" and not key.startswith(("header:", "cookie:")):
        raise ValueError(f"{key!r} is not client_ip, header:NAME or cookie:NAME")
    parse_request_key(key)
    return key


def _split_override(text: str) -> str | None:
    key = text.strip()
    if not key:
        return None
    if not key.startswith(("header:", "cookie:")):
        raise ValueError(f"{key!r} is not header:NAME or cookie:NAME")
    parse_request_key(key)
    return key


def _statuses(text: str) -> frozenset[int]:
    statuses = set()
    for item in parse_list(text):
        status = parse_int(item)
        if not 400 <= status <= 599:
            raise ValueError(f"{status} is not a 4xx or 5xx status")
        statuses.add(status)
    return frozenset(statuses)


def _proxy_version(text: str) -> str | None:
    version = text.strip().lower()
    if version in ("", "no", "off"):
        return None
    if version not in ("v1", "v2"):
        raise ValueError(f"{text.strip()!r} is not a PROXY protocol version (v1, v2)")
    return version


def _cache_store(text: str) -> str:
    store = text.strip()
    if store == "memory":
        return store
    kind, colon, path = store.partition(":")
    if kind.strip() == "disk" and colon and path.strip():
        return "disk:" + path.strip()
    raise ValueError(f"{store!r} is not memory or disk:PATH")


def _cache_key(text: str) -> str | None:
    key = text.strip()
    if not key:
        return None
    kind, colon, name = key.partition(":")
    if kind not in ("header", "cookie") or not colon or not name.strip():
        raise ValueError(f"{key!r} is not header:NAME or cookie:NAME")
    if any(c in name for c in " \t,;="):
        raise ValueError(f"{name.strip()!r} is not a field or cookie name")
    return f"{kind}:{name.strip()}"


def _positive_duration(text: str) -> float:
    seconds = parse_duration(text)
    if seconds <= 0:
        raise ValueError(f"{text.strip()!r} must be more than 0")
    return seconds


def _access_log(text: str) -> str | None:
    path = text.strip()
    if path.lower() in ("", "off", "no"):
        return None
    return path


def _access_log_format(text: str) -> str:
    name = text.strip().lower()
    if name not in ("combined", "json"):
        raise ValueError(
            f"{text.strip()!r} is not an access log format (combined, json)"
        )
    return name


@dataclass(frozen=True)
class GlobalSettings:
    """The ``[edgeproxy]`` section: settings of the whole process."""

    admin: str | None = setting(
        _text,
        "Endpoint of the admin surface (JSON status), e.g. "
        "``tcp:9901:interface=127.0.0.1``.  Off when not given.",
        default=None,
    )
    access_log: str | None = setting(
        _access_log,
        "Where to write one line per HTTP request and per TCP connection: a "
        "file (relative to the "
        "configuration file's directory; its directory must exist), ``-`` for "
        "standard output, or ``off`` (the default).  The file is opened again "
        "on reload (``SIGHUP``), for log rotation.",
        default=None,
    )
    access_log_format: str = setting(
        _access_log_format,
        "``combined`` (nginx's combined format followed by ``rt=`` seconds, "
        "``route=``, ``upstream=``, ``rid=`` request id and ``reason=`` of "
        "local answers) or ``json`` (one object per line).",
        default="combined",
    )


@dataclass(frozen=True)
class ListenerConfig:
    """A ``[listener:NAME]`` section: one listening endpoint."""

    name: str
    protocol: str = setting(_protocol, "``http`` or ``tcp``.")
    endpoint: str = setting(
        _text,
        "A Twisted server endpoint string: ``tcp:8080``, "
        "``tcp:8080:interface=127.0.0.1``, ``ssl:8443:privateKey=...``, "
        "``unix:/run/edgeproxy.sock``.",
    )
    routes: tuple[str, ...] = setting(
        _names,
        "``http`` listeners: the routes to try, in order (comma-separated names "
        "of ``[route:NAME]`` sections).",
        default=(),
    )
    upstream: str | None = setting(
        _optional_name,
        "``tcp`` listeners: the ``[upstream:NAME]`` to balance connections over.",
        default=None,
    )
    allow: tuple[str, ...] = setting(
        _addresses,
        "``tcp`` listeners: client addresses and CIDRs allowed to connect "
        "(IPv4 and IPv6); all when not given.  Others are closed at once.  "
        "For ``http`` routes, use the ``ip_acl`` filter.",
        default=(),
    )
    deny: tuple[str, ...] = setting(
        _addresses,
        "``tcp`` listeners: client addresses and CIDRs refused (``deny`` wins "
        "over ``allow``).",
        default=(),
    )
    max_connections: int = setting(
        lambda text: parse_int(text, minimum=0),
        "``tcp`` listeners: client connections open at once (0: no cap); "
        "excess ones are closed at once.",
        default=0,
    )
    max_connections_per_ip: int = setting(
        lambda text: parse_int(text, minimum=0),
        "``tcp`` listeners: client connections open at once from one address "
        "(0: no cap).",
        default=0,
    )
    accept_proxy_protocol: bool = setting(
        parse_bool,
        "``tcp`` listeners: clients (a load balancer in front) start with a "
        "PROXY protocol header, v1 or v2; its source address is the client's "
        "address for balancing, ``allow``/``deny`` and logs.  Connections "
        "without a valid header are closed.",
        default=False,
    )
    send_proxy_protocol: str | None = setting(
        _proxy_version,
        "``tcp`` listeners: send each server a PROXY protocol header (``v1`` or "
        "``v2``) with the client's address.",
        default=None,
    )
    connect_timeout: float = setting(
        _positive_duration,
        "``tcp`` listeners: time to connect to a server before trying the next.",
        default=5.0,
    )
    idle_timeout: float = setting(
        parse_duration,
        "``tcp`` listeners: time without a byte either way before both "
        "connections are closed (0: no limit).",
        default=3600.0,
    )
    proxy_protocol_timeout: float = setting(
        _positive_duration,
        "``tcp`` listeners: time for the PROXY header to arrive.",
        default=5.0,
    )
    max_head_size: int = setting(
        parse_size,
        "``http`` listeners: largest request line and header fields; larger "
        "heads get 431.",
        default=16 * 1024,
    )
    max_header_count: int = setting(
        lambda text: parse_int(text, minimum=1),
        "``http`` listeners: most header fields in a request (431 beyond).",
        default=100,
    )
    max_uri_length: int = setting(
        parse_size,
        "``http`` listeners: longest request target (414 beyond).",
        default=8 * 1024,
    )
    max_body_size: int = setting(
        parse_size,
        "``http`` listeners: largest request body (413 beyond); 0 for no limit.",
        default=1024 * 1024,
    )
    head_timeout: float = setting(
        parse_duration,
        "``http`` listeners: time for a request head to arrive once started "
        "(408 after it): the guard against slow-header clients.",
        default=60.0,
    )
    body_timeout: float = setting(
        parse_duration,
        "``http`` listeners: longest pause inside a request body (408 after it).",
        default=60.0,
    )
    keepalive_timeout: float = setting(
        parse_duration,
        "``http`` listeners: how long an idle client connection is kept open.",
        default=75.0,
    )
    send_timeout: float = setting(
        parse_duration,
        "``http`` listeners: how long a client may leave its socket full "
        "before it is dropped.",
        default=60.0,
    )
    tls_certificates: tuple[CertificateFiles, ...] = setting(
        parse_certificate_files,
        "``http`` listeners: terminate TLS with these certificates, the "
        "``endpoint`` staying ``tcp:``.  Comma-separated items, each "
        "``CHAIN.pem`` (the certificate, the CAs above it and the unencrypted "
        "private key in one PEM file) or ``CHAIN.pem:KEY.pem``.  The client's "
        "SNI picks the certificate whose DNS names match it (exact names, then "
        "``*.`` wildcards of one label); the first is served when SNI is absent "
        "or unknown.  ALPN agrees to ``http/1.1`` only.",
        default=(),
    )
    tls_min_version: str = setting(
        parse_tls_min_version,
        "``http`` listeners with ``tls_certificates``: the oldest TLS version "
        "accepted, ``1.2`` or ``1.3``; 1.0 and 1.1 are always refused.",
        default="1.2",
    )
    tls_ciphers: str | None = setting(
        parse_tls_ciphers,
        "``http`` listeners with ``tls_certificates``: an OpenSSL cipher string "
        "for TLS 1.2 (TLS 1.3 suites are OpenSSL's own).  Forward-secret AEAD "
        "ciphers (``ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20``) when "
        "not given.",
        default=None,
    )


@dataclass(frozen=True)
class RouteConfig:
    """A ``[route:NAME]`` section: which requests go where, through which filters."""

    name: str
    upstream: tuple[tuple[str, float], ...] = setting(
        _upstream_shares,
        "The ``[upstream:NAME]`` that serves the route (required unless the "
        "route redirects); or a traffic split between upstreams by percent: "
        "``stable 95%, canary 5%`` (the percents add up to 100).",
        default=(),
    )
    split_key: str | None = setting(
        _split_key,
        "Traffic splits: keep each client on one side by hashing ``client_ip``, "
        "``header:NAME`` or ``cookie:NAME`` (a request without it is split by "
        "weight).  Without it, the shares are exact over requests.",
        default=None,
    )
    split_override: str | None = setting(
        _split_override,
        "Traffic splits: ``header:NAME`` or ``cookie:NAME`` whose value, when it "
        "names one of the split's upstreams, sends the request there "
        "(``X-Canary: canary``).",
        default=None,
    )
    host: tuple[str, ...] = setting(
        parse_list,
        "Host names the route serves: exact (``api.example.com``) or wildcard "
        "(``*.example.com``: one or more labels), compared without case, port "
        "or trailing dot.  Any host when not given.",
        default=(),
    )
    path_prefix: str = setting(
        _text,
        "Serve paths that start with this prefix, compared as received "
        "(``/v1/`` does not match ``/v1``).",
        default="",
    )
    path_regex: str = setting(
        _regex,
        "Serve paths in which this regular expression is found (anchor it with "
        "``^...$`` to match the whole path); its groups serve ``redirect``.",
        default="",
    )
    methods: frozenset[str] = setting(
        _methods, "Serve only these methods (comma-separated).", default=frozenset()
    )
    query: tuple[str, ...] = setting(
        parse_list,
        "Query parameters that must be present: ``name`` (present) or "
        "``name=value`` (that exact raw value), comma-separated.",
        default=(),
    )
    filters: tuple[str, ...] = setting(
        _names,
        "Filters to run, in order, by the names of ``[filter:NAME]`` sections. "
        "Requests run them in this order, responses in reverse.",
        default=(),
    )
    rewrite: str = setting(
        _text,
        "``REGEX REPLACEMENT``: when the regex is found in the path, the path "
        "sent upstream becomes the replacement, with ``$1``, ``${name}`` for "
        "the groups; the query is kept (joined with ``&`` when the replacement "
        "has one, dropped when it ends in ``?``).",
        default="",
    )
    strip_prefix: str = setting(
        _text, "Remove this prefix from the path sent upstream.", default=""
    )
    add_prefix: str = setting(
        _text, "Put this prefix before the path sent upstream.", default=""
    )
    redirect: str = setting(
        _text,
        "Answer with a redirect to this URL or path instead of proxying; "
        "``$1``, ``${name}`` are groups of ``rewrite`` or ``path_regex``.",
        default="",
    )
    redirect_status: int = setting(
        _redirect_status, "The status of ``redirect`` answers.", default=302
    )
    https_redirect: bool = setting(
        parse_bool,
        "Redirect every request to the same host and target over ``https://``.",
        default=False,
    )
    https_port: int | None = setting(
        _port,
        "The port put in ``https_redirect`` URLs (443 when not given).",
        default=None,
    )
    websocket: bool = setting(
        parse_bool,
        "Pass WebSocket upgrades through: a request with ``Upgrade: websocket`` "
        "goes upstream with its ``Upgrade``; a ``101`` answer turns both "
        "connections into a byte-faithful tunnel.  Without it, ``Upgrade`` is "
        "not forwarded.",
        default=False,
    )
    websocket_idle_timeout: float = setting(
        parse_duration,
        "Close a WebSocket tunnel after this long without a byte either way "
        "(0: never).",
        default=3600.0,
    )
    websocket_max_lifetime: float = setting(
        parse_duration,
        "Close a WebSocket tunnel this long after it opened (0: never).",
        default=0.0,
    )
    location_rewrite: bool = setting(
        parse_bool,
        "Rewrite ``Location``, ``Content-Location`` and ``Refresh`` fields that "
        "point at the upstream server back to the public host (nginx's "
        "``proxy_redirect default``).",
        default=True,
    )
    location_rewrite_hosts: tuple[str, ...] = setting(
        parse_list,
        "More host names (``host`` or ``host:port``) the upstream calls itself, "
        "for ``location_rewrite``.",
        default=(),
    )
    trusted_proxies: tuple[str, ...] = setting(
        _addresses,
        "Addresses and CIDRs of proxies in front of edgeproxy whose "
        "``X-Forwarded-*``, ``X-Real-IP`` and ``Forwarded`` fields are believed "
        "(and whose ``X-Forwarded-For`` names the real client).  From any other "
        "peer these fields are replaced.",
        default=(),
    )
    preserve_host: bool = setting(
        parse_bool,
        "Send the client's ``Host`` upstream; when ``no``, send the server's "
        "``host:port``.",
        default=True,
    )
    x_forwarded_for: bool = setting(
        parse_bool, "Append the client address to ``X-Forwarded-For``.", default=True
    )
    x_real_ip: bool = setting(
        parse_bool, "Send ``X-Real-IP`` with the client address.", default=True
    )
    x_forwarded_proto: bool = setting(
        parse_bool, "Send ``X-Forwarded-Proto`` (``http`` or ``https``).", default=True
    )
    x_forwarded_host: bool = setting(
        parse_bool, "Send ``X-Forwarded-Host`` with the client's Host.", default=True
    )
    forwarded: bool = setting(
        parse_bool, "Append an RFC 7239 ``Forwarded`` element.", default=True
    )
    forwarded_by: str = setting(
        _text, "The ``by=`` node of ``Forwarded`` (left out when empty).", default=""
    )
    forwarded_for_port: bool = setting(
        parse_bool, "Put the client's port in ``Forwarded: for=``.", default=False
    )
    via: bool = setting(parse_bool, "Append to ``Via``.", default=True)
    via_pseudonym: str = setting(
        _text, "The name edgeproxy gives itself in ``Via``.", default="edgeproxy"
    )
    cache: str | None = setting(
        _optional_name,
        "The ``[cache:NAME]`` that keeps this route's responses (RFC 9111 shared "
        "cache); not cached when not given.  ``PURGE`` requests to a route "
        "without a cache get 405.",
        default=None,
    )
    header_equals: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({})
    )
    header_regex: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({})
    )
    specs: RouteSpecs | None = field(default=None, compare=False)


@dataclass(frozen=True)
class RouteSpecs:
    """The working policy objects of a route, built from its keys."""

    match: RouteMatch
    rewrite: Rewrite
    redirect: Redirect | None
    location: LocationRewrite
    forwarding: ForwardingPolicy


@dataclass(frozen=True)
class UpstreamConfig:
    """An ``[upstream:NAME]`` section: a pool of servers."""

    name: str
    servers: tuple[ServerSpec, ...] = setting(
        _servers,
        "The servers, comma-separated: ``host:port``, ``[ipv6]:port`` or (for "
        "HTTP upstreams) ``https://host:port``, each followed by parameters: "
        "``weight=N`` (1 to 1000, default 1), ``max_conns=N`` (0: no cap), "
        "``server_name=NAME`` (TLS name to verify), ``backup`` (used only while "
        "no primary server is available), ``down`` (configured out).",
    )
    balance: str = setting(
        parse_name,
        "The balancing strategy plugin; its options are the ``balance.KEY`` keys.",
        default="round_robin",
    )
    health: str | None = setting(
        _optional_name,
        "The active health-check plugin; its options are the ``health.KEY`` keys. "
        "No active checks when not given.",
        default=None,
    )
    max_fails: int = setting(
        lambda text: parse_int(text, minimum=0),
        "Passive health: failures within ``fail_timeout`` that take a server out "
        "of rotation for ``fail_timeout`` (0 turns passive checks off; a pool "
        "of one server never takes it out, as nginx does).",
        default=1,
    )
    fail_timeout: float = setting(
        _positive_duration,
        "Passive health: the window for ``max_fails`` and how long a failed "
        "server stays out.",
        default=10.0,
    )
    health_interval: float = setting(
        _positive_duration,
        "Active health: time between probes of each server.",
        default=5.0,
    )
    health_timeout: float = setting(
        _positive_duration, "Active health: how long a probe may take.", default=2.0
    )
    rise: int = setting(
        lambda text: parse_int(text, minimum=1),
        "Active health: good probes in a row that bring a down server back.",
        default=2,
    )
    fall: int = setting(
        lambda text: parse_int(text, minimum=1),
        "Active health: failed probes in a row that take an up server out.",
        default=3,
    )
    connect_timeout: float = setting(
        _positive_duration,
        "HTTP: time to connect to a server (504 after it, or the next server).",
        default=5.0,
    )
    first_byte_timeout: float = setting(
        parse_duration,
        "HTTP: time from sending a request to the first byte of its response "
        "(504 after it); 0 for no limit.",
        default=60.0,
    )
    read_timeout: float = setting(
        parse_duration,
        "HTTP: longest pause between two reads of a response (the response is "
        "cut after it); 0 for no limit.",
        default=60.0,
    )
    retries: int = setting(
        lambda text: parse_int(text, minimum=0),
        "HTTP: how many more servers to try when a connection fails, or (for "
        "idempotent requests without a body already sent) when it resets "
        "before any response byte.",
        default=1,
    )
    retry_on: frozenset[int] = setting(
        _statuses,
        "HTTP: response statuses that send an idempotent request to another "
        "server (while ``retries`` last), e.g. ``502, 503, 504``; the last "
        "server's answer is relayed as it is.  None by default.",
        default=frozenset(),
    )
    keepalive: int = setting(
        lambda text: parse_int(text, minimum=0),
        "HTTP: idle connections kept open to each server for reuse (0: none).",
        default=32,
    )
    keepalive_timeout: float = setting(
        parse_duration,
        "HTTP: how long an idle upstream connection is kept.",
        default=60.0,
    )
    tls_verify: bool = setting(
        parse_bool,
        "HTTP: verify ``https://`` servers' certificates against their name.  "
        "Turning it off is logged as a warning at startup.",
        default=True,
    )
    tls_ca_file: str | None = setting(
        _optional_text,
        "HTTP: a PEM file of the CAs to trust for ``https://`` servers "
        "(the system's trust store when not given).",
        default=None,
    )
    health_options: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({})
    )
    balance_options: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({})
    )


@dataclass(frozen=True)
class FilterConfig:
    """A ``[filter:NAME]`` section: a configured filter plugin."""

    name: str
    plugin: str = setting(parse_name, "The filter plugin's name.")
    options: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class CacheConfig:
    """A ``[cache:NAME]`` section: a shared HTTP cache that routes name."""

    name: str
    store: str = setting(
        _cache_store,
        "Where responses are kept: ``memory`` (lost on restart) or "
        "``disk:PATH``, a directory (relative to the configuration file's) "
        "that survives restarts; one directory per process.",
        default="memory",
    )
    max_size: int = setting(
        parse_size,
        "The bound on stored bytes (bodies and metadata); the least recently "
        "used responses go first.",
        default=256 * 1024 * 1024,
    )
    max_object_size: int = setting(
        parse_size,
        "The largest body stored; larger responses pass through uncached.",
        default=8 * 1024 * 1024,
    )
    default_ttl: float = setting(
        parse_duration,
        "How long a response that may be cached but states no freshness and "
        "no ``Last-Modified`` stays fresh (0: it is not served without "
        "revalidation).",
        default=0.0,
    )
    heuristic: bool = setting(
        parse_bool,
        "Give a response with ``Last-Modified`` and no stated freshness 10% of "
        "its age as freshness (RFC 9111 section 4.2.2).",
        default=True,
    )
    heuristic_max: float = setting(
        parse_duration,
        "The longest heuristic freshness.",
        default=86400.0,
    )
    stale_if_error: float = setting(
        parse_duration,
        "How long past its freshness a stored response may answer when the "
        "upstream fails (no answer, 500, 502, 503, 504), even when the "
        "response does not say ``stale-if-error`` (never against "
        "``must-revalidate``); 0: only as responses say.",
        default=0.0,
    )
    key: str | None = setting(
        _cache_key,
        "``header:NAME`` or ``cookie:NAME``: a request field or cookie whose "
        "value separates stored responses (a tenant, a language).",
        default=None,
    )
    purge_from: tuple[str, ...] = setting(
        _addresses,
        "Client addresses and CIDRs allowed to send ``PURGE`` for a URL "
        "(others get 403); nobody when not given.",
        default=(),
    )


@dataclass(frozen=True)
class Config:
    """
    A whole configuration file, validated.

    :ivar path: the file it was read from, as given.
    """

    path: str
    settings: GlobalSettings
    listeners: Mapping[str, ListenerConfig]
    routes: Mapping[str, RouteConfig]
    upstreams: Mapping[str, UpstreamConfig]
    filters: Mapping[str, FilterConfig]
    caches: Mapping[str, CacheConfig] = field(
        default_factory=lambda: MappingProxyType({})
    )


@dataclass(frozen=True)
class SectionKind:
    """
    One kind of section: how it is written and which class it becomes.

    :ivar prefix: ``listener`` for ``[listener:NAME]``; the full name for a
        singleton section such as ``[edgeproxy]``.
    :ivar model: the frozen class the section becomes.
    :ivar prefixed_keys: key prefixes (``health.``, ``header.``) whose keys
        are collected, without the prefix, in the model field named.
    :ivar plugin_options: the field that collects every key not in the model
        (``[filter:NAME]`` passes them all to its plugin), or ``None``.
    """

    prefix: str
    named: bool
    model: type
    prefixed_keys: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({})
    )
    plugin_options: str | None = None

    @property
    def title(self) -> str:
        """How the section is written, e.g. ``[listener:NAME]``."""
        return f"[{self.prefix}:NAME]" if self.named else f"[{self.prefix}]"

    def settings(self) -> list[dataclasses.Field[Any]]:
        """The configuration keys of this kind: the fields that have a parser."""
        return [f for f in dataclasses.fields(self.model) if "parse" in f.metadata]


SECTION_KINDS: tuple[SectionKind, ...] = (
    SectionKind("edgeproxy", named=False, model=GlobalSettings),
    SectionKind("listener", named=True, model=ListenerConfig),
    SectionKind(
        "route",
        named=True,
        model=RouteConfig,
        prefixed_keys=MappingProxyType(
            {"header.": "header_equals", "header_regex.": "header_regex"}
        ),
    ),
    SectionKind(
        "upstream",
        named=True,
        model=UpstreamConfig,
        prefixed_keys=MappingProxyType(
            {"health.": "health_options", "balance.": "balance_options"}
        ),
    ),
    SectionKind("filter", named=True, model=FilterConfig, plugin_options="options"),
    SectionKind("cache", named=True, model=CacheConfig),
)
