"""The HTTP reverse proxy as a user runs it: twistd edgeproxy before real origins."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import EdgeproxyProcess, free_port
from tests.integration.http_client import (
    PATTERN,
    ClientConnection,
    OriginProcess,
    Response,
    chunked,
    exchange,
    get,
    pattern,
    request_bytes,
)

GIB = 1024 * 1024 * 1024
RSS_GROWTH_LIMIT = 80 * 1024 * 1024

Origins = dict[str, OriginProcess]


@pytest.fixture(scope="module")
def origins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Origins]:
    """Three origins, alpha, beta and gamma, shared by the module's tests."""
    directory = tmp_path_factory.mktemp("origins")
    started: Origins = {}
    try:
        for name in ("alpha", "beta", "gamma"):
            started[name] = OriginProcess(name, directory / f"{name}.log")
        yield started
    finally:
        for origin in started.values():
            origin.stop()


def gateway_config(port: int, origins: Origins) -> str:
    """One listener whose routes cover every case of this module, by Host."""
    alpha, beta, gamma = (origins[n].address for n in ("alpha", "beta", "gamma"))
    return f"""
[listener:web]
protocol = http
endpoint = tcp:{port}:interface=127.0.0.1
routes = basic, old, secure, rewrite, strip, tidy, loc, noloc, tenant, post,
    beta_prefix, route_default, exact, wild

[route:basic]
host = a.example
upstream = both

[route:old]
host = old.example
path_regex = ^/old/(.*)$
redirect = https://new.example/$1
redirect_status = 301

[route:secure]
host = secure.example
https_redirect = yes

[route:rewrite]
host = rw.example
rewrite = ^/v1/(.*)$ /$1
upstream = alpha

[route:strip]
host = strip.example
strip_prefix = /api
upstream = alpha

[route:tidy]
host = filter.example
filters = tidy
upstream = alpha

[filter:tidy]
plugin = headers
request.set = X-Env: test
request.remove = X-Debug
response.set = X-Frame-Options: DENY
response.remove = X-Origin

[route:loc]
host = loc.example
upstream = alpha
location_rewrite = yes

[route:noloc]
host = noloc.example
upstream = alpha
location_rewrite = no

[route:tenant]
host = route.example
header.X-Tenant = t1
upstream = gamma

[route:post]
host = route.example
methods = POST
upstream = beta

[route:beta_prefix]
host = route.example
path_prefix = /beta/
upstream = beta

[route:route_default]
host = route.example
upstream = alpha

[route:exact]
host = exact.example
upstream = alpha

[route:wild]
host = *.wild.example
upstream = beta

[upstream:both]
servers = {alpha}, {beta}
balance = round_robin

[upstream:alpha]
servers = {alpha}

[upstream:beta]
servers = {beta}

[upstream:gamma]
servers = {gamma}
"""


@pytest.fixture(scope="module")
def gateway(
    origins: Origins, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[int]:
    """The port of an edgeproxy running :func:`gateway_config`."""
    port = free_port()
    config = tmp_path_factory.mktemp("gateway") / "edgeproxy.ini"
    config.write_text(gateway_config(port, origins))
    process = EdgeproxyProcess(config, port)
    yield port
    process.stop()


def fields(echo: Response, name: str) -> list[str]:
    """The values of field ``name`` the origin received, per its /echo answer."""
    return [v for n, v in echo.json()["headers"] if n.lower() == name.lower()]


def assert_next_is_the_echo_after(connection: ClientConnection) -> None:
    """The next answer is /echo?after=1's: no stray body bytes came before it."""
    after = connection.read_response()
    assert after.status == 200, after
    assert after.json()["target"] == "/echo?after=1"


# --- proxy basics -----------------------------------------------------------


def test_get_reaches_the_origin_with_forwarding_fields(gateway: int) -> None:
    """A GET arrives with target and Host, plus X-Forwarded-*, Forwarded and Via."""
    response = get(gateway, b"/echo?x=1", headers=[(b"User-Agent", b"t")])
    assert response.status == 200
    echo = response.json()
    assert echo["method"] == "GET"
    assert echo["target"] == "/echo?x=1"
    assert echo["headers"][0] == ["Host", "a.example"]
    assert fields(response, "Host") == ["a.example"]
    assert fields(response, "User-Agent") == ["t"]
    assert fields(response, "X-Forwarded-For") == ["127.0.0.1"]
    assert fields(response, "X-Real-IP") == ["127.0.0.1"]
    assert fields(response, "X-Forwarded-Proto") == ["http"]
    assert fields(response, "X-Forwarded-Host") == ["a.example"]
    assert fields(response, "Forwarded") == ["for=127.0.0.1;proto=http;host=a.example"]
    assert fields(response, "Via") == ["1.1 edgeproxy"]
    assert response.header(b"x-origin") in (b"alpha", b"beta")
    assert response.values(b"via") == [b"1.1 edgeproxy"]


def test_spoofed_forwarding_fields_are_replaced(gateway: int) -> None:
    """From an untrusted client, X-Forwarded-For and X-Real-IP are ours alone."""
    spoof = [(b"X-Forwarded-For", b"6.6.6.6"), (b"X-Real-IP", b"6.6.6.6")]
    response = get(gateway, b"/echo", headers=spoof)
    assert fields(response, "X-Forwarded-For") == ["127.0.0.1"]
    assert fields(response, "X-Real-IP") == ["127.0.0.1"]


def test_round_robin_alternates_between_two_servers(gateway: int) -> None:
    """Consecutive requests go to alpha and beta in turn."""
    served = [get(gateway, b"/echo").json()["server"] for _ in range(4)]
    assert {served[0], served[1]} == {"alpha", "beta"}
    assert served[2:] == served[:2]


def test_keep_alive_serves_several_requests_on_one_connection(gateway: int) -> None:
    """Five requests in turn on one client connection are all answered."""
    with ClientConnection(gateway) as connection:
        for number in range(5):
            target = b"/echo?n=%d" % number
            connection.send(request_bytes(b"GET", target))
            response = connection.read_response()
            assert response.status == 200
            assert response.json()["target"] == target.decode()
            assert b"close" not in b",".join(response.values(b"connection")).lower()


def test_pipelined_requests_are_answered_in_order(gateway: int) -> None:
    """Three requests written at once get their three answers in order."""
    with ClientConnection(gateway) as connection:
        connection.send(
            request_bytes(b"GET", b"/echo?n=1")
            + request_bytes(b"GET", b"/bytes/70000")
            + request_bytes(b"GET", b"/echo?n=3")
        )
        first = connection.read_response()
        second = connection.read_response()
        third = connection.read_response()
    assert first.json()["target"] == "/echo?n=1"
    assert second.body == pattern(70000)
    assert third.json()["target"] == "/echo?n=3"


def test_http_1_0_client_gets_a_whole_answer_and_a_close(gateway: int) -> None:
    """An HTTP/1.0 request is answered without chunks, then the connection closes."""
    with ClientConnection(gateway) as connection:
        connection.send(request_bytes(b"GET", b"/chunked/100000", version=b"HTTP/1.0"))
        response = connection.read_response()
        assert response.status == 200
        assert response.values(b"transfer-encoding") == []
        assert response.body == pattern(100000)
        assert connection.closed_by_peer()


@pytest.mark.parametrize(
    ("method", "target", "status"),
    [
        (b"HEAD", b"/bytes/1000", 200),
        (b"GET", b"/status/204", 204),
        (b"GET", b"/status/304", 304),
    ],
)
def test_bodiless_responses_carry_no_body_bytes(
    gateway: int, method: bytes, target: bytes, status: int
) -> None:
    """HEAD, 204 and 304 answers end at their head: the next answer follows at once."""
    with ClientConnection(gateway) as connection:
        connection.send(
            request_bytes(method, target) + request_bytes(b"GET", b"/echo?after=1")
        )
        response = connection.read_response(method)
        assert response.status == status
        assert response.body == b""
        assert_next_is_the_echo_after(connection)


def test_chunked_request_body_reaches_the_origin(gateway: int) -> None:
    """A chunked request body arrives whole (length and sha256 as sent)."""
    pieces = [b"a" * 10, b"b" * 70000, b"c"]
    body = b"".join(pieces)
    data = request_bytes(
        b"POST", b"/upload", headers=[(b"Transfer-Encoding", b"chunked")]
    )
    response = exchange(gateway, data + chunked(*pieces))
    assert response.status == 200
    assert response.json()["length"] == len(body)
    assert response.json()["sha256"] == hashlib.sha256(body).hexdigest()


def test_chunked_response_body_arrives_whole(gateway: int) -> None:
    """A chunked response from the origin reaches the client byte for byte."""
    response = get(gateway, b"/chunked/200000")
    assert response.status == 200
    assert response.body == pattern(200000)


def test_content_length_bodies_both_ways(gateway: int) -> None:
    """Content-Length request and response bodies arrive whole, the length kept."""
    body = bytes(range(256)) * 1200
    upload = exchange(gateway, request_bytes(b"POST", b"/upload", body=body))
    assert upload.json()["length"] == len(body)
    assert upload.json()["sha256"] == hashlib.sha256(body).hexdigest()
    download = get(gateway, b"/bytes/200000")
    assert download.header(b"content-length") == b"200000"
    assert download.body == pattern(200000)


def test_close_delimited_response_arrives_whole(gateway: int) -> None:
    """A response the origin ends by closing reaches an HTTP/1.1 client whole."""
    response = get(gateway, b"/close-delimited/150000")
    assert response.status == 200
    assert response.body == pattern(150000)


def test_expect_100_continue(gateway: int) -> None:
    """A client that sends Expect: 100-continue gets a 100, then its body goes up."""
    body = b"e" * 100000
    head = request_bytes(
        b"POST", b"/upload", headers=[(b"Expect", b"100-continue")], body=body
    )[: -len(body)]
    with ClientConnection(gateway) as connection:
        connection.send(head)
        interim = connection.read_head(timeout=5)
        assert interim.status == 100
        connection.send(body)
        response = connection.read_response()
    assert response.status == 200
    assert response.json()["length"] == len(body)


def test_hop_by_hop_request_fields_stay_behind(gateway: int) -> None:
    """Connection, the fields it names, Keep-Alive and such never reach the origin."""
    response = get(
        gateway,
        b"/echo",
        headers=[
            (b"Connection", b"X-Foo, keep-alive"),
            (b"X-Foo", b"1"),
            (b"Keep-Alive", b"timeout=9"),
            (b"Proxy-Connection", b"keep-alive"),
            (b"Proxy-Authorization", b"Basic c2VjcmV0"),
            (b"X-Kept", b"yes"),
        ],
    )
    received = {name.lower() for name, _ in response.json()["headers"]}
    assert received.isdisjoint(
        {"x-foo", "keep-alive", "proxy-connection", "proxy-authorization"}
    )
    assert all("x-foo" not in v.lower() for v in fields(response, "Connection"))
    assert fields(response, "X-Kept") == ["yes"]


def test_hop_by_hop_response_fields_stay_behind(gateway: int) -> None:
    """Fields the origin's Connection names, Keep-Alive and such never reach us."""
    response = get(gateway, b"/headers-hop")
    assert response.status == 200
    assert response.names().isdisjoint(
        {b"x-private", b"keep-alive", b"proxy-connection"}
    )
    assert all(b"x-private" not in v.lower() for v in response.values(b"connection"))
    assert response.header(b"x-public") == b"visible"
    assert response.body == b"hop\n"


def test_repeated_fields_keep_their_order(gateway: int) -> None:
    """Repeated request and response fields arrive all, in their order."""
    sent = [(b"X-Multi", b"1"), (b"X-Other", b"a"), (b"X-Multi", b"2")]
    response = get(gateway, b"/echo", headers=sent)
    received = [
        [n, v] for n, v in response.json()["headers"] if n in ("X-Multi", "X-Other")
    ]
    assert received == [["X-Multi", "1"], ["X-Other", "a"], ["X-Multi", "2"]]
    assert response.values(b"set-cookie") == [b"first=1", b"second=2"]


# --- routing ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "host", "target", "headers", "server", "origin_target"),
    [
        (b"GET", b"exact.example", b"/e", [], "alpha", "/e"),
        (b"GET", b"EXACT.example:80", b"/e", [], "alpha", "/e"),
        (b"GET", b"a.wild.example", b"/w", [], "beta", "/w"),
        (b"GET", b"a.b.wild.example", b"/w", [], "beta", "/w"),
        (b"GET", b"route.example", b"/x", [], "alpha", "/x"),
        (b"GET", b"route.example", b"/x", [(b"X-Tenant", b"t1")], "gamma", "/x"),
        (b"POST", b"route.example", b"/x", [], "beta", "/x"),
        (b"POST", b"route.example", b"/x", [(b"X-Tenant", b"t1")], "gamma", "/x"),
        (b"GET", b"route.example", b"/beta/x", [], "beta", "/beta/x"),
        (b"GET", b"route.example", b"/betax", [], "alpha", "/betax"),
        (b"GET", b"rw.example", b"/v1/echo?a=b", [], "alpha", "/echo?a=b"),
        (b"GET", b"strip.example", b"/api/echo?z=1", [], "alpha", "/echo?z=1"),
    ],
)
def test_routing_picks_the_first_matching_route(
    gateway: int,
    method: bytes,
    host: bytes,
    target: bytes,
    headers: list[tuple[bytes, bytes]],
    server: str,
    origin_target: str,
) -> None:
    """Host, header, method and path conditions pick a route; the first match wins."""
    body = b"" if method == b"GET" else b"x"
    data = request_bytes(method, target, host, headers, body or None)
    response = exchange(gateway, data)
    assert response.status == 200
    assert response.json()["server"] == server
    assert response.json()["target"] == origin_target


@pytest.mark.parametrize(
    "host", [b"nobody.example", b"wild.example", b"exact.example.org"]
)
def test_no_matching_route_is_404(gateway: int, origins: Origins, host: bytes) -> None:
    """A request no route serves gets a short 404 and reaches no origin."""
    marker = uuid.uuid4().hex
    response = get(gateway, b"/echo?m=" + marker.encode(), host=host)
    assert response.status == 404
    assert len(response.body) < 512
    assert b"Traceback" not in response.body
    assert all(marker not in origin.received() for origin in origins.values())


def test_redirect_with_a_capture(gateway: int) -> None:
    """A redirect route answers 301 with its capture and the query carried over."""
    response = get(gateway, b"/old/page?q=1", host=b"old.example")
    assert response.status == 301
    assert response.header(b"location") == b"https://new.example/page?q=1"


def test_https_redirect(gateway: int) -> None:
    """An https_redirect route sends the same host and target to https://."""
    response = get(gateway, b"/x?y=1", host=b"secure.example")
    assert response.status in (301, 302, 307, 308)
    assert response.header(b"location") == b"https://secure.example/x?y=1"


def test_location_and_refresh_point_at_the_public_host(
    gateway: int, origins: Origins
) -> None:
    """The origin's own address in Location and Refresh becomes the public host."""
    response = get(gateway, b"/redirect-self", host=b"loc.example")
    assert response.status == 302
    assert response.header(b"location") == b"http://loc.example/echo"
    assert response.header(b"refresh") == b"0; url=http://loc.example/x"
    kept = get(gateway, b"/redirect-self", host=b"noloc.example")
    own = f"http://{origins['alpha'].address}".encode()
    assert kept.header(b"location") == own + b"/echo"


# --- filters ----------------------------------------------------------------


def test_headers_filter_edits_requests_and_responses(gateway: int) -> None:
    """The headers filter removes and sets fields both ways."""
    response = get(
        gateway, b"/echo", host=b"filter.example", headers=[(b"X-Debug", b"1")]
    )
    assert response.status == 200
    assert fields(response, "X-Debug") == []
    assert fields(response, "X-Env") == ["test"]
    assert response.header(b"x-frame-options") == b"DENY"
    assert response.header(b"x-origin") is None


# --- big bodies -------------------------------------------------------------


class RssSampler:
    """Samples a process's VmRSS every 0.5 s in a thread; keeps the largest."""

    def __init__(self, pid: int) -> None:
        self._status = Path(f"/proc/{pid}/status")
        self.start = self.sample()
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> int:
        """The resident set size now, in bytes."""
        for line in self._status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS line")

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.peak = max(self.peak, self.sample())

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.peak = max(self.peak, self.sample())

    @property
    def growth(self) -> int:
        """How far the peak rose over the start."""
        return self.peak - self.start


def big_body_proxy(start_edgeproxy: Any, origin: OriginProcess) -> tuple[Any, int]:
    """An edgeproxy without a body size limit before ``origin``, and its port."""
    port = free_port()
    config = f"""
[listener:web]
protocol = http
endpoint = tcp:{port}:interface=127.0.0.1
routes = site
max_body_size = 0

[route:site]
upstream = app

[upstream:app]
servers = {origin.address}
"""
    return start_edgeproxy(config, port), port


def pattern_sha256(size: int) -> str:
    """The sha256 of the origin's /bytes/SIZE body, for a multiple of 64 KiB."""
    assert size % len(PATTERN) == 0
    digest = hashlib.sha256()
    for _ in range(size // len(PATTERN)):
        digest.update(PATTERN)
    return digest.hexdigest()


def test_a_1_gib_download_streams_in_bounded_memory(
    origins: Origins, start_edgeproxy: Any
) -> None:
    """1 GiB goes through intact while the proxy's RSS grows by less than 80 MB."""
    proxy, port = big_body_proxy(start_edgeproxy, origins["alpha"])
    digest = hashlib.sha256()
    total = 0
    deadline = time.monotonic() + 300
    with RssSampler(proxy.process.pid) as rss, ClientConnection(port) as client:
        client.send(request_bytes(b"GET", b"/bytes/%d" % GIB))
        head = client.read_head()
        assert head.status == 200
        for piece in client.body_pieces(head, timeout=30):
            digest.update(piece)
            total += len(piece)
            assert time.monotonic() < deadline, "the download took over 300 s"
    assert total == GIB
    assert digest.hexdigest() == pattern_sha256(GIB)
    assert rss.growth < RSS_GROWTH_LIMIT, f"RSS grew by {rss.growth} bytes"


def test_a_1_gib_upload_streams_in_bounded_memory(
    origins: Origins, start_edgeproxy: Any
) -> None:
    """1 GiB goes up intact while the proxy's RSS grows by less than 80 MB."""
    proxy, port = big_body_proxy(start_edgeproxy, origins["alpha"])
    block = hashlib.sha256(b"seed").digest() * (1024 * 1024 // 32)
    digest = hashlib.sha256()
    deadline = time.monotonic() + 300
    with (
        RssSampler(proxy.process.pid) as rss,
        ClientConnection(port, timeout=30) as client,
    ):
        client.send(
            request_bytes(
                b"POST", b"/upload", headers=[(b"Content-Length", b"%d" % GIB)]
            )
        )
        for number in range(GIB // len(block)):
            # Each block differs, so a lost or repeated block changes the digest.
            piece = number.to_bytes(8, "big") + block[8:]
            digest.update(piece)
            client.send(piece)
            assert time.monotonic() < deadline, "the upload took over 300 s"
        response = client.read_response(timeout=60)
    assert response.status == 200
    assert response.json()["length"] == GIB
    assert response.json()["sha256"] == digest.hexdigest()
    assert rss.growth < RSS_GROWTH_LIMIT, f"RSS grew by {rss.growth} bytes"
