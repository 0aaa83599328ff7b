"""Building a route's working policy objects from its validated keys."""

from __future__ import annotations

import dataclasses

from edgeproxy.config.model import RouteConfig, RouteSpecs
from edgeproxy.core.addresses import AddressSet
from edgeproxy.core.forwarding import ForwardingPolicy
from edgeproxy.core.rewrite import LocationRewrite, Redirect, Rewrite
from edgeproxy.core.routing import RouteMatch


def build_route_specs(
    route: RouteConfig,
) -> tuple[RouteConfig, list[tuple[str, str]]]:
    """
    Return ``route`` with its ``specs`` filled in, and the problems found.

    Each problem is a ``(key, message)`` pair; when there is any, ``specs`` is
    left ``None``.
    """
    problems: list[tuple[str, str]] = []

    try:
        match = RouteMatch(
            hosts=route.host,
            path_prefix=route.path_prefix,
            path_regex=route.path_regex,
            methods=route.methods,
            headers=tuple(sorted(route.header_equals.items())),
            header_regexes=tuple(sorted(route.header_regex.items())),
            query=route.query,
        )
    except ValueError as error:
        problems.append((_match_key(route, str(error)), str(error)))
    try:
        rewrite = Rewrite.from_config(
            route.rewrite, route.strip_prefix, route.add_prefix
        )
    except ValueError as error:
        problems.append(("rewrite", str(error)))
    redirect = None
    if route.redirect or route.https_redirect:
        pattern = route.rewrite.strip().rpartition(" ")[0].strip() or route.path_regex
        try:
            redirect = Redirect(
                status=route.redirect_status,
                location=route.redirect,
                https=route.https_redirect,
                https_port=route.https_port,
                pattern=pattern,
            )
        except ValueError as error:
            problems.append(("redirect", str(error)))
    try:
        location = LocationRewrite(
            enabled=route.location_rewrite,
            upstream_hosts=route.location_rewrite_hosts,
            strip_prefix=route.strip_prefix,
            add_prefix=route.add_prefix,
        )
    except ValueError as error:
        problems.append(("location_rewrite_hosts", str(error)))
    try:
        forwarding = ForwardingPolicy(
            trusted_proxies=AddressSet(route.trusted_proxies),
            preserve_host=route.preserve_host,
            x_forwarded_for=route.x_forwarded_for,
            x_real_ip=route.x_real_ip,
            x_forwarded_proto=route.x_forwarded_proto,
            x_forwarded_host=route.x_forwarded_host,
            forwarded=route.forwarded,
            forwarded_by=route.forwarded_by,
            forwarded_for_port=route.forwarded_for_port,
            via=route.via,
            via_pseudonym=route.via_pseudonym,
        )
    except ValueError as error:
        key = "via_pseudonym" if "via" in str(error) else "forwarded_by"
        problems.append((key, str(error)))
    if problems:
        return route, problems
    specs = RouteSpecs(match, rewrite, redirect, location, forwarding)
    return dataclasses.replace(route, specs=specs), problems


def _match_key(route: RouteConfig, message: str) -> str:
    """The key a RouteMatch error is about: its messages start with the key."""
    first = message.split(" ", 1)[0]
    if first.startswith(("header.", "header_regex.")) or first in (
        "path_regex",
        "query",
        "methods",
    ):
        return first
    return "host"
