"""Tests for edgeproxy.filters.api_key: the API key filter and credential locations."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from zope.interface.verify import verifyObject

from edgeproxy.core.message import HeaderPair, RequestHead
from edgeproxy.errors import OptionError
from edgeproxy.filters.api_key import (
    BEARER,
    APIKeyFilter,
    CredentialLocation,
    api_key_factory,
)
from edgeproxy.interfaces import IFilter, IFilterFactory
from edgeproxy.testing import environment, make_request, run_request_hook

INLINE = {"keys": "acme:acme-key-1, globex:globex-key-1"}


def build(**options: str) -> APIKeyFilter:
    """An api_key filter with the inline keys and ``options``."""
    return api_key_factory.build({**INLINE, **options}, environment())


def test_provides_interfaces() -> None:
    """The factory and its filter provide their interfaces."""
    assert verifyObject(IFilterFactory, api_key_factory)
    assert verifyObject(IFilter, build())


def test_known_key_names_the_consumer_and_is_stripped() -> None:
    """A known key lets the request through as its consumer, without the key."""
    context, request = make_request(
        headers=[(b"Host", b"a"), (b"x-api-key", b"globex-key-1")]
    )
    assert run_request_hook(build(), context, request) is None
    assert context.consumer == "globex"
    assert request.headers.pairs == [(b"Host", b"a")]


def test_strip_key_no_keeps_the_key() -> None:
    """With strip_key = no the upstream sees the key too."""
    context, request = make_request(headers=[(b"X-API-Key", b"acme-key-1")])
    assert run_request_hook(build(strip_key="no"), context, request) is None
    assert request.headers.get(b"X-API-Key") == b"acme-key-1"


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ([], "send an API key in the X-API-Key header"),
        ([(b"X-API-Key", b"")], "send an API key in the X-API-Key header"),
        ([(b"X-API-Key", b"acme-key-2")], "the API key is not valid"),
        ([(b"X-API-Key", b"ACME-KEY-1")], "the API key is not valid"),
        (
            [(b"X-API-Key", b"acme-key-1"), (b"X-API-Key", b"acme-key-1")],
            "send one API key, not several",
        ),
    ],
)
def test_refusals(headers: list[HeaderPair], message: str) -> None:
    """Missing, unknown or repeated keys get a 401 with an ApiKey challenge."""
    context, request = make_request(headers=headers)
    answer = run_request_hook(build(realm="partners"), context, request)
    assert answer is not None
    assert answer.status == 401
    assert answer.headers.get(b"WWW-Authenticate") == b'ApiKey realm="partners"'
    assert answer.body == f"Unauthorized: {message}\n".encode()
    assert context.consumer is None


def test_refusal_in_json() -> None:
    """A client that prefers JSON gets the refusal as JSON."""
    context, request = make_request(headers=[(b"Accept", b"application/json")])
    answer = run_request_hook(build(), context, request)
    assert answer is not None
    assert json.loads(answer.body)["message"] == (
        "send an API key in the X-API-Key header"
    )


def test_key_in_the_query() -> None:
    """query:NAME reads the parameter (form-decoded) and removes only it."""
    context, request = make_request(
        target=b"/items?page=2&api_key=acme%2Dkey%2D1&sort=name"
    )
    assert run_request_hook(build(key_from="query:api_key"), context, request) is None
    assert context.consumer == "acme"
    assert request.target == b"/items?page=2&sort=name"


def test_key_in_a_cookie() -> None:
    """cookie:NAME reads the cookie and removes only it."""
    context, request = make_request(
        headers=[(b"Cookie", b"theme=dark; key=acme-key-1"), (b"Cookie", b"key=x")]
    )
    twice = run_request_hook(build(key_from="cookie:key"), context, request)
    assert twice is not None
    assert twice.body == b"Unauthorized: send one API key, not several\n"
    context, request = make_request(
        headers=[(b"Cookie", b"theme=dark; key=acme-key-1; lang=en")]
    )
    assert run_request_hook(build(key_from="cookie:key"), context, request) is None
    assert context.consumer == "acme"
    assert request.headers.pairs == [(b"Cookie", b"theme=dark; lang=en")]


def test_keys_file_with_hashes(tmp_path: Path) -> None:
    """keys_file lines (plain or sha256:HEX) are read relative to the config dir."""
    digest = hashlib.sha256(b"initech-secret").hexdigest()
    (tmp_path / "partners.keys").write_text(
        f"# partners\n\ninitech = sha256:{digest}\nhooli = hooli-key\n"
    )
    api_key = api_key_factory.build(
        {"keys_file": "partners.keys"}, environment(base_dir=tmp_path)
    )
    for key, consumer in [(b"initech-secret", "initech"), (b"hooli-key", "hooli")]:
        context, request = make_request(headers=[(b"X-API-Key", key)])
        assert run_request_hook(api_key, context, request) is None
        assert context.consumer == consumer
    context, request = make_request(headers=[(b"X-API-Key", digest.encode())])
    assert run_request_hook(api_key, context, request) is not None


def test_a_consumer_may_have_several_keys() -> None:
    """Two keys of one consumer both work (key rotation)."""
    api_key = api_key_factory.build(
        {"keys": "acme:old-key\nacme:new-key"}, environment()
    )
    for key in (b"old-key", b"new-key"):
        context, request = make_request(headers=[(b"X-API-Key", key)])
        assert run_request_hook(api_key, context, request) is None
        assert context.consumer == "acme"


@pytest.mark.parametrize(
    ("options", "key", "fragment"),
    [
        ({"keys": "a:k", "key": "x"}, "key", "unknown option"),
        ({"keys": "a:k", "key_from": "body:x"}, "key_from", "is not one of"),
        ({"keys": "a:k", "key_from": "header:bad name"}, "key_from", "not a valid"),
        ({"keys": "a:k", "key_from": "query:a&b"}, "key_from", "not a valid"),
        ({"keys": "acme"}, "keys", "is not consumer:KEY"),
        ({"keys": "a b:k"}, "keys", "is not a consumer name"),
        ({"keys": "a:has space"}, "keys", "is empty or has spaces"),
        ({"keys": "a:"}, "keys", "is empty or has spaces"),
        ({"keys": "a:sha256:abc"}, "keys", "64 hex digits"),
        ({"keys": "a:k, b:k"}, "keys", "'b' has the key of 'a'"),
        ({}, "keys", "give keys or keys_file"),
        ({"keys": "a:k", "strip_key": "maybe"}, "strip_key", "is not yes or no"),
        ({"keys": "a:k", "realm": ""}, "realm", "is not a realm"),
        ({"keys_file": "missing.keys"}, "keys_file", "cannot read 'missing.keys'"),
    ],
)
def test_option_errors(options: dict[str, str], key: str, fragment: str) -> None:
    """Each bad option is reported against its key."""
    with pytest.raises(OptionError) as raised:
        api_key_factory.build(options, environment())
    assert [problem[0] for problem in raised.value.problems] == [key]
    assert fragment in raised.value.problems[0][1]


def test_keys_file_errors_name_the_line(tmp_path: Path) -> None:
    """A bad line of keys_file is reported with its number."""
    (tmp_path / "bad.keys").write_text("acme = key-1\njust-a-key\n")
    with pytest.raises(OptionError, match=r"bad.keys, line 2: not 'consumer = KEY'"):
        api_key_factory.build({"keys_file": "bad.keys"}, environment(base_dir=tmp_path))


def test_every_problem_is_reported_together() -> None:
    """Several bad options fail the build once, listing each."""
    with pytest.raises(OptionError) as raised:
        api_key_factory.build(
            {"keys": "oops", "strip_key": "maybe", "color": "red"}, environment()
        )
    assert sorted(key for key, _ in raised.value.problems) == [
        "color",
        "keys",
        "strip_key",
    ]


@pytest.mark.parametrize(
    ("location", "where"),
    [
        (CredentialLocation("header", b"X-API-Key"), "the X-API-Key header"),
        (CredentialLocation("query", b"key"), "the key query parameter"),
        (CredentialLocation("cookie", b"sid"), "the sid cookie"),
        (BEARER, "an Authorization: Bearer field"),
    ],
)
def test_locations_describe_themselves(
    location: CredentialLocation, where: str
) -> None:
    """Refusals tell the client where to send the credential."""
    assert location.describe() == where


def test_bearer_location() -> None:
    """BEARER reads Bearer tokens only (any case) and strips Authorization."""
    request = RequestHead(b"GET", b"/")
    request.headers.add(b"Authorization", b"bearer abc.def")
    request.headers.add(b"Authorization", b"Basic dXNlcjpwdw==")
    assert BEARER.values(request) == [b"abc.def"]
    BEARER.strip(request)
    assert request.headers.pairs == []


def test_query_strip_drops_an_emptied_query() -> None:
    """Removing the only parameter removes the '?' as well."""
    request = RequestHead(b"GET", b"/a?token=x")
    CredentialLocation("query", b"token").strip(request)
    assert request.target == b"/a"
