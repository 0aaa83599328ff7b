"""
The ``servers`` key of an ``[upstream:NAME]`` section.

The value is a comma-separated list of entries; line breaks are spaces, so a
long list may be written one entry per line (each line but the last ending in
a comma).  An entry is an address followed by parameters, separated by spaces::

    servers = 10.0.0.1:9001 weight=3, 10.0.0.2:9001, 10.0.0.3:9001 backup,
              https://api.internal:443 max_conns=100 server_name=api.internal,
              [::1]:9000 down

Addresses:

``HOST:PORT``
    A host name or IPv4 address and a port (1 to 65535).
``[IPV6]:PORT``
    An IPv6 address, always in brackets.
``https://HOST:PORT``
    The same, spoken to over TLS; the port defaults to 443.  Only HTTP
    upstreams accept it: a TCP upstream passes TLS through untouched.

Parameters:

``weight=N``
    The server's share of requests relative to the others, 1 to 1000
    (default 1).  Strategies that ignore weights (``round_robin``) say so.
``max_conns=N``
    At most N requests (connections, for TCP) in flight on this server; a
    server at its cap is skipped.  0, the default, means no cap.
``server_name=NAME``
    The name sent in TLS SNI and checked against the server's certificate
    (default: the host).  Only for ``https://`` servers.
``backup``
    Used only while no other (primary) server is available.
``down``
    Never used, until enabled at run time or removed from the list.

Every entry must name a different ``HOST:PORT``: that pair is the server's
identity (its *key*), kept across reloads.  Host names are compared without
regard to case.  Empty entries (a trailing comma) are ignored.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

_HOSTNAME = re.compile(
    r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9_-]{1,63}(?<!-))*\.?"
)
_DOTTED_NUMBERS = re.compile(r"[0-9.]+")
_DIGITS = re.compile(r"[0-9]+")
_HTTPS = "https://"
_DEFAULT_TLS_PORT = 443
MAX_WEIGHT = 1000
_FLAGS = frozenset({"backup", "down"})
_VALUED = frozenset({"weight", "max_conns", "server_name"})


@dataclass(frozen=True)
class ServerSpec:
    """
    One upstream server as configured.

    :ivar host: a host name (lower case), an IPv4 address or an IPv6 address
        (without brackets).
    :ivar port: the port.
    :ivar tls: whether connections to it use TLS (``https://``).
    :ivar weight: its relative share of requests, at least 1.
    :ivar backup: whether it is used only when no primary server is available.
    :ivar max_conns: the cap on requests in flight; 0 means no cap.
    :ivar down: whether it starts disabled.
    :ivar server_name: the TLS server name to send and verify, or ``None`` to
        use :attr:`host`.
    """

    host: str
    port: int
    tls: bool
    weight: int = 1
    backup: bool = False
    max_conns: int = 0
    down: bool = False
    server_name: str | None = None

    @property
    def key(self) -> str:
        """The server's identity, ``host:port`` (``[host]:port`` for IPv6)."""
        return format_address(self.host, self.port)


def format_address(host: str, port: int) -> str:
    """Return ``host:port``, with brackets around an IPv6 ``host``."""
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def parse_servers(
    text: str, *, allow_tls: bool
) -> tuple[tuple[ServerSpec, ...], tuple[str, ...]]:
    """
    Parse the value of a ``servers`` key.

    :param text: the value as written.
    :param allow_tls: whether ``https://`` addresses are accepted (HTTP
        upstreams) or refused (TCP upstreams).
    :return: the servers that parsed, in order, and one message for each
        problem found, naming the entry at fault.  The configuration is
        usable only if there are no problems.
    """
    specs: list[ServerSpec] = []
    problems: list[str] = []
    seen: set[str] = set()
    for raw in text.split(","):
        entry = " ".join(raw.split())
        if not entry:
            continue
        spec, entry_problems = _parse_entry(entry, allow_tls)
        problems.extend(f"{entry!r}: {problem}" for problem in entry_problems)
        if spec is None:
            continue
        if spec.key in seen:
            problems.append(f"{entry!r}: {spec.key} is listed more than once")
            continue
        seen.add(spec.key)
        specs.append(spec)
    if not specs and not problems:
        problems.append("no servers are listed")
    return tuple(specs), tuple(problems)


def _parse_entry(entry: str, allow_tls: bool) -> tuple[ServerSpec | None, list[str]]:
    """Parse one entry; the spec is ``None`` when any part of it is wrong."""
    address, *params = entry.split(" ")
    problems: list[str] = []
    tls = False
    if address.lower().startswith(_HTTPS):
        tls = True
        address = address[len(_HTTPS) :]
        if not allow_tls:
            problems.append("https:// is only for HTTP upstreams")
    elif "://" in address:
        problems.append(
            "the only scheme allowed is https://; plain servers are HOST:PORT"
        )
        address = address.partition("://")[2]
    host, port = _parse_address(address, tls, problems)
    options = _parse_params(params, problems)
    weight = _number(
        options, "weight", default=1, low=1, high=MAX_WEIGHT, problems=problems
    )
    max_conns = _number(
        options, "max_conns", default=0, low=0, high=None, problems=problems
    )
    server_name = options.get("server_name")
    if server_name is not None:
        if not tls:
            problems.append("server_name is only for https:// servers")
        elif not _HOSTNAME.fullmatch(server_name):
            problems.append(f"server_name {server_name!r} is not a host name")
        server_name = server_name.lower()
    if problems or host is None or port is None:
        return None, problems
    spec = ServerSpec(
        host=host,
        port=port,
        tls=tls,
        weight=weight,
        backup="backup" in options,
        max_conns=max_conns,
        down="down" in options,
        server_name=server_name,
    )
    return spec, problems


def _parse_address(
    address: str, tls: bool, problems: list[str]
) -> tuple[str | None, int | None]:
    """Split and check ``HOST:PORT`` or ``[IPV6]:PORT``, appending problems."""
    if address.startswith("["):
        bracketed, closed, rest = address[1:].partition("]")
        if not closed:
            problems.append("an IPv6 address needs a closing ']'")
            return None, None
        try:
            host: str | None = str(ipaddress.IPv6Address(bracketed))
        except ValueError:
            problems.append(f"{bracketed!r} is not an IPv6 address")
            host = None
        if rest and not rest.startswith(":"):
            problems.append("a ':' and a port must follow the ']'")
            return None, None
        port_text = rest[1:] if rest else None
    else:
        if address.count(":") > 1:
            problems.append("an IPv6 address must be written in brackets: [ADDR]:PORT")
            return None, None
        host_text, colon, rest = address.partition(":")
        port_text = rest if colon else None
        host = _check_host(host_text, problems)
    if port_text is None:
        if tls:
            return host, _DEFAULT_TLS_PORT
        problems.append("a port is needed: HOST:PORT")
        return host, None
    if not _DIGITS.fullmatch(port_text) or not 1 <= int(port_text) <= 65535:
        problems.append(f"port {port_text!r} is not a number from 1 to 65535")
        return host, None
    return host, int(port_text)


def _check_host(text: str, problems: list[str]) -> str | None:
    """Return a host name (lower case) or IPv4 address, or note why it is not one."""
    if not text:
        problems.append("the host is missing")
        return None
    if _DOTTED_NUMBERS.fullmatch(text):
        try:
            return str(ipaddress.IPv4Address(text))
        except ValueError:
            problems.append(f"{text!r} is not an IPv4 address")
            return None
    if not _HOSTNAME.fullmatch(text):
        problems.append(f"{text!r} is not a host name")
        return None
    return text.lower()


def _parse_params(params: list[str], problems: list[str]) -> dict[str, str]:
    """Read ``name=value`` parameters and flags, appending problems."""
    options: dict[str, str] = {}
    for param in params:
        name, equals, value = param.partition("=")
        if name in options:
            problems.append(f"{name} is given more than once")
        elif name in _FLAGS:
            if equals:
                problems.append(f"{name} takes no value")
            options[name] = ""
        elif name in _VALUED:
            if not value:
                problems.append(f"{name} needs a value: {name}=...")
            else:
                options[name] = value
        else:
            known = ", ".join(sorted(_FLAGS | _VALUED))
            problems.append(
                f"unknown parameter {param!r} (known: {known}; "
                "entries are separated by commas)"
            )
    return options


def _number(
    options: dict[str, str],
    name: str,
    *,
    default: int,
    low: int,
    high: int | None,
    problems: list[str],
) -> int:
    """Read an integer parameter within ``low``..``high``, appending problems."""
    text = options.get(name)
    if text is None:
        return default
    if _DIGITS.fullmatch(text):
        value = int(text)
        if value >= low and (high is None or value <= high):
            return value
    limit = f"from {low} to {high}" if high is not None else f"{low} or more"
    problems.append(f"{name}={text} is not a whole number {limit}")
    return default
