"""Tests for edgeproxy.core.caching.status: the Cache-Status field."""

from __future__ import annotations

import pytest

from edgeproxy.core.caching.status import CacheStatus


@pytest.mark.parametrize(
    ("status", "name", "value"),
    [
        pytest.param(
            CacheStatus(hit=True, ttl=30), b"edgeproxy", b"edgeproxy; hit; ttl=30",
            id="hit",
        ),
        pytest.param(
            CacheStatus(fwd="uri-miss").forwarded(200, stored=True, ttl=60),
            b"edgeproxy", b"edgeproxy; fwd=uri-miss; fwd-status=200; stored; ttl=60",
            id="miss stored",
        ),
        pytest.param(
            CacheStatus(fwd="miss").forwarded(200, stored=True), b"edgeproxy",
            b"edgeproxy; fwd=miss; fwd-status=200; stored", id="fwd=miss",
        ),
        pytest.param(
            CacheStatus(fwd="stale", detail="stale-if-error").forwarded(503, ttl=-5),
            b"edgeproxy",
            b"edgeproxy; fwd=stale; fwd-status=503; ttl=-5; detail=stale-if-error",
            id="stale-if-error",
        ),
        pytest.param(
            CacheStatus(fwd="vary-miss", collapsed=True), b"edgeproxy",
            b"edgeproxy; fwd=vary-miss; collapsed", id="collapsed",
        ),
        pytest.param(
            CacheStatus(fwd="request", detail='two "words"'), b"edgeproxy",
            b'edgeproxy; fwd=request; detail="two \\"words\\""', id="detail string",
        ),
        pytest.param(
            CacheStatus(hit=True), b"edge cache", b'"edge cache"; hit',
            id="name string",
        ),
    ],
)  # fmt: skip
def test_cache_status(status: CacheStatus, name: bytes, value: bytes) -> None:
    """RFC 9211 2: one list member per cache, with its parameters."""
    assert status.field_value(name) == value
