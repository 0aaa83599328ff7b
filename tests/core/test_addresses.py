"""Tests for edgeproxy.core.addresses: address sets for trust and allow/deny."""

from __future__ import annotations

import pytest

from edgeproxy.core.addresses import AddressSet, parse_address

_MIXED = ["10.0.0.0/8", "192.168.1.7", "::1", "2001:db8::/32", "fe80::/10"]


@pytest.mark.parametrize(
    ("entries", "host", "expected"),
    [
        (_MIXED, "10.0.0.1", True),
        (_MIXED, "10.255.255.255", True),
        (_MIXED, "11.0.0.0", False),
        (_MIXED, "9.255.255.255", False),
        (_MIXED, "192.168.1.7", True),
        (_MIXED, "192.168.1.8", False),
        (_MIXED, "::1", True),
        (_MIXED, "[::1]", True),
        (_MIXED, "0:0:0:0:0:0:0:1", True),
        (_MIXED, "::2", False),
        (_MIXED, "2001:db8:1::5", True),
        (_MIXED, "2001:DB8::AB", True),
        (_MIXED, "2001:db9::1", False),
        (_MIXED, "fe80::1%eth0", True),
        (_MIXED, "::ffff:10.1.2.3", True),
        (_MIXED, "::ffff:11.1.2.3", False),
        (_MIXED, "::ffff:192.168.1.7", True),
        (_MIXED, "example.com", False),
        (_MIXED, "unknown", False),
        (_MIXED, "", False),
        (_MIXED, "10.0.0.1:80", False),
        (_MIXED, "010.0.0.1", False),
        (["127.0.0.1"], "127.0.0.1", True),
        (["127.0.0.1"], "127.0.0.2", False),
        (["0.0.0.0/0"], "203.0.113.9", True),
        (["0.0.0.0/0"], "2001:db8::1", False),
        (["::/0"], "2001:db8::1", True),
        (["::/0"], "203.0.113.9", False),
        (["::ffff:10.0.0.0/104"], "10.9.9.9", True),
        (["::ffff:10.0.0.0/104"], "::ffff:10.9.9.9", True),
        (["::ffff:10.0.0.0/104"], "11.9.9.9", False),
        (["10.0.0.0/8"], "::ffff:10.0.0.1", True),
        ([], "127.0.0.1", False),
    ],
)
def test_contains(entries: list[str], host: str, expected: bool) -> None:
    """A host is contained exactly when it falls in one of the entries."""
    addresses = AddressSet(entries)
    assert addresses.contains(host) is expected
    # A second lookup (answered from the memo) gives the same answer.
    assert addresses.contains(host) is expected
    assert (host in addresses) is expected


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "10.0.0.1/8",
            r"'10\.0\.0\.1/8' has host bits set; did you mean 10\.0\.0\.0/8",
        ),
        ("2001:db8::1/32", r"'2001:db8::1/32' has host bits set"),
        ("10.0.0.0/33", r"'10\.0\.0\.0/33' is not an IP address"),
        ("example.com", r"'example\.com' is not an IP address"),
        ("300.1.1.1", r"'300\.1\.1\.1' is not an IP address"),
        ("", "empty address"),
        ("  ", "empty address"),
    ],
)
def test_bad_entry_is_named(entry: str, message: str) -> None:
    """A bad entry raises ValueError naming it."""
    with pytest.raises(ValueError, match=message):
        AddressSet(["127.0.0.1", entry])


def test_entries_are_normalised_and_deduplicated() -> None:
    """Entries are kept normalised, in order, once each (spaces trimmed)."""
    addresses = AddressSet([" 127.0.0.1", "::1", "127.0.0.1/32", "10.0.0.0/8"])
    assert addresses.entries == ("127.0.0.1/32", "::1/128", "10.0.0.0/8")


def test_equality_ignores_order() -> None:
    """Sets with the same entries are equal and hash alike, in any order."""
    first = AddressSet(["10.0.0.0/8", "::1"])
    second = AddressSet(["::1/128", "10.0.0.0/8"])
    assert first == second
    assert hash(first) == hash(second)
    assert first != AddressSet(["10.0.0.0/8"])


def test_truth_is_emptiness() -> None:
    """An empty set is false, so callers can skip it."""
    assert not AddressSet()
    assert AddressSet(["::1"])


def test_many_distinct_lookups_stay_correct() -> None:
    """Answers stay right after the lookup memo has been emptied."""
    addresses = AddressSet(["10.0.0.0/24"])
    hosts = [f"10.0.{index // 256}.{index % 256}" for index in range(1500)]
    assert [addresses.contains(host) for host in hosts] == [
        index < 256 for index in range(1500)
    ]
    assert addresses.contains("10.0.0.1") is True
    assert addresses.contains("10.0.1.1") is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("[::1]", "::1"),
        ("::FFFF:1.2.3.4", "1.2.3.4"),
        ("2001:DB8::1", "2001:db8::1"),
        ("localhost", None),
        ("[127.0.0.1", None),
        ("1.2.3.4:80", None),
    ],
)
def test_parse_address(text: str, expected: str | None) -> None:
    """Addresses parse (brackets, case, IPv4-mapped); other text does not."""
    address = parse_address(text)
    assert (None if address is None else str(address)) == expected
