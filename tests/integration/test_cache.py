"""
The shared cache as a user runs it: twistd edgeproxy before a real origin.

The origin (servers/cache_origin.py) answers as each request's query says and
counts what it received per path, so each test uses a path of its own and asks
the origin what reached it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.integration.conftest import EdgeproxyProcess, free_port, stop, wait_for_port
from tests.integration.http_client import (
    ClientConnection,
    Response,
    exchange,
    request_bytes,
)
from tests.integration.test_http_proxy import RSS_GROWTH_LIMIT, RssSampler

ORIGIN_SCRIPT = Path(__file__).resolve().parent / "servers" / "cache_origin.py"
MIB = 1024 * 1024


class CacheOrigin:
    """A running ``servers/cache_origin.py`` on a free port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, str(ORIGIN_SCRIPT), str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(self.port, self.process)
        except AssertionError:
            stop(self.process)
            raise

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"

    def count(self, path: str) -> dict[str, Any]:
        """What the origin received for ``path``."""
        answer = exchange(
            self.port, request_bytes(b"GET", b"/count?path=" + path.encode())
        )
        counted: dict[str, Any] = answer.json()
        return counted

    def stop(self) -> None:
        """End the process."""
        stop(self.process)


def config(port: int, origin: CacheOrigin, admin: int, cache: str = "") -> str:
    """One listener: ``locked.example`` purges only from 10/8, the rest from here."""
    return f"""
[edgeproxy]
admin = tcp:{admin}:interface=127.0.0.1

[listener:web]
protocol = http
endpoint = tcp:{port}:interface=127.0.0.1
routes = locked, site
max_body_size = 0

[route:locked]
host = locked.example
upstream = origin
cache = locked

[route:site]
upstream = origin
cache = pages

[upstream:origin]
servers = {origin.address}

[cache:pages]
purge_from = 127.0.0.1
{cache}

[cache:locked]
purge_from = 10.0.0.0/8
"""


class Proxy:
    """An edgeproxy's ports, and its origin."""

    def __init__(self, port: int, admin: int, origin: CacheOrigin) -> None:
        self.port = port
        self.admin = admin
        self.origin = origin

    def get(
        self,
        target: str,
        headers: list[tuple[bytes, bytes]] | None = None,
        method: bytes = b"GET",
        host: bytes = b"a.example",
    ) -> Response:
        """One request on a new connection."""
        data = request_bytes(method, target.encode(), host, headers or [])
        return exchange(self.port, data, method)

    def status(self) -> dict[str, Any]:
        """The admin status document."""
        document: dict[str, Any] = exchange(
            self.admin, request_bytes(b"GET", b"/status")
        ).json()
        return document


@pytest.fixture(scope="module")
def origin() -> Iterator[CacheOrigin]:
    """The origin shared by the module's tests."""
    started = CacheOrigin()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def proxy(
    origin: CacheOrigin, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Proxy]:
    """An edgeproxy with memory caches before the shared origin."""
    port, admin = free_port(), free_port()
    path = tmp_path_factory.mktemp("cache") / "edgeproxy.ini"
    path.write_text(config(port, origin, admin))
    process = EdgeproxyProcess(path, port)
    yield Proxy(port, admin, origin)
    process.stop()


def unique(name: str) -> str:
    """A path no other test uses."""
    return f"/{name}-{uuid.uuid4().hex[:8]}"


def url(path: str, **query: str) -> str:
    """``path`` with the origin's instructions as its query."""
    return path + "?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())


def cache_status(response: Response) -> str:
    """The Cache-Status, as text."""
    return (response.header(b"cache-status") or b"").decode()


# --- hits, misses, variants -----------------------------------------------------------


def test_miss_then_hit(proxy: Proxy) -> None:
    """The first GET is fetched and stored, the second answered from the cache."""
    path = unique("hit")
    target = url(path, cc="max-age=60", body="hello")
    first = proxy.get(target)
    assert (first.status, first.body) == (200, b"hello")
    assert cache_status(first).startswith(
        "edgeproxy; fwd=uri-miss; fwd-status=200; stored"
    )
    second = proxy.get(target)
    assert (second.status, second.body) == (200, b"hello")
    assert cache_status(second).startswith("edgeproxy; hit; ttl=")
    assert second.header(b"age") is not None
    head = proxy.get(target, method=b"HEAD")
    assert head.header(b"content-length") == b"5"
    assert cache_status(head).startswith("edgeproxy; hit")
    assert proxy.origin.count(path)["requests"] == 1


def test_uncacheable_responses_go_to_the_origin_each_time(proxy: Proxy) -> None:
    """``no-store`` answers are fetched every time."""
    path = unique("nostore")
    target = url(path, cc="no-store", body="x")
    for _ in range(2):
        assert "fwd=uri-miss" in cache_status(proxy.get(target))
    assert proxy.origin.count(path)["requests"] == 2


def test_vary_keeps_a_variant_per_value(proxy: Proxy) -> None:
    """Two Accept-Encoding values: two fetches, then each served its own variant."""
    path = unique("vary")
    target = url(
        path,
        cc="max-age=60",
        vary="Accept-Encoding",
        body="enc=",
        echo="Accept-Encoding",
    )
    for _ in range(2):
        for coding in (b"gzip", b"br"):
            answer = proxy.get(target, [(b"Accept-Encoding", coding)])
            assert answer.body == b"enc=" + coding
    assert proxy.origin.count(path)["requests"] == 2


def test_range_of_a_stored_response(proxy: Proxy) -> None:
    """A byte range of a stored response comes from the cache as a 206."""
    path = unique("range")
    target = url(path, cc="max-age=60", body="0123456789")
    proxy.get(target)
    answer = proxy.get(target, [(b"Range", b"bytes=3-5")])
    assert (answer.status, answer.body) == (206, b"345")
    assert answer.header(b"content-range") == b"bytes 3-5/10"
    assert proxy.origin.count(path)["requests"] == 1


# --- stale responses ------------------------------------------------------------------


def test_stale_response_is_revalidated_with_a_304(proxy: Proxy) -> None:
    """Once stale, a conditional request goes out; after its 304 the store answers."""
    path = unique("revalidate")
    target = url(path, cc="max-age=1", etag="v1", body="kept-{n}")
    assert proxy.get(target).body == b"kept-1"
    time.sleep(1.5)
    answer = proxy.get(target)
    assert (answer.status, answer.body) == (200, b"kept-1")
    assert cache_status(answer).startswith(
        "edgeproxy; fwd=stale; fwd-status=304; stored"
    )
    assert proxy.origin.count(path) == {
        "requests": 2,
        "conditional": 1,
        "methods": ["GET", "GET"],
    }


def test_stale_while_revalidate_answers_at_once_and_revalidates_once(
    proxy: Proxy,
) -> None:
    """Stale answers come at once while the origin (slow) sees one revalidation."""
    path = unique("swr")
    target = url(
        path,
        cc="max-age=1, stale-while-revalidate=30",
        etag="v1",
        body="swr",
        delay="2",
    )
    assert proxy.get(target).body == b"swr"
    time.sleep(1.5)
    for _ in range(5):
        started = time.monotonic()
        answer = proxy.get(target)
        assert time.monotonic() - started < 1.0, "the stale answer waited"
        assert answer.body == b"swr"
        assert "detail=stale-while-revalidate" in cache_status(answer)
    deadline = time.monotonic() + 10
    while proxy.origin.count(path)["requests"] < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(2.5)  # the revalidation's answer, and time for any extra one
    counted = proxy.origin.count(path)
    assert (counted["requests"], counted["conditional"]) == (2, 1)


def test_100_concurrent_misses_send_one_request(proxy: Proxy) -> None:
    """A hundred clients missing at once: the origin sees one request."""
    path = unique("crowd")
    target = url(path, cc="max-age=60", body="crowd", delay="1")
    answers: list[Response] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def fetch() -> None:
        try:
            answer = proxy.get(target)
        except BaseException as error:
            with lock:
                errors.append(error)
            return
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=fetch) for _ in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors[:3]
    assert len(answers) == 100
    assert {(a.status, a.body) for a in answers} == {(200, b"crowd")}
    assert proxy.origin.count(path)["requests"] == 1
    collapsed = sum("collapsed" in cache_status(a) for a in answers)
    assert collapsed == 99
    assert proxy.status()["caches"]["pages"]["coalesced_waits"] >= 99


# --- invalidation and purge -----------------------------------------------------------


def test_post_invalidates_the_stored_url(proxy: Proxy) -> None:
    """A successful POST to a stored URL makes the next GET go to the origin."""
    path = unique("post")
    target = url(path, cc="max-age=60", body="v{n}")
    assert proxy.get(target).body == b"v1"
    assert proxy.get(target).body == b"v1"
    assert proxy.get(target, method=b"POST").status == 200
    assert proxy.get(target).body == b"v3"
    assert proxy.origin.count(path)["methods"] == ["GET", "POST", "GET"]


def test_purge_from_an_allowed_address(proxy: Proxy) -> None:
    """PURGE from purge_from drops the URL; the next GET is fetched again."""
    path = unique("purge")
    target = url(path, cc="max-age=60", body="v{n}")
    proxy.get(target)
    purged = proxy.get(target, method=b"PURGE")
    assert (purged.status, purged.json()) == (200, {"purged": 1})
    assert proxy.get(target).body == b"v2"


def test_purge_from_elsewhere_is_refused(proxy: Proxy) -> None:
    """PURGE from outside purge_from is 403 and the entry stays."""
    path = unique("locked")
    target = url(path, cc="max-age=60", body="v{n}")
    proxy.get(target, host=b"locked.example")
    assert proxy.get(target, method=b"PURGE", host=b"locked.example").status == 403
    assert proxy.get(target, host=b"locked.example").body == b"v1"
    assert proxy.origin.count(path)["requests"] == 1


def test_admin_purge_by_url_and_status_counters(proxy: Proxy) -> None:
    """POST /caches/pages/purge?url=... drops the URL; /status shows the counters."""
    path = unique("admin")
    target = url(path, cc="max-age=60", body="v{n}")
    proxy.get(target)
    public = quote(f"http://a.example{target}", safe="")
    answer = exchange(
        proxy.admin,
        request_bytes(b"POST", f"/caches/pages/purge?url={public}".encode()),
    )
    assert (answer.status, answer.json()) == (200, {"purged": 1})
    assert proxy.get(target).body == b"v2"
    pages = proxy.status()["caches"]["pages"]
    assert pages["entries"] >= 1
    assert pages["hits"] >= 1 and pages["misses"] >= 1
    assert pages["stored_bytes"] > 0


# --- failure, size, restart -----------------------------------------------------------


def test_stale_if_error_with_the_origin_down(start_edgeproxy: Any) -> None:
    """With the origin stopped, a stale response answers within stale-if-error."""
    origin = CacheOrigin()
    try:
        port, admin = free_port(), free_port()
        start_edgeproxy(config(port, origin, admin), port)
        proxy = Proxy(port, admin, origin)
        target = url(unique("sie"), cc="max-age=1, stale-if-error=60", body="saved")
        assert proxy.get(target).body == b"saved"
    finally:
        origin.stop()
    time.sleep(1.5)
    answer = proxy.get(target)
    assert (answer.status, answer.body) == (200, b"saved")
    assert "fwd=stale" in cache_status(answer)
    assert "detail=stale-if-error" in cache_status(answer)
    assert proxy.status()["caches"]["pages"]["stale_served"] == 1


def test_large_response_passes_through_uncached_in_flat_memory(
    origin: CacheOrigin, start_edgeproxy: Any
) -> None:
    """1 GiB over max_object_size streams through, unstored, in bounded memory."""
    port, admin = free_port(), free_port()
    process = start_edgeproxy(config(port, origin, admin), port)
    size = 1024 * MIB
    path = unique("large")
    target = url(path, cc="max-age=60", size=str(size)).encode()
    received = 0
    deadline = time.monotonic() + 120
    with (
        RssSampler(process.process.pid) as rss,
        ClientConnection(port, timeout=30) as client,
    ):
        client.send(request_bytes(b"GET", target))
        head = client.read_head()
        assert head.status == 200
        assert "stored" not in (head.header(b"cache-status") or b"").decode()
        for piece in client.body_pieces(head, timeout=30):
            received += len(piece)
            assert time.monotonic() < deadline, "the download took over 120 s"
    assert received == size
    assert rss.growth < RSS_GROWTH_LIMIT, f"RSS grew by {rss.growth} bytes"
    status = Proxy(port, admin, origin).status()["caches"]["pages"]
    assert status["entries"] == 0


def test_disk_store_survives_a_restart(
    origin: CacheOrigin, start_edgeproxy: Any
) -> None:
    """A disk cache filled before a restart answers after it without the origin."""
    port, admin = free_port(), free_port()
    text = config(port, origin, admin, cache="store = disk:cache-store")
    path = unique("disk")
    target = url(path, cc="max-age=600", body="on disk")
    first = start_edgeproxy(text, port)
    assert Proxy(port, admin, origin).get(target).body == b"on disk"
    first.stop()
    start_edgeproxy(text, port)
    answer = Proxy(port, admin, origin).get(target)
    assert (answer.status, answer.body) == (200, b"on disk")
    assert cache_status(answer).startswith("edgeproxy; hit")
    assert origin.count(path)["requests"] == 1
    status = json.dumps(Proxy(port, admin, origin).status()["caches"]["pages"])
    assert '"entries": 1' in status
