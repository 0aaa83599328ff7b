"""
Authentication filters through a real ``twistd edgeproxy`` before a real origin.

``jwt`` with HS256, RS256 and ES256 keys made here (and a JWK Set served over
HTTP by ``servers/jwks_server.py``, rotated while edgeproxy runs), ``api_key``
from a header and from the query, and ``basic_auth`` with a bcrypt htpasswd
file.  The origin's ``/echo`` tells what reached it.  Every process is ended by
its PID.

The harness here (:class:`Gateway`, :func:`running_gateway`,
:func:`upstream_saw`) is shared with test_gateway_policies.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
)

from tests.integration.conftest import (
    EdgeproxyProcess,
    free_port,
    stop,
    wait_for_port,
)
from tests.integration.http_client import OriginProcess, Response, get

JWKS_SCRIPT = Path(__file__).resolve().parent / "servers" / "jwks_server.py"
ISSUER = "https://issuer.test/"
AUDIENCE = "orders-api"
SECRET = "an HMAC secret of well over 32 bytes, for HS256"
STAFF_PASSWORD = "correct horse battery staple"
ACME_KEY = "acme-key-0001"
GLOBEX_KEY = "globex-key-0002"

StartEdgeproxy = Callable[[str, int], EdgeproxyProcess]


# --- tokens -------------------------------------------------------------------


@dataclass(frozen=True)
class SigningKeys:
    """The private keys the tests sign with; edgeproxy gets the public halves."""

    rsa_key: rsa.RSAPrivateKey
    ec_key: ec.EllipticCurvePrivateKey
    other_rsa_key: rsa.RSAPrivateKey

    @staticmethod
    def public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
        """The PEM of ``key``'s public half."""
        pem: bytes = key.public_key().public_bytes(
            Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
        )
        return pem


def new_rsa_key() -> rsa.RSAPrivateKey:
    """A fresh 2048-bit RSA key."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def claims(**changes: Any) -> dict[str, Any]:
    """Good claims for alice, valid for five minutes, with ``changes`` applied."""
    now = int(time.time())
    document: dict[str, Any] = {
        "sub": "alice",
        "email": "alice@example.com",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 300,
        "scope": "orders:read orders:write",
    }
    document.update(changes)
    return {name: value for name, value in document.items() if value is not None}


def b64url(data: bytes) -> str:
    """base64url without padding, as JWS writes every part."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def hand_made(header: dict[str, Any], payload: dict[str, Any], key: bytes) -> str:
    """A JWS signed with HMAC-SHA256 under ``key`` whatever it is ("" if empty)."""
    signing_input = ".".join(
        b64url(json.dumps(part).encode()) for part in (header, payload)
    )
    if not key:
        return signing_input + "."
    mac = hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + b64url(mac)


def hs256(payload: dict[str, Any]) -> str:
    """``payload`` signed with the configured HMAC secret."""
    return jwt.encode(payload, SECRET, algorithm="HS256")


def flip_signature_byte(token: str) -> str:
    """``token`` with one byte in the middle of its signature changed."""
    signing_input, signature = token.rsplit(".", 1)
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[len(raw) // 2] ^= 0x01
    return signing_input + "." + b64url(bytes(raw))


def bearer(token: str) -> tuple[bytes, bytes]:
    """The ``Authorization`` field carrying ``token``."""
    return (b"Authorization", b"Bearer " + token.encode("ascii"))


def upstream_saw(response: Response, name: str) -> list[str]:
    """The values of field ``name`` that the origin's ``/echo`` received."""
    assert response.status == 200, response
    fields = response.json()["headers"]
    return [value for field, value in fields if field.lower() == name.lower()]


def challenge_of(response: Response) -> str:
    """The one ``WWW-Authenticate`` value of ``response``."""
    value = response.header(b"WWW-Authenticate")
    assert value is not None, response
    return value.decode()


# --- the gateway with static keys ---------------------------------------------


GATEWAY_CONFIG = """
[listener:web]
protocol = http
endpoint = tcp:{port}:interface=127.0.0.1
routes = hs, rs, es, limited, apikey, apiquery, staff

[route:hs]
path_prefix = /hs/
strip_prefix = /hs
upstream = app
filters = jwt_hs

[route:rs]
path_prefix = /rs/
strip_prefix = /rs
upstream = app
filters = jwt_rs

[route:es]
path_prefix = /es/
strip_prefix = /es
upstream = app
filters = jwt_es

[route:limited]
path_prefix = /limited/
strip_prefix = /limited
upstream = app
filters = jwt_hs, per_consumer

[route:apikey]
path_prefix = /apikey/
strip_prefix = /apikey
upstream = app
filters = key_header

[route:apiquery]
path_prefix = /apiquery/
strip_prefix = /apiquery
upstream = app
filters = key_query

[route:staff]
path_prefix = /staff/
strip_prefix = /staff
upstream = app
filters = staff

[upstream:app]
servers = {origin}

[filter:jwt_hs]
plugin = jwt
algorithms = HS256
secret = {secret}
issuer = {issuer}
audience = {audience}
scopes = orders:read
realm = orders
claims_to_headers = sub: X-User-Id, email: X-User-Email
strip_token = yes

[filter:jwt_rs]
plugin = jwt
algorithms = RS256
public_key_file = rs.pem
issuer = {issuer}
audience = {audience}
scopes = orders:read
realm = orders
claims_to_headers = sub: X-User-Id, email: X-User-Email

[filter:jwt_es]
plugin = jwt
algorithms = ES256
public_key_file = es.pem
issuer = {issuer}
audience = {audience}
scopes = orders:read
realm = orders
claims_to_headers = sub: X-User-Id, email: X-User-Email

[filter:per_consumer]
plugin = rate_limit
key = consumer
rate = 1/m
burst = 1

[filter:key_header]
plugin = api_key
key_from = header:X-API-Key
keys_file = partners.keys
realm = partners

[filter:key_query]
plugin = api_key
key_from = query:api_key
keys_file = partners.keys
realm = partners

[filter:staff]
plugin = basic_auth
htpasswd_file = staff.htpasswd
realm = Staff area
"""


@dataclass
class Gateway:
    """A running edgeproxy before one origin, as :func:`running_gateway` starts it."""

    port: int
    origin: OriginProcess
    process: EdgeproxyProcess

    def get(
        self, target: bytes, headers: Sequence[tuple[bytes, bytes]] = ()
    ) -> Response:
        """A GET through the gateway, on a new connection."""
        return get(self.port, target, headers=headers)

    def refused(
        self, target: bytes, headers: Sequence[tuple[bytes, bytes]] = ()
    ) -> Response:
        """A GET that must not reach the origin; its answer."""
        before = self.origin.received()
        response = self.get(target, headers)
        assert self.origin.received() == before, "a refused request went upstream"
        return response


@pytest.fixture(scope="module")
def keys() -> SigningKeys:
    """Signing keys for this module's tests."""
    return SigningKeys(
        new_rsa_key(), ec.generate_private_key(ec.SECP256R1()), new_rsa_key()
    )


@contextmanager
def running_gateway(directory: Path, template: str, **values: str) -> Iterator[Gateway]:
    """
    An origin and edgeproxy, both ended (by PID) on exit.

    :param template: the configuration, with ``{port}`` (the listener's) and
        ``{origin}`` (the origin's address) besides ``values``.
    """
    origin = OriginProcess("app", directory / "origin.log")
    port = free_port()
    config = directory / "edgeproxy.ini"
    config.write_text(template.format(port=port, origin=origin.address, **values))
    try:
        process = EdgeproxyProcess(config, port)
    except AssertionError:
        origin.stop()
        raise
    try:
        yield Gateway(port, origin, process)
    finally:
        process.stop()
        origin.stop()
    assert "Traceback" not in process.log_text(), process.log_text()


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, keys: SigningKeys
) -> Iterator[Gateway]:
    """edgeproxy with the static-key auth routes, before one origin."""
    directory = tmp_path_factory.mktemp("gateway-auth")
    (directory / "rs.pem").write_bytes(SigningKeys.public_pem(keys.rsa_key))
    (directory / "es.pem").write_bytes(SigningKeys.public_pem(keys.ec_key))
    globex_digest = hashlib.sha256(GLOBEX_KEY.encode()).hexdigest()
    (directory / "partners.keys").write_text(
        f"# partners\nacme = {ACME_KEY}\nglobex = sha256:{globex_digest}\n"
    )
    hashed = bcrypt.hashpw(STAFF_PASSWORD.encode(), bcrypt.gensalt(rounds=4))
    (directory / "staff.htpasswd").write_text(f"alice:{hashed.decode()}\n")
    values = {"secret": SECRET, "issuer": ISSUER, "audience": AUDIENCE}
    with running_gateway(directory, GATEWAY_CONFIG, **values) as running:
        yield running


# --- jwt with static keys -----------------------------------------------------


def rs256(keys: SigningKeys, payload: dict[str, Any]) -> str:
    """``payload`` signed with the configured RSA key."""
    return jwt.encode(payload, keys.rsa_key, algorithm="RS256")


def es256(keys: SigningKeys, payload: dict[str, Any]) -> str:
    """``payload`` signed with the configured EC key."""
    return jwt.encode(payload, keys.ec_key, algorithm="ES256")


@pytest.mark.parametrize(
    ("route", "sign", "token_forwarded"),
    [
        (b"/hs/", lambda keys: hs256(claims()), False),
        (b"/rs/", lambda keys: rs256(keys, claims()), True),
        (b"/es/", lambda keys: es256(keys, claims()), True),
    ],
    ids=["HS256", "RS256", "ES256"],
)
def test_valid_token_reaches_the_origin_with_its_claims_as_headers(
    gateway: Gateway,
    keys: SigningKeys,
    route: bytes,
    sign: Callable[[SigningKeys], str],
    token_forwarded: bool,
) -> None:
    """A valid token passes; sub and email replace client-sent X-User-* fields."""
    token = sign(keys)
    spoofed = [(b"X-User-Id", b"mallory"), (b"X-User-Email", b"m@evil.test")]
    response = gateway.get(route + b"echo", [bearer(token), *spoofed])
    assert upstream_saw(response, "X-User-Id") == ["alice"]
    assert upstream_saw(response, "X-User-Email") == ["alice@example.com"]
    expected = [f"Bearer {token}"] if token_forwarded else []
    assert upstream_saw(response, "Authorization") == expected


def test_absent_claim_still_clears_the_client_header(gateway: Gateway) -> None:
    """A token without email: a client-sent X-User-Email does not reach the origin."""
    token = hs256(claims(email=None))
    spoofed = (b"X-User-Email", b"admin@example.com")
    response = gateway.get(b"/hs/echo", [bearer(token), spoofed])
    assert upstream_saw(response, "X-User-Id") == ["alice"]
    assert upstream_saw(response, "X-User-Email") == []


def alg_none(keys: SigningKeys) -> str:
    """An unsigned token (``alg: none``)."""
    return hand_made({"alg": "none", "typ": "JWT"}, claims(), b"")


def hs256_with_public_key(keys: SigningKeys) -> str:
    """The algorithm-confusion attack: HS256 keyed with the RSA public key's PEM."""
    header = {"alg": "HS256", "typ": "JWT"}
    return hand_made(header, claims(), SigningKeys.public_pem(keys.rsa_key))


def tampered_payload(keys: SigningKeys) -> str:
    """A token whose payload was changed (``sub: admin``) after signing."""
    header, _, signature = rs256(keys, claims()).split(".")
    forged = b64url(json.dumps(claims(sub="admin")).encode())
    return f"{header}.{forged}.{signature}"


REFUSED_TOKENS: list[tuple[str, bytes, Callable[[SigningKeys], str], str]] = [
    (
        "expired",
        b"/hs/",
        lambda keys: hs256(claims(exp=int(time.time()) - 120)),
        "the token has expired",
    ),
    (
        "not-yet-valid",
        b"/hs/",
        lambda keys: hs256(claims(nbf=int(time.time()) + 3600)),
        "the token is not valid yet",
    ),
    (
        "wrong-audience",
        b"/rs/",
        lambda keys: rs256(keys, claims(aud="billing-api")),
        "the token's audience is not accepted",
    ),
    (
        "wrong-issuer",
        b"/es/",
        lambda keys: es256(keys, claims(iss="https://evil.test/")),
        "the token's issuer is not accepted",
    ),
    ("alg-none-hs", b"/hs/", alg_none, "the token's algorithm is refused"),
    ("alg-none-rs", b"/rs/", alg_none, "the token's algorithm is refused"),
    ("tampered-payload", b"/rs/", tampered_payload, "the signature does not match"),
    (
        "tampered-signature",
        b"/es/",
        lambda keys: flip_signature_byte(es256(keys, claims())),
        "the signature does not match",
    ),
    (
        "other-rsa-key",
        b"/rs/",
        lambda keys: jwt.encode(claims(), keys.other_rsa_key, algorithm="RS256"),
        "the signature does not match",
    ),
    (
        "wrong-hmac-secret",
        b"/hs/",
        lambda keys: jwt.encode(claims(), "x" * 40, algorithm="HS256"),
        "the signature does not match",
    ),
    (
        "hs256-to-rs256-config",
        b"/rs/",
        lambda keys: hs256(claims()),
        "the token's algorithm is refused",
    ),
    (
        "hs256-keyed-with-public-key",
        b"/rs/",
        hs256_with_public_key,
        "the token's algorithm is refused",
    ),
    (
        "rs256-to-es256-config",
        b"/es/",
        lambda keys: rs256(keys, claims()),
        "the token's algorithm is refused",
    ),
]


@pytest.mark.parametrize(
    ("route", "make", "description"),
    [case[1:] for case in REFUSED_TOKENS],
    ids=[case[0] for case in REFUSED_TOKENS],
)
def test_bad_token_gets_401_invalid_token(
    gateway: Gateway,
    keys: SigningKeys,
    route: bytes,
    make: Callable[[SigningKeys], str],
    description: str,
) -> None:
    """A bad token gets 401 Bearer error="invalid_token"; nothing goes upstream."""
    response = gateway.refused(route + b"echo", [bearer(make(keys))])
    assert response.status == 401, response
    value = challenge_of(response)
    assert value.startswith("Bearer "), value
    assert 'realm="orders"' in value
    assert 'error="invalid_token"' in value
    assert f'error_description="{description}"' in value


def test_token_without_the_scope_gets_403_insufficient_scope(
    gateway: Gateway, keys: SigningKeys
) -> None:
    """A valid token lacking a required scope gets 403 insufficient_scope."""
    token = rs256(keys, claims(scope="orders:write"))
    response = gateway.refused(b"/rs/echo", [bearer(token)])
    assert response.status == 403, response
    value = challenge_of(response)
    assert value.startswith("Bearer ")
    assert 'error="insufficient_scope"' in value
    assert 'scope="orders:read"' in value


def test_two_tokens_get_400_invalid_request(gateway: Gateway) -> None:
    """Two Bearer fields: 400 invalid_request, nothing upstream."""
    token = hs256(claims())
    response = gateway.refused(b"/hs/echo", [bearer(token), bearer(token)])
    assert response.status == 400, response
    assert 'error="invalid_request"' in challenge_of(response)


def test_token_without_subject_gets_401(gateway: Gateway) -> None:
    """A token without the consumer claim (sub) is refused: no consumer, no entry."""
    response = gateway.refused(b"/hs/echo", [bearer(hs256(claims(sub=None)))])
    assert response.status == 401, response
    assert 'error="invalid_token"' in challenge_of(response)


def test_request_without_token_gets_a_bare_bearer_challenge(gateway: Gateway) -> None:
    """No token: 401 with a Bearer challenge naming the realm and no error code."""
    response = gateway.refused(b"/es/echo")
    assert response.status == 401, response
    assert challenge_of(response) == 'Bearer realm="orders"'


def test_rate_limit_keyed_on_the_token_consumer(gateway: Gateway) -> None:
    """A consumer-keyed limit after jwt counts each token subject apart."""
    alice = [bearer(hs256(claims()))]
    bob = [bearer(hs256(claims(sub="bob", email="bob@example.com")))]
    statuses = [gateway.get(b"/limited/echo", alice).status for _ in range(3)]
    assert statuses == [200, 200, 429]
    response = gateway.get(b"/limited/echo", bob)
    assert upstream_saw(response, "X-User-Id") == ["bob"]


# --- api_key --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "target", "upstream_target"),
    [
        ([(b"X-API-Key", ACME_KEY.encode())], b"/apikey/echo?page=2", "/echo?page=2"),
        ([(b"X-API-Key", GLOBEX_KEY.encode())], b"/apikey/echo", "/echo"),
        ([], f"/apiquery/echo?api_key={ACME_KEY}&page=2".encode(), "/echo?page=2"),
        ([], f"/apiquery/echo?page=3&api_key={GLOBEX_KEY}".encode(), "/echo?page=3"),
    ],
    ids=["header", "header-sha256-entry", "query", "query-sha256-entry"],
)
def test_known_api_key_passes_and_is_stripped(
    gateway: Gateway,
    headers: list[tuple[bytes, bytes]],
    target: bytes,
    upstream_target: str,
) -> None:
    """A known key (plain or sha256 entry) passes; the origin never sees it."""
    response = gateway.get(target, headers)
    assert upstream_saw(response, "X-API-Key") == []
    assert response.json()["target"] == upstream_target


@pytest.mark.parametrize(
    ("headers", "target"),
    [
        ([], b"/apikey/echo"),
        ([(b"X-API-Key", b"acme-key-0000")], b"/apikey/echo"),
        (
            [(b"X-API-Key", hashlib.sha256(GLOBEX_KEY.encode()).hexdigest().encode())],
            b"/apikey/echo",
        ),
        ([(b"X-API-Key", ACME_KEY.encode())] * 2, b"/apikey/echo"),
        ([(b"X-API-Key", ACME_KEY.encode())], b"/apiquery/echo"),
        ([], b"/apiquery/echo?api_key=nope"),
    ],
    ids=[
        "missing",
        "unknown",
        "digest-as-key",
        "repeated",
        "header-to-query",
        "query-unknown",
    ],
)
def test_missing_or_unknown_api_key_gets_401(
    gateway: Gateway, headers: list[tuple[bytes, bytes]], target: bytes
) -> None:
    """A missing, unknown or repeated key: 401 ApiKey challenge, nothing upstream."""
    response = gateway.refused(target, headers)
    assert response.status == 401, response
    assert challenge_of(response) == 'ApiKey realm="partners"'


# --- basic_auth -------------------------------------------------------------------


def basic(user: str, password: str) -> tuple[bytes, bytes]:
    """An ``Authorization: Basic`` field."""
    encoded = base64.b64encode(f"{user}:{password}".encode())
    return (b"Authorization", b"Basic " + encoded)


def test_basic_auth_admits_the_bcrypt_user_and_strips_credentials(
    gateway: Gateway,
) -> None:
    """The bcrypt user passes (checked, then remembered); Authorization is stripped."""
    for _ in range(2):
        response = gateway.get(b"/staff/echo", [basic("alice", STAFF_PASSWORD)])
        assert upstream_saw(response, "Authorization") == []


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [basic("alice", "wrong password")],
        [basic("mallory", STAFF_PASSWORD)],
        [(b"Authorization", b"Basic not base64!")],
        [(b"Authorization", b"Bearer " + b"x" * 20)],
    ],
    ids=["missing", "wrong-password", "unknown-user", "malformed", "other-scheme"],
)
def test_basic_auth_refuses_with_a_basic_challenge(
    gateway: Gateway, headers: list[tuple[bytes, bytes]]
) -> None:
    """Bad or missing credentials: 401 with a Basic challenge, nothing upstream."""
    response = gateway.refused(b"/staff/echo", headers)
    assert response.status == 401, response
    assert challenge_of(response) == 'Basic realm="Staff area", charset="UTF-8"'


# --- jwt with a JWK Set URL ---------------------------------------------------------


class JwksServer:
    """``servers/jwks_server.py`` on a port it keeps, serving a document it rewrites."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.document = directory / "jwks.json"
        self.log = directory / "jwks.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The JWK Set URL."""
        return f"http://127.0.0.1:{self.port}/jwks.json"

    def publish(self, *keys: dict[str, Any]) -> None:
        """Serve a set of these JWKs from now on (replaced at once, never torn)."""
        staging = self.document.with_suffix(".tmp")
        staging.write_text(json.dumps({"keys": list(keys)}))
        os.replace(staging, self.document)

    def start(self) -> None:
        """Start serving (on the same port every time)."""
        self.process = subprocess.Popen(
            [sys.executable, str(JWKS_SCRIPT), str(self.port), self.document, self.log],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(self.port, self.process)
        except AssertionError:
            self.stop()
            raise

    def stop(self) -> None:
        """End the process by its PID."""
        if self.process is not None:
            stop(self.process)
            self.process = None

    def fetches(self) -> int:
        """How many requests the server has answered."""
        return len(self.log.read_text().splitlines()) if self.log.exists() else 0


def jwk(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, kid: str
) -> dict[str, Any]:
    """The public JWK of ``key`` with ``kid``."""
    if isinstance(key, rsa.RSAPrivateKey):
        document = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        algorithm = "RS256"
    else:
        document = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
        algorithm = "ES256"
    return {**document, "kid": kid, "use": "sig", "alg": algorithm}


def signed_by(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, kid: str, **changes: Any
) -> str:
    """Good claims signed with ``key``, naming ``kid``."""
    algorithm = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
    return jwt.encode(claims(**changes), key, algorithm=algorithm, headers={"kid": kid})


JWKS_CONFIG = """
[listener:web]
protocol = http
endpoint = tcp:{port}:interface=127.0.0.1
routes = remote

[route:remote]
path_prefix = /
upstream = app
filters = jwt_remote

[upstream:app]
servers = {origin}

[filter:jwt_remote]
plugin = jwt
algorithms = RS256, ES256
jwks_url = {url}
jwks_refresh_interval = {refresh_interval}
jwks_cache_ttl = {cache_ttl}
jwks_timeout = 2s
issuer = {issuer}
audience = {audience}
claims_to_headers = sub: X-User-Id
"""


@dataclass
class RemoteKeysGateway:
    """edgeproxy verifying tokens with the keys of a JWKS server."""

    port: int
    jwks: JwksServer
    process: EdgeproxyProcess

    def status_for(self, token: str) -> int:
        """The status a GET with ``token`` gets."""
        return get(self.port, b"/echo", headers=[bearer(token)]).status

    def wait_for_status(self, token: str, status: int, timeout: float = 8.0) -> None:
        """Send ``token`` (every 100 ms) until it gets ``status``."""
        deadline = time.monotonic() + timeout
        seen: list[int] = []
        while (answer := self.status_for(token)) != status:
            seen.append(answer)
            assert time.monotonic() < deadline, f"never {status}: {seen}"
            time.sleep(0.1)

    def wait_for_fetch(self, token: str, timeout: float = 8.0) -> list[int]:
        """Send ``token`` (every 100 ms) until the JWK Set was fetched again."""
        deadline = time.monotonic() + timeout
        before = self.jwks.fetches()
        seen: list[int] = []
        while self.jwks.fetches() == before:
            assert time.monotonic() < deadline, f"no fetch, answers {seen}"
            seen.append(self.status_for(token))
            time.sleep(0.1)
        return seen


StartRemote = Callable[..., RemoteKeysGateway]


@pytest.fixture
def start_remote(
    tmp_path: Path, start_edgeproxy: StartEdgeproxy
) -> Iterator[StartRemote]:
    """
    Start an origin and edgeproxy verifying with a JWKS server's keys.

    The factory takes the JWKs to serve at startup (``None``: the JWKS server
    is not running yet), ``jwks_refresh_interval`` and ``jwks_cache_ttl``.
    """
    jwks = JwksServer(tmp_path)
    origin = OriginProcess("app", tmp_path / "origin.log")
    started: list[EdgeproxyProcess] = []

    def start(
        served: Sequence[dict[str, Any]] | None, refresh_interval: str, cache_ttl: str
    ) -> RemoteKeysGateway:
        if served is not None:
            jwks.publish(*served)
            jwks.start()
        port = free_port()
        text = JWKS_CONFIG.format(
            port=port,
            origin=origin.address,
            url=jwks.url,
            refresh_interval=refresh_interval,
            cache_ttl=cache_ttl,
            issuer=ISSUER,
            audience=AUDIENCE,
        )
        process = start_edgeproxy(text, port)
        started.append(process)
        if served is not None:
            # The fetch at startup has the keys served at startup, not later ones.
            deadline = time.monotonic() + 10
            while not jwks.fetches():
                assert time.monotonic() < deadline, "no JWKS fetch at startup"
                time.sleep(0.02)
        return RemoteKeysGateway(port, jwks, process)

    try:
        yield start
    finally:
        jwks.stop()
        origin.stop()
    for process in started:
        assert "Traceback" not in process.log_text(), process.log_text()


def test_jwks_unknown_kid_refetches_the_set(start_remote: StartRemote) -> None:
    """A token naming a new kid is accepted once the JWK Set publishes it."""
    old, new = new_rsa_key(), ec.generate_private_key(ec.SECP256R1())
    # A cache_ttl of an hour: only unknown kids can cause a fetch here.
    gateway = start_remote([jwk(old, "2024-01")], "1s", "1h")
    assert gateway.status_for(signed_by(old, "2024-01")) == 200
    gateway.jwks.publish(jwk(old, "2024-01"), jwk(new, "2024-07"))
    gateway.wait_for_status(signed_by(new, "2024-07"), 200)
    response = get(gateway.port, b"/echo", headers=[bearer(signed_by(new, "2024-07"))])
    assert upstream_saw(response, "X-User-Id") == ["alice"]


def test_jwks_removed_key_refused_once_an_unknown_kid_refetches(
    start_remote: StartRemote,
) -> None:
    """A removed key stays trusted while cached and fails after the next fetch."""
    old, new = new_rsa_key(), new_rsa_key()
    gateway = start_remote([jwk(old, "old"), jwk(new, "new")], "1s", "1h")
    gateway.jwks.publish(jwk(new, "new"))
    # Cached: the set is not fetched again for a kid it holds.
    assert gateway.status_for(signed_by(old, "old")) == 200
    # A made-up kid makes it fetch (at most once a second); then "old" is gone.
    assert set(gateway.wait_for_fetch(signed_by(new, "made-up"))) == {401}
    assert gateway.status_for(signed_by(old, "old")) == 401
    assert gateway.status_for(signed_by(new, "new")) == 200


def test_jwks_cache_ttl_refresh_drops_a_removed_key(start_remote: StartRemote) -> None:
    """The periodic refresh (jwks_cache_ttl) drops a removed key and adds a new one."""
    old, new = new_rsa_key(), new_rsa_key()
    # refresh_interval of an hour: only the periodic refresh fetches.
    gateway = start_remote([jwk(old, "old")], "1h", "1s")
    assert gateway.status_for(signed_by(old, "old")) == 200
    gateway.jwks.publish(jwk(new, "new"))
    gateway.wait_for_status(signed_by(old, "old"), 401)
    assert gateway.status_for(signed_by(new, "new")) == 200


def test_jwks_failed_refresh_keeps_the_keys_held(start_remote: StartRemote) -> None:
    """The JWKS server serving junk, then down: the keys already held still work."""
    key = new_rsa_key()
    gateway = start_remote([jwk(key, "k1")], "1h", "1s")
    token = signed_by(key, "k1")
    assert gateway.status_for(token) == 200

    def wait_for_failed_refreshes(count: int) -> None:
        deadline = time.monotonic() + 8
        while gateway.process.log_text().count("JWKS fetch from") < count:
            assert time.monotonic() < deadline, gateway.process.log_text()
            time.sleep(0.1)

    gateway.jwks.document.write_text("<html>maintenance</html>")
    wait_for_failed_refreshes(1)
    assert gateway.status_for(token) == 200
    gateway.jwks.stop()
    wait_for_failed_refreshes(3)
    assert gateway.status_for(token) == 200


def test_jwks_made_up_kids_fetch_at_most_once_per_refresh_interval(
    start_remote: StartRemote,
) -> None:
    """A flood of unknown kids costs the JWKS server one fetch per refresh interval."""
    key = new_rsa_key()
    gateway = start_remote([jwk(key, "real")], "1s", "1h")
    started = time.monotonic()
    assert gateway.status_for(signed_by(key, "real")) == 200
    statuses = {gateway.status_for(signed_by(key, f"fake-{n}")) for n in range(30)}
    elapsed = time.monotonic() - started
    assert statuses == {401}
    # One fetch at startup, then at most one per started second.
    assert gateway.jwks.fetches() <= 2 + int(elapsed), (gateway.jwks.fetches(), elapsed)


def test_jwks_down_at_startup_answers_503_until_it_is_back(
    start_remote: StartRemote,
) -> None:
    """No JWK Set ever fetched: 503 for tokens; once the server is up, 200."""
    key = new_rsa_key()
    gateway = start_remote(None, "1s", "1h")
    token = signed_by(key, "k1")
    for _ in range(3):
        response = get(gateway.port, b"/echo", headers=[bearer(token)])
        assert response.status == 503, response
    gateway.jwks.publish(jwk(key, "k1"))
    gateway.jwks.start()
    gateway.wait_for_status(token, 200)
    assert "JWKS fetch from" in gateway.process.log_text()
