"""
Sets of IP addresses and networks, for trusted proxies and IP allow/deny lists.

An :class:`AddressSet` answers "is this peer one of ours?" on every request, so
its lookup avoids a linear scan of networks: networks are grouped by prefix
length, and a lookup costs one set probe per distinct prefix length.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are treated as the IPv4 address
# they carry, both in the set's entries and in the hosts looked up.
_V4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")

# Lookups of peer addresses repeat heavily (keep-alive connections, a few load
# balancers); remembering recent answers skips the address parsing.  The memo
# is bounded and simply emptied when full.
_MEMO_LIMIT = 1024


def parse_address(text: str) -> IPAddress | None:
    """
    Return the IP address written in ``text``, or ``None`` if it is not one.

    IPv6 may be bracketed (``[::1]``); an IPv6 zone (``fe80::1%eth0``) is kept.
    IPv4-mapped IPv6 addresses are returned as the IPv4 address they carry.
    """
    if text[:1] == "[" and text[-1:] == "]":
        text = text[1:-1]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _parse_entry(entry: str) -> IPNetwork:
    """Parse one configured address or CIDR network, unmapping IPv4-in-IPv6."""
    text = entry.strip()
    if not text:
        raise ValueError("empty address in the address list")
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError:
        # Say what would have been accepted when only the host bits are wrong.
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError(
                f"{entry!r} is not an IP address or CIDR network"
            ) from None
        raise ValueError(
            f"{entry!r} has host bits set; did you mean {loose}?"
        ) from None
    if (
        isinstance(network, ipaddress.IPv6Network)
        and network.prefixlen >= 96
        and network.subnet_of(_V4_MAPPED)
    ):
        mapped = network.network_address.ipv4_mapped
        assert mapped is not None  # guaranteed by subnet_of above
        return ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    return network


def _prefix_table(
    networks: Iterable[IPNetwork], bits: int
) -> tuple[tuple[int, frozenset[int]], ...]:
    """Group networks as (shift, network numbers shifted) per prefix length."""
    by_shift: dict[int, set[int]] = {}
    for network in networks:
        shift = bits - network.prefixlen
        by_shift.setdefault(shift, set()).add(int(network.network_address) >> shift)
    # Exact addresses (shift 0) are the most common entries: probe them first.
    return tuple((shift, frozenset(by_shift[shift])) for shift in sorted(by_shift))


class AddressSet:
    """
    An immutable set of IPv4 and IPv6 addresses and CIDR networks.

    Built from entries such as ``"10.0.0.0/8"``, ``"::1"`` or
    ``"127.0.0.1"``; raises ``ValueError`` naming the first bad entry.  Two
    sets are equal when they hold the same entries, in any order (reload
    compares specs to keep what did not change).

    :ivar entries: the networks, normalised (``"127.0.0.1/32"``), in the
        order given, without duplicates.
    """

    __slots__ = ("_key", "_memo", "_v4", "_v6", "entries")

    def __init__(self, entries: Iterable[str] = ()) -> None:
        networks: list[IPNetwork] = []
        for entry in entries:
            network = _parse_entry(entry)
            if network not in networks:
                networks.append(network)
        self.entries: tuple[str, ...] = tuple(str(network) for network in networks)
        self._key = frozenset(self.entries)
        self._v4 = _prefix_table(
            (n for n in networks if isinstance(n, ipaddress.IPv4Network)), 32
        )
        self._v6 = _prefix_table(
            (n for n in networks if isinstance(n, ipaddress.IPv6Network)), 128
        )
        self._memo: dict[str, bool] = {}

    def contains(self, host: str) -> bool:
        """
        Whether ``host`` (an address as text) is in the set.

        ``host`` may be IPv4, IPv6 (bare or bracketed) or IPv4-mapped IPv6
        (``"::ffff:10.1.2.3"`` is ``"10.1.2.3"``).  Anything that is not an IP
        address (a host name, ``"unknown"``, an empty string) is not contained.
        """
        if not self.entries:
            return False
        memo = self._memo
        known = memo.get(host)
        if known is not None:
            return known
        address = parse_address(host)
        if address is None:
            found = False
        else:
            table = self._v4 if isinstance(address, ipaddress.IPv4Address) else self._v6
            number = int(address)
            found = any((number >> shift) in keys for shift, keys in table)
        if len(memo) >= _MEMO_LIMIT:
            memo.clear()
        memo[host] = found
        return found

    def __contains__(self, host: object) -> bool:
        return isinstance(host, str) and self.contains(host)

    def __bool__(self) -> bool:
        return bool(self.entries)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AddressSet):
            return NotImplemented
        return self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __repr__(self) -> str:
        return f"AddressSet({list(self.entries)!r})"
