"""Tests for edgeproxy.filters.ip_acl: the built-in ip_acl filter."""

from __future__ import annotations

import pytest
from zope.interface.verify import verifyObject

from edgeproxy.errors import OptionError
from edgeproxy.filters.ip_acl import ip_acl_factory
from edgeproxy.interfaces import IFilter, IFilterFactory
from edgeproxy.testing import environment, make_request, run_request_hook

OFFICE = {"allow": "10.0.0.0/8, 2001:db8::/32", "deny": "10.9.0.0/16, 10.1.2.3"}


def test_provides_interfaces() -> None:
    """The factory and its filter provide their interfaces."""
    assert verifyObject(IFilterFactory, ip_acl_factory)
    assert verifyObject(IFilter, ip_acl_factory.build(OFFICE, environment()))


@pytest.mark.parametrize(
    ("options", "client", "allowed"),
    [
        (OFFICE, "10.1.1.1", True),
        (OFFICE, "2001:db8::5", True),
        (OFFICE, "[2001:db8::5]", True),
        (OFFICE, "::ffff:10.1.1.1", True),
        # deny wins over allow
        (OFFICE, "10.9.4.4", False),
        (OFFICE, "10.1.2.3", False),
        (OFFICE, "::ffff:10.9.0.1", False),
        # not in allow
        (OFFICE, "192.168.1.1", False),
        (OFFICE, "2001:db9::1", False),
        (OFFICE, "unknown", False),
        # an empty allow list allows all but the denied
        ({"deny": "203.0.113.0/24"}, "198.51.100.1", True),
        ({"deny": "203.0.113.0/24"}, "203.0.113.9", False),
        ({"deny": "203.0.113.0/24"}, "unknown", True),
        ({"allow": "127.0.0.1\n::1"}, "::1", True),
        ({"allow": "127.0.0.1\n::1"}, "127.0.0.2", False),
    ],
)
def test_decisions(options: dict[str, str], client: str, allowed: bool) -> None:
    """Deny wins, an empty allow list allows all, IPv4 and IPv6 alike."""
    acl = ip_acl_factory.build(options, environment())
    context, request = make_request(client_host=client)
    answer = run_request_hook(acl, context, request)
    if allowed:
        assert answer is None
    else:
        assert answer is not None
        assert answer.status == 403
        assert 0 < len(answer.body) < 200


def test_json_refusal_when_preferred() -> None:
    """A client that prefers JSON gets the 403 as JSON."""
    acl = ip_acl_factory.build({"deny": "10.0.0.1"}, environment())
    context, request = make_request(
        headers=[(b"Accept", b"application/json")], client_host="10.0.0.1"
    )
    answer = run_request_hook(acl, context, request)
    assert answer is not None
    assert answer.headers.get(b"Content-Type") == b"application/json"


@pytest.mark.parametrize(
    ("options", "keys"),
    [
        ({}, ["allow"]),
        ({"allow": " , "}, ["allow"]),
        ({"allow": "10.0.0.0/33"}, ["allow"]),
        ({"allow": "10.0.0.1/8", "deny": "nope"}, ["allow", "deny"]),
        ({"deny": "10.0.0.1", "permit": "10.0.0.2"}, ["permit"]),
    ],
)
def test_bad_options(options: dict[str, str], keys: list[str]) -> None:
    """Bad entries, unknown options and an empty filter are all reported."""
    with pytest.raises(OptionError) as caught:
        ip_acl_factory.build(options, environment())
    assert [key for key, _ in caught.value.problems] == keys


def test_host_bits_message_suggests_the_network() -> None:
    """A CIDR with host bits set says which network was probably meant."""
    with pytest.raises(OptionError, match=r"did you mean 10\.0\.0\.0/8"):
        ip_acl_factory.build({"allow": "10.0.0.1/8"}, environment())
