"""Tests for edgeproxy.filters.jwt: JSON Web Token authentication."""

from __future__ import annotations

import base64
import hmac
import json
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from jwt.algorithms import RSAAlgorithm
from twisted.application.service import IService
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock
from zope.interface.verify import verifyObject

from edgeproxy.core.message import HeaderPair, LocalResponse
from edgeproxy.errors import OptionError
from edgeproxy.filters.jwt import (
    CLAIMS_NOTE,
    JWTFilter,
    JWTFilterFactory,
    jwt_factory,
)
from edgeproxy.interfaces import IFilter, IFilterFactory
from edgeproxy.testing import environment, make_request, resolve, run_request_hook

NOW = 1_700_000_000
SECRET = "s3cr3t-of-at-least-thirty-two-bytes!"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()


def public_pem(key: Any) -> bytes:
    """The PEM of a private key's public half."""
    return bytes(
        key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A configuration directory with PEM public keys and a JWKS file."""
    (tmp_path / "rsa.pem").write_bytes(public_pem(RSA_KEY))
    (tmp_path / "ec.pem").write_bytes(public_pem(EC_KEY))
    (tmp_path / "ed.pem").write_bytes(public_pem(ED_KEY))
    jwks = [
        {**json.loads(RSAAlgorithm.to_jwk(key.public_key())), "kid": kid}
        for kid, key in (("one", RSA_KEY), ("two", OTHER_RSA_KEY))
    ]
    (tmp_path / "keys.json").write_text(json.dumps({"keys": jwks}))
    return tmp_path


@pytest.fixture
def clock() -> MemoryReactorClock:
    """A reactor whose time is NOW."""
    clock = MemoryReactorClock()
    clock.advance(NOW)
    return clock


def claims(**overrides: Any) -> dict[str, Any]:
    """Valid claims, with ``overrides`` (a None value removes the claim)."""
    base = {
        "sub": "user-42",
        "iss": "https://idp.example",
        "aud": "users-api",
        "iat": NOW - 10,
        "nbf": NOW - 10,
        "exp": NOW + 60,
    }
    merged = {**base, **overrides}
    return {name: value for name, value in merged.items() if value is not None}


def token(
    key: Any = SECRET,
    algorithm: str = "HS256",
    headers: dict[str, Any] | None = None,
    **overrides: Any,
) -> str:
    """A signed token with :func:`claims`."""
    return jwt.encode(claims(**overrides), key, algorithm=algorithm, headers=headers)


def bearer(text: str) -> HeaderPair:
    """An Authorization: Bearer field."""
    return (b"Authorization", b"Bearer " + text.encode())


def build(
    clock: MemoryReactorClock, directory: Path = Path("."), **options: str
) -> JWTFilter:
    """A jwt filter; HS256 with SECRET unless ``options`` give another key."""
    if not {"public_key_file", "jwks_file", "jwks_url"} & options.keys():
        options = {"algorithms": "HS256", "secret": SECRET, **options}
    return jwt_factory.build(options, environment(clock, directory))


def refusal(jwt_filter: JWTFilter, *headers: HeaderPair) -> LocalResponse:
    """The local answer of ``jwt_filter`` to a request with ``headers``."""
    context, request = make_request(headers=headers)
    answer = run_request_hook(jwt_filter, context, request)
    assert answer is not None
    assert context.consumer is None
    return answer


def test_provides_interfaces(clock: MemoryReactorClock) -> None:
    """The factory and its filter provide their interfaces; the filter is a service."""
    assert verifyObject(IFilterFactory, jwt_factory)
    jwt_filter = build(clock)
    assert verifyObject(IFilter, jwt_filter)
    assert verifyObject(IService, jwt_filter)


def test_valid_token_names_the_consumer(clock: MemoryReactorClock) -> None:
    """A valid token sets the consumer and the claims note; the token stays."""
    context, request = make_request(headers=[bearer(token())])
    assert run_request_hook(build(clock), context, request) is None
    assert context.consumer == "user-42"
    assert context.notes[CLAIMS_NOTE] == claims()
    assert b"Authorization" in request.headers


@pytest.mark.parametrize(
    ("algorithm", "pem", "signing_key"),
    [
        ("RS256", "rsa.pem", RSA_KEY),
        ("PS256", "rsa.pem", RSA_KEY),
        ("ES256", "ec.pem", EC_KEY),
        ("EdDSA", "ed.pem", ED_KEY),
    ],
)
def test_public_key_algorithms(
    clock: MemoryReactorClock,
    config_dir: Path,
    algorithm: str,
    pem: str,
    signing_key: Any,
) -> None:
    """Tokens signed with RSA, RSA-PSS, ECDSA and EdDSA verify with a PEM key file."""
    jwt_filter = build(clock, config_dir, algorithms=algorithm, public_key_file=pem)
    context, request = make_request(headers=[bearer(token(signing_key, algorithm))])
    assert run_request_hook(jwt_filter, context, request) is None
    assert context.consumer == "user-42"


def part(value: dict[str, Any]) -> str:
    """One base64url part of a token."""
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def unsigned_token() -> str:
    """A token with ``alg: none`` and no signature."""
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims())}."


def tampered_token() -> str:
    """A valid token whose payload was changed after signing."""
    header, _, signature = token().split(".")
    forged = base64.urlsafe_b64encode(json.dumps(claims(sub="admin")).encode())
    return f"{header}.{forged.rstrip(b'=').decode()}.{signature}"


@pytest.mark.parametrize(
    ("text", "description"),
    [
        (token(exp=NOW), "the token has expired"),
        (token(exp=NOW - 1), "the token has expired"),
        (token(nbf=NOW + 1), "the token is not valid yet"),
        (token(iat=NOW + 5), "the token was issued in the future"),
        (token(exp="tomorrow"), "the exp claim is not a number"),
        (token(exp=float("nan")), "the exp claim is not a number"),
        (token(nbf=True), "the nbf claim is not a number"),
        (token(aud="billing-api"), "the token's audience is not accepted"),
        (token(aud=["billing-api", {"x": 1}]), "the token's audience is not accepted"),
        (token(aud=None), "the token's audience is not accepted"),
        (token(iss="https://evil.example"), "the token's issuer is not accepted"),
        (token(jti=None), "the token has no jti claim"),
        (token(sub=None, jti="1"), "the token has no sub claim"),
        (token(sub="", jti="1"), "the token has no sub claim"),
        (unsigned_token(), "the token's algorithm is refused"),
        (tampered_token(), "the signature does not match"),
        (
            token("another-secret-of-32-bytes-or-more", jti="1"),
            "the signature does not match",
        ),
        (token(SECRET * 2, "HS512", jti="1"), "the token's algorithm is refused"),
        ("not.a.token", "the token is malformed"),
        ("abc", "the token is malformed"),
        ("ab c", "the token is malformed"),
    ],
)
def test_invalid_tokens(clock: MemoryReactorClock, text: str, description: str) -> None:
    """Bad tokens get a 401 invalid_token challenge that says why."""
    jwt_filter = build(
        clock,
        issuer="https://idp.example",
        audience="users-api, admin-api",
        required_claims="jti",
        realm="api",
    )
    answer = refusal(jwt_filter, bearer(text))
    assert answer.status == 401
    assert answer.headers.get(b"WWW-Authenticate") == (
        f'Bearer realm="api", error="invalid_token", '
        f'error_description="{description}"'.encode()
    )
    assert answer.body == f"Unauthorized: {description}\n".encode()


def test_audience_list_in_the_token(clock: MemoryReactorClock) -> None:
    """A token for several audiences passes if one of them is accepted."""
    jwt_filter = build(clock, audience="users-api")
    context, request = make_request(headers=[bearer(token(aud=["x", "users-api"]))])
    assert run_request_hook(jwt_filter, context, request) is None


def test_without_audience_or_issuer_they_are_not_checked(
    clock: MemoryReactorClock,
) -> None:
    """Unconfigured issuer and audience accept any value."""
    context, request = make_request(
        headers=[bearer(token(aud="anything", iss="anyone"))]
    )
    assert run_request_hook(build(clock), context, request) is None


def test_hs256_token_against_an_rs256_key(
    clock: MemoryReactorClock, config_dir: Path
) -> None:
    """A token MACed with the public key itself is refused (algorithm confusion)."""
    jwt_filter = build(clock, config_dir, algorithms="RS256", public_key_file="rsa.pem")
    # PyJWT will not MAC with a PEM key, so the attacker's token is made by hand.
    signing_input = f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims())}"
    mac = hmac.digest(public_pem(RSA_KEY), signing_input.encode(), "sha256")
    forged = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    answer = refusal(jwt_filter, bearer(forged))
    assert answer.status == 401
    assert b"the token's algorithm is refused" in answer.body


def test_token_of_another_key(clock: MemoryReactorClock, config_dir: Path) -> None:
    """An RS256 token signed by a different key does not verify."""
    jwt_filter = build(clock, config_dir, algorithms="RS256", public_key_file="rsa.pem")
    answer = refusal(jwt_filter, bearer(token(OTHER_RSA_KEY, "RS256")))
    assert b"the signature does not match" in answer.body


@pytest.mark.parametrize(
    ("offset", "admitted"), [(-60, False), (-31, False), (-30, False), (-29, True)]
)
def test_leeway_on_expiry(
    clock: MemoryReactorClock, offset: int, admitted: bool
) -> None:
    """exp is honoured up to leeway seconds late, and no later."""
    jwt_filter = build(clock, leeway="30s")
    context, request = make_request(headers=[bearer(token(exp=NOW + offset))])
    assert (run_request_hook(jwt_filter, context, request) is None) is admitted


def test_leeway_on_not_before(clock: MemoryReactorClock) -> None:
    """nbf and iat a little in the future pass within the leeway."""
    jwt_filter = build(clock, leeway="30s")
    context, request = make_request(headers=[bearer(token(nbf=NOW + 30, iat=NOW + 30))])
    assert run_request_hook(jwt_filter, context, request) is None


def test_time_is_the_reactors(clock: MemoryReactorClock) -> None:
    """Expiry follows the reactor's clock, not the system clock."""
    jwt_filter = build(clock)
    # NOW is in 2023: the system clock would call this token expired long ago.
    context, request = make_request(headers=[bearer(token(exp=NOW + 60))])
    assert run_request_hook(jwt_filter, context, request) is None
    clock.advance(60)
    context, request = make_request(headers=[bearer(token(exp=NOW + 60))])
    assert run_request_hook(jwt_filter, context, request) is not None


@pytest.mark.parametrize(
    "headers",
    [[], [(b"Authorization", b"Basic dXNlcjpwYXNz")], [(b"Authorization", b"Bearer ")]],
)
def test_missing_token(clock: MemoryReactorClock, headers: list[HeaderPair]) -> None:
    """No bearer token: 401 with a bare challenge (no error code, RFC 6750 3.1)."""
    answer = refusal(build(clock), *headers)
    assert answer.status == 401
    assert answer.headers.get(b"WWW-Authenticate") == b'Bearer realm="edgeproxy"'
    assert answer.body == (
        b"Unauthorized: send a token in an Authorization: Bearer field\n"
    )


def test_two_tokens_are_a_bad_request(clock: MemoryReactorClock) -> None:
    """Two Bearer fields: 400 invalid_request."""
    answer = refusal(build(clock), bearer(token()), bearer(token()))
    assert answer.status == 400
    assert b'error="invalid_request"' in (
        answer.headers.get(b"WWW-Authenticate") or b""
    )


@pytest.mark.parametrize(
    ("granted", "admitted"),
    [
        ({"scope": "users:read users:write"}, True),
        ({"scp": ["users:write", "users:read"]}, True),
        ({"scp": "users:read users:write"}, True),
        ({"scope": "users:read", "scp": ["users:write"]}, True),
        ({"scope": "users:read"}, False),
        ({"scope": "users:read", "scp": 7}, False),
        ({"scope": ["users:read", "users:write"]}, True),
        ({}, False),
    ],
)
def test_scopes(
    clock: MemoryReactorClock, granted: dict[str, Any], admitted: bool
) -> None:
    """Every required scope must be granted by scope or scp, else 403."""
    jwt_filter = build(clock, scopes="users:read, users:write")
    context, request = make_request(headers=[bearer(token(**granted))])
    answer = run_request_hook(jwt_filter, context, request)
    if admitted:
        assert answer is None
        return
    assert answer is not None
    assert answer.status == 403
    assert answer.headers.get(b"WWW-Authenticate") == (
        b'Bearer realm="edgeproxy", error="insufficient_scope", '
        b'error_description="the token lacks the scope users:'
        + (b"write" if granted else b"read")
        + b'", scope="users:read users:write"'
    )


@pytest.mark.parametrize(
    ("token_from", "place", "stripped"),
    [
        ("cookie:session", "cookie", [(b"Cookie", b"theme=dark")]),
        ("query:access_token", "query", []),
        ("header", "header", []),
    ],
)
def test_token_sources_and_strip_token(
    clock: MemoryReactorClock, token_from: str, place: str, stripped: list[HeaderPair]
) -> None:
    """The token is read where token_from says and removed with strip_token."""
    text = token()
    target, headers = b"/v1/users?page=2", [bearer(text)]
    if place == "cookie":
        headers = [(b"Cookie", f"theme=dark; session={text}".encode())]
    elif place == "query":
        target, headers = f"/v1/users?page=2&access_token={text}".encode(), []
    jwt_filter = build(clock, token_from=token_from, strip_token="yes")
    context, request = make_request(target=target, headers=headers)
    assert run_request_hook(jwt_filter, context, request) is None
    assert context.consumer == "user-42"
    assert request.target == b"/v1/users?page=2"
    assert request.headers.pairs == stripped


def test_claims_to_headers(clock: MemoryReactorClock) -> None:
    """Claims are forwarded as headers; client-sent copies are always dropped."""
    jwt_filter = build(
        clock,
        claims_to_headers="sub: X-User-Id, email: X-User-Email, "
        "groups: X-Groups, admin: X-Admin, age: X-Age",
    )
    context, request = make_request(
        headers=[
            (b"X-User-Email", b"spoofed@example.com"),
            (b"X-Admin", b"true"),
            bearer(token(groups=["a", "b"], age=7, admin=None)),
        ]
    )
    assert run_request_hook(jwt_filter, context, request) is None
    assert request.headers.pairs[1:] == [
        (b"X-User-Id", b"user-42"),
        (b"X-Groups", b"a, b"),
        (b"X-Age", b"7"),
    ]


def test_consumer_claim(clock: MemoryReactorClock) -> None:
    """consumer_claim picks the claim that names the consumer; numbers are text."""
    context, request = make_request(headers=[bearer(token(client_id=1234))])
    assert (
        run_request_hook(build(clock, consumer_claim="client_id"), context, request)
        is None
    )
    assert context.consumer == "1234"


def test_json_refusal(clock: MemoryReactorClock) -> None:
    """A client preferring JSON gets the refusal as JSON."""
    answer = refusal(build(clock), (b"Accept", b"application/json"))
    assert json.loads(answer.body)["error"] == "Unauthorized"


def test_jwks_file_picks_the_key_by_kid(
    clock: MemoryReactorClock, config_dir: Path
) -> None:
    """With a JWKS file the token's kid chooses the key; no kid is ambiguous."""
    jwt_filter = build(clock, config_dir, algorithms="RS256", jwks_file="keys.json")
    for kid, key in (("one", RSA_KEY), ("two", OTHER_RSA_KEY)):
        context, request = make_request(
            headers=[bearer(token(key, "RS256", headers={"kid": kid}))]
        )
        assert run_request_hook(jwt_filter, context, request) is None
    for headers in ({"kid": "three"}, None):
        answer = refusal(jwt_filter, bearer(token(RSA_KEY, "RS256", headers=headers)))
        assert b"no known key signed the token" in answer.body


class FakeFetcher:
    """Makes fetches whose answers the test gives."""

    def __init__(self) -> None:
        self.urls: list[str] = []
        self.pending: list[Deferred[bytes]] = []

    def __call__(self, reactor: Any, url: str) -> Any:
        self.urls.append(url)

        def fetch() -> Deferred[bytes]:
            self.pending.append(Deferred())
            return self.pending[-1]

        return fetch


def test_jwks_url_waits_for_the_first_fetch(clock: MemoryReactorClock) -> None:
    """The first request waits on the key fetch; a failed first fetch is a 503."""
    fetcher = FakeFetcher()
    jwt_filter = JWTFilterFactory(fetcher).build(
        {"algorithms": "RS256", "jwks_url": "https://idp.example/jwks.json"},
        environment(clock),
    )
    assert fetcher.urls == ["https://idp.example/jwks.json"]
    signed = token(RSA_KEY, "RS256", headers={"kid": "one"})
    context, request = make_request(headers=[bearer(signed)])
    waiting = jwt_filter.on_request(context, request)
    assert isinstance(waiting, Deferred)
    jwk = {**json.loads(RSAAlgorithm.to_jwk(RSA_KEY.public_key())), "kid": "one"}
    fetcher.pending[0].callback(json.dumps({"keys": [jwk]}).encode())
    assert resolve(waiting) is None
    assert context.consumer == "user-42"

    broken = JWTFilterFactory(fetcher).build(
        {"algorithms": "RS256", "jwks_url": "https://idp.example/jwks.json"},
        environment(clock),
    )
    context, request = make_request(headers=[bearer(signed)])
    waiting = broken.on_request(context, request)
    fetcher.pending[1].errback(ConnectionRefusedError())
    answer = resolve(waiting)
    assert answer is not None
    assert answer.status == 503


def test_service_refreshes_remote_keys(clock: MemoryReactorClock) -> None:
    """Starting the filter fetches the keys; stopping it stops the refresh."""
    fetcher = FakeFetcher()
    jwt_filter = JWTFilterFactory(fetcher).build(
        {
            "algorithms": "ES256",
            "jwks_url": "http://127.0.0.1:8080/keys",
            "jwks_cache_ttl": "10m",
        },
        environment(clock),
    )
    assert fetcher.pending == []  # building starts no I/O
    jwt_filter.startService()
    assert len(fetcher.pending) == 1
    fetcher.pending[0].callback(b'{"keys": []}')
    clock.advance(599)
    assert len(fetcher.pending) == 1
    clock.advance(1)
    assert len(fetcher.pending) == 2
    jwt_filter.stopService()
    clock.advance(6000)
    assert len(fetcher.pending) == 2


def rsa_1024_pem() -> bytes:
    """A public key too short to trust."""
    return public_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"secret": SECRET}, [("algorithms", "required")]),
        ({"algorithms": "none", "secret": SECRET}, [("algorithms", "none is refused")]),
        ({"algorithms": "HS256, None", "secret": SECRET}, [("algorithms", "none is")]),
        ({"algorithms": "HS257", "secret": SECRET}, [("algorithms", "is not an alg")]),
        ({"algorithms": ""}, [("algorithms", "list the accepted"), ("secret", "give")]),
        ({"algorithms": "HS256"}, [("secret", "give one of secret, public_key_file")]),
        (
            {"algorithms": "HS256", "secret": SECRET, "jwks_file": "keys.json"},
            [("jwks_file", "give only one of secret and jwks_file")],
        ),
        (
            {"algorithms": "HS256, RS256", "secret": SECRET},
            [("algorithms", "RS256 need a public key, not secret")],
        ),
        (
            {"algorithms": "RS256, HS256", "public_key_file": "rsa.pem"},
            [("algorithms", "HS256 need secret")],
        ),
        (
            {"algorithms": "HS512", "secret": SECRET},
            [("secret", "is 36 bytes; 64 at least")],
        ),
        (
            {"algorithms": "RS256, ES256", "public_key_file": "rsa.pem"},
            [("algorithms", "ES256 cannot verify with an RSA key of 2048 bits")],
        ),
        (
            {"algorithms": "ES384", "public_key_file": "ec.pem"},
            [("algorithms", "ES384 cannot verify with an EC key on secp256r1")],
        ),
        (
            {"algorithms": "RS256", "public_key_file": "short.pem"},
            [("public_key_file", "an RSA key of 1024 bits is too short")],
        ),
        (
            {"algorithms": "RS256", "public_key_file": "private.pem"},
            [("public_key_file", "holds a private key")],
        ),
        (
            {"algorithms": "RS256", "public_key_file": "absent.pem"},
            [("public_key_file", "cannot read 'absent.pem'")],
        ),
        (
            {"algorithms": "ES256", "jwks_file": "keys.json"},
            [("jwks_file", "no key in the set fits")],
        ),
        (
            {"algorithms": "RS256", "jwks_url": "ftp://idp.example/keys"},
            [("jwks_url", "is not an http:// or https:// URL")],
        ),
        (
            {"algorithms": "RS256", "jwks_file": "keys.json", "jwks_cache_ttl": "1h"},
            [("jwks_cache_ttl", "only applies with jwks_url")],
        ),
        (
            {"algorithms": "RS256", "jwks_url": "https://i/k", "jwks_timeout": "0s"},
            [("jwks_timeout", "is not more than 0")],
        ),
        (
            {
                "algorithms": "RS256",
                "jwks_url": "https://i/k",
                "jwks_cache_ttl": "soon",
            },
            [("jwks_cache_ttl", "is not a duration")],
        ),
        (
            {"algorithms": "HS256", "secret": SECRET, "issuer": " "},
            [("issuer", "must not be empty")],
        ),
        (
            {"algorithms": "HS256", "secret": SECRET, "token_from": "body"},
            [("token_from", "is not header, cookie:NAME or query:NAME")],
        ),
        (
            {"algorithms": "HS256", "secret": SECRET, "claims_to_headers": "sub"},
            [("claims_to_headers", "is not 'claim: Header-Name'")],
        ),
        (
            {"algorithms": "HS256", "secret": SECRET, "leeway": "a bit"},
            [("leeway", "is not a duration")],
        ),
        (
            {"algorithms": "HS256", "secret": SECRET, "audiences": "x"},
            [("audiences", "unknown option")],
        ),
    ],
)
def test_option_errors(
    config_dir: Path, options: dict[str, str], expected: list[tuple[str, str]]
) -> None:
    """Every bad option is reported against its key, all together."""
    (config_dir / "short.pem").write_bytes(rsa_1024_pem())
    (config_dir / "private.pem").write_bytes(
        RSA_KEY.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    with pytest.raises(OptionError) as raised:
        jwt_factory.build(options, environment(base_dir=config_dir))
    problems = raised.value.problems
    assert [key for key, _ in problems] == [key for key, _ in expected]
    for (_, message), (_, fragment) in zip(problems, expected, strict=True):
        assert fragment in message
