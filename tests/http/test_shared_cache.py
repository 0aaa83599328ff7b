"""
Tests for edgeproxy.http.shared_cache: PURGE, the admin surface, config and reload.

The harness is the one of tests/http/test_cache_exchange.py: a real proxy over
a snapshot with a ``[cache:pages]`` on the ``site`` route.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from twisted.web.test.requesthelper import DummyRequest

from edgeproxy.admin.status import admin_site
from edgeproxy.config.loader import parse_config
from edgeproxy.errors import ConfigError
from edgeproxy.snapshot import build_snapshot
from edgeproxy.testing import environment
from tests.http.test_cache_exchange import (
    CONFIG,
    CachedProxy,
    cached_proxy,
    get,
    stored,
)
from tests.http.test_proxy import ProxyHarness, body_of, headers_of, status_of


@pytest.fixture
def proxy() -> CachedProxy:
    """A proxy with a memory cache on the site route."""
    return cached_proxy()


# --- PURGE ----------------------------------------------------------------------------


def test_purge_from_an_allowed_address_drops_the_url(proxy: CachedProxy) -> None:
    """PURGE from purge_from removes every variant of the URL."""
    stored(proxy)
    answer = get(proxy, method=b"PURGE").take()
    assert status_of(answer) == 200
    assert json.loads(body_of(answer)) == {"purged": 1}
    get(proxy)
    assert proxy.requests_seen() == 2


def test_purge_from_elsewhere_is_403(proxy: CachedProxy) -> None:
    """PURGE from outside purge_from is refused and removes nothing."""
    stored(proxy)
    answer = get(proxy, method=b"PURGE", host="198.51.100.1").take()
    assert status_of(answer) == 403
    assert body_of(get(proxy).take()) == b"hello"
    assert proxy.requests_seen() == 1


def test_purge_on_a_route_without_cache_is_405(proxy: CachedProxy) -> None:
    """PURGE to a route that does not cache is 405, and not sent upstream."""
    answer = get(proxy, b"/plain/x", method=b"PURGE").take()
    assert status_of(answer) == 405
    assert b"GET" in (headers_of(answer).get(b"Allow") or b"")
    assert proxy.upstreams.connects() == []


def test_purge_during_a_fill_keeps_the_fill_out(proxy: CachedProxy) -> None:
    """A purge while a body is being stored voids that entry."""
    client = get(proxy)
    upstream = proxy.origin()
    upstream.respond(
        b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 6\r\n\r\nabc"
    )
    assert status_of(get(proxy, method=b"PURGE").take()) == 200
    upstream.respond(b"def")
    assert body_of(client.take()) == b"abcdef"
    get(proxy)
    assert proxy.requests_seen() == 2


# --- the admin surface ----------------------------------------------------------------


def admin_call(
    proxy: CachedProxy, method: bytes, path: bytes, **args: bytes
) -> tuple[int, Any]:
    """One request to the admin site over the proxy's snapshot."""
    site = admin_site(proxy.holder, proxy.reactor)
    request = DummyRequest(path.lstrip(b"/").split(b"/"))
    request.method = method
    request.args = {name.encode(): [value] for name, value in args.items()}
    body = site.getResourceFor(request).render(request)
    return request.responseCode or 200, json.loads(body)


def test_status_shows_the_cache_counters(proxy: CachedProxy) -> None:
    """GET /status lists each cache's hits, misses, entries and bytes."""
    stored(proxy)
    get(proxy).take()
    status, body = admin_call(proxy, b"GET", b"/status")
    pages = body["caches"]["pages"]
    assert status == 200
    assert (pages["hits"], pages["misses"], pages["entries"]) == (1, 1, 1)
    assert pages["stored_bytes"] > 5
    assert set(pages) >= {
        "stale_served",
        "revalidated_304",
        "revalidated_200",
        "coalesced_waits",
        "evictions",
    }


@pytest.mark.parametrize(
    ("args", "status", "purged"),
    [
        pytest.param({"url": b"http://www.example.com/page"}, 200, 1, id="url"),
        pytest.param(
            {"url": b"http://WWW.example.com:80/page"}, 200, 1, id="url normalised"
        ),
        pytest.param({"url": b"http://www.example.com/other"}, 200, 0, id="other url"),
        pytest.param({"tag": b"team-a"}, 200, 1, id="tag"),
        pytest.param({"url": b"/page"}, 400, None, id="relative url"),
        pytest.param({}, 400, None, id="nothing"),
    ],
)
def test_admin_purge(
    proxy: CachedProxy, args: dict[str, bytes], status: int, purged: int | None
) -> None:
    """POST /caches/pages/purge drops by URL or by Surrogate-Key tag."""
    stored(
        proxy, fields=[b"Cache-Control: max-age=60", b"Surrogate-Key: team-a team-b"]
    )
    code, body = admin_call(proxy, b"POST", b"/caches/pages/purge", **args)
    assert code == status
    if purged is not None:
        assert body == {"purged": purged}
        assert proxy.cache.stats()["entries"] == 1 - purged


def test_admin_purge_of_an_unknown_cache_is_404(proxy: CachedProxy) -> None:
    """An unknown cache name is 404."""
    code, _ = admin_call(proxy, b"POST", b"/caches/nope/purge", url=b"http://a/")
    assert code == 404


# --- configuration and reload ---------------------------------------------------------


def test_reload_keeps_an_unchanged_cache_and_its_contents(proxy: CachedProxy) -> None:
    """A reload with the same [cache:pages] keeps the same store and what it holds."""
    stored(proxy)
    before = proxy.cache
    config = proxy.holder.current.config
    again = build_snapshot(
        parse_config(CONFIG.format(filters="", upstream="", cache="")),
        proxy.registry,
        environment(proxy.reactor),
        previous=proxy.holder.current,
    )
    assert config.caches == again.config.caches
    assert again.caches["pages"] is before
    proxy.holder.swap(again)
    assert body_of(get(proxy).take()) == b"hello"
    assert proxy.requests_seen() == 1


def test_reload_with_a_changed_cache_section_builds_a_new_one(
    proxy: CachedProxy,
) -> None:
    """Changing a key of [cache:pages] gives a new, empty cache."""
    stored(proxy)
    again = build_snapshot(
        parse_config(CONFIG.format(filters="", upstream="", cache="max_size = 1MB")),
        proxy.registry,
        environment(proxy.reactor),
        previous=proxy.holder.current,
    )
    assert again.caches["pages"] is not proxy.cache
    assert again.caches["pages"].stats()["entries"] == 0


def test_disk_store_is_relative_to_the_config_directory(tmp_path: Path) -> None:
    """``store = disk:PATH`` makes a disk store under the configuration's directory."""
    text = CONFIG.format(filters="", upstream="", cache="store = disk:cache-dir")
    snapshot = build_snapshot(
        parse_config(text), ProxyHarness().registry, environment(base_dir=tmp_path)
    )
    assert (tmp_path / "cache-dir" / "entries").is_dir()
    assert snapshot.caches["pages"].store.max_object_size == 8 * 1024 * 1024


@pytest.mark.parametrize(
    ("section", "key", "message"),
    [
        ("store = tape", "store", "is not memory or disk:PATH"),
        ("key = query:x", "key", "is not header:NAME or cookie:NAME"),
        ("purge_from = nowhere", "purge_from", "nowhere"),
        ("max_size = lots", "max_size", "is not a size"),
        ("ttl = 5s", "ttl", "unknown key for [cache:NAME]"),
    ],
)
def test_bad_cache_keys_are_reported(section: str, key: str, message: str) -> None:
    """Each bad [cache:NAME] key is a problem naming the section and key."""
    with pytest.raises(ConfigError) as raised:
        text = CONFIG.format(filters="", upstream="", cache=section)
        parse_config(text.replace("purge_from = 192.0.2.0/24\n", "", 1))
    problems = [(p.section, p.key, p.message) for p in raised.value.problems]
    assert any(
        (s, k) == ("cache:pages", key) and message in m for s, k, m in problems
    ), problems


def test_route_naming_an_unknown_cache_is_reported() -> None:
    """``cache = NAME`` without a [cache:NAME] section is a problem."""
    text = CONFIG.format(filters="", upstream="", cache="").replace(
        "cache = pages", "cache = nope"
    )
    with pytest.raises(ConfigError) as raised:
        parse_config(text)
    assert [(p.section, p.key) for p in raised.value.problems] == [
        ("route:site", "cache")
    ]


def test_cache_settings_come_from_the_section() -> None:
    """The section's keys become the policy's settings."""
    text = CONFIG.format(
        filters="",
        upstream="",
        cache="default_ttl = 30s\nheuristic = no\n"
        "heuristic_max = 1h\nkey = cookie:lang",
    )
    snapshot = build_snapshot(
        parse_config(text), ProxyHarness().registry, environment()
    )
    settings = snapshot.caches["pages"].settings
    assert (
        settings.default_ttl,
        settings.heuristic_fraction,
        settings.heuristic_max,
    ) == (30.0, 0.0, 3600.0)
    assert (settings.key_header, settings.key_cookie) == (None, b"lang")
