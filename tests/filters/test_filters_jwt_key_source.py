"""Tests for edgeproxy.filters.jwt_key_source: the jwt filter's keys, from options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from twisted.internet.defer import Deferred

from edgeproxy.filters.jwks import Fetch, RemoteKeySet
from edgeproxy.filters.jwt_key_source import key_source
from edgeproxy.filters.jwt_keys import KeySet
from edgeproxy.testing import environment
from tests.filters.jwk_samples import EC_KEY, RSA_KEY

SECRET = "s3cr3t-of-at-least-thirty-two-bytes!"


def never_fetch(reactor: Any, url: str) -> Fetch:
    """A fetcher whose fetches never answer (no test here fetches)."""
    return Deferred


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A configuration directory holding rsa.pem and ec.pem."""
    for name, key in (("rsa.pem", RSA_KEY), ("ec.pem", EC_KEY)):
        pem = key.public_key().public_bytes(
            Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
        )
        (tmp_path / name).write_bytes(pem)
    return tmp_path


@pytest.mark.parametrize(
    ("options", "algorithms", "verifies"),
    [
        ({"secret": SECRET}, {"HS256"}, {"HS256"}),
        ({"public_key_file": "rsa.pem"}, {"RS256", "PS256"}, {"RS256", "PS256"}),
        # Algorithms unknown (their option was bad): the key is checked alone.
        ({"public_key_file": "ec.pem"}, None, {"ES256"}),
    ],
)
def test_fixed_keys(
    config_dir: Path,
    options: dict[str, str],
    algorithms: set[str] | None,
    verifies: set[str],
) -> None:
    """A secret or a PEM key becomes one key for the algorithms it can verify."""
    accepted = None if algorithms is None else frozenset(algorithms)
    keys, problems = key_source(
        options, accepted, environment(base_dir=config_dir), never_fetch
    )
    assert problems == []
    assert isinstance(keys, KeySet)
    [key] = keys.keys
    assert key.algorithms == verifies


@pytest.mark.parametrize(
    ("options", "timings"),
    [
        ({}, (300.0, 3600.0, 10.0)),
        (
            {
                "jwks_refresh_interval": "1m",
                "jwks_cache_ttl": "10m",
                "jwks_timeout": "500ms",
            },
            (60.0, 600.0, 0.5),
        ),
    ],
)
def test_jwks_url_timings(options: dict[str, str], timings: tuple[float, ...]) -> None:
    """A JWKS URL's refresh interval, cache TTL and timeout: given or defaults."""
    keys, problems = key_source(
        {"jwks_url": "https://idp.example/jwks", **options},
        frozenset({"RS256"}),
        environment(),
        never_fetch,
    )
    assert problems == []
    assert isinstance(keys, RemoteKeySet)
    assert (keys.refresh_interval, keys.cache_ttl, keys.timeout) == timings
    assert keys.source == "https://idp.example/jwks"


def test_key_problems_are_all_reported(config_dir: Path) -> None:
    """Two sources, a timing without a URL and a misfit are reported together."""
    keys, problems = key_source(
        {"secret": SECRET, "jwks_url": "https://i/k", "jwks_timeout": "0s"},
        frozenset({"HS256", "RS256"}),
        environment(base_dir=config_dir),
        never_fetch,
    )
    assert problems == [
        ("jwks_url", "give only one of secret and jwks_url"),
        ("jwks_timeout", "only applies with jwks_url"),
        ("jwks_timeout", "'0s' is not more than 0"),
        ("algorithms", "RS256 need a public key, not secret"),
    ]
    assert isinstance(keys, KeySet)
