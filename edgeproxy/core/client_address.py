"""
The address of the client behind trusted proxies, and the peer as fields name it.

:func:`real_client_address` walks ``X-Forwarded-For`` as nginx's
``real_ip_recursive`` does; :func:`peer_view` is how the forwarding passes
write the direct peer (cached: few peers, many requests).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from edgeproxy.core.addresses import AddressSet, parse_address
from edgeproxy.core.field_sorting import X_FORWARDED_FOR
from edgeproxy.core.forwarding import forwarded_node
from edgeproxy.core.message import Headers


def _unmapped(host: str) -> str:
    """``host`` with an IPv4-mapped IPv6 address written as plain IPv4."""
    if ":" in host and "." in host:
        address = parse_address(host)
        if address is not None:
            return str(address)
    return host


def _split_port(text: str) -> str:
    """An address from ``X-Forwarded-For`` without its port, if it has one."""
    if text[:1] == "[":
        return text[1 : text.find("]")] if "]" in text else text
    if text.count(":") == 1:
        return text.partition(":")[0]
    return text


def client_from_forwarded_for(
    values: Iterable[bytes], peer_host: str, trusted_proxies: AddressSet
) -> str:
    """Walk ``X-Forwarded-For`` from the right, skipping trusted addresses."""
    client = peer_host
    for raw in reversed(b",".join(values).split(b",")):
        text = raw.strip().decode("latin-1")
        if not text:
            continue
        address = parse_address(_split_port(text))
        if address is None:
            # Like nginx: a hop we cannot read makes the whole header worthless.
            return peer_host
        client = str(address)
        if not trusted_proxies.contains(client):
            return client
    return client


def real_client_address(
    peer_host: str, headers: Headers, trusted_proxies: AddressSet
) -> str:
    """
    The address of the client, as far as trusted proxies vouch for it.

    When the direct peer ``peer_host`` is in ``trusted_proxies``,
    ``X-Forwarded-For`` (all its fields, in order) is walked from the right,
    skipping trusted addresses, as nginx's ``real_ip_recursive`` does: the
    first untrusted address is the client; if every address is trusted, the
    leftmost one is.  An entry that is not an IP address (ports are allowed:
    ``1.2.3.4:5678``, ``[::1]:80``) makes the header worthless and the peer is
    the client.  Otherwise (untrusted peer, no header) the peer is the client.
    IPv4-mapped IPv6 addresses come back as IPv4.
    """
    peer_host = peer_view(peer_host)[0]
    if not trusted_proxies.entries or not trusted_proxies.contains(peer_host):
        return peer_host
    return client_from_forwarded_for(
        headers.get_all(X_FORWARDED_FOR), peer_host, trusted_proxies
    )


@lru_cache(maxsize=1024)
def peer_view(peer_host: str) -> tuple[str, bytes, bytes]:
    """
    The peer as forwarding fields write it (cached: few peers, many requests).

    :return: the address (an IPv4-mapped IPv6 one as IPv4), the same as
        bytes, and its ``Forwarded`` node without a port.
    """
    host = _unmapped(peer_host)
    return host, host.encode("latin-1"), forwarded_node(host)
