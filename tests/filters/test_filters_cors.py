"""Tests for edgeproxy.filters.cors: the cors filter."""

from __future__ import annotations

import pytest
from zope.interface.verify import verifyObject

from edgeproxy.core.message import HeaderPair, Headers, LocalResponse, ResponseHead
from edgeproxy.filters.cors import CorsFilter, add_vary, cors_factory
from edgeproxy.interfaces import IFilter, IFilterFactory
from edgeproxy.testing import (
    environment,
    make_request,
    run_request_hook,
    run_response_hook,
)

APP = "https://app.example.com"
EVIL = "https://evil.example.net"

ACAO = b"access-control-allow-origin"
ACAC = b"access-control-allow-credentials"
ACAM = b"access-control-allow-methods"
ACAH = b"access-control-allow-headers"
ACEH = b"access-control-expose-headers"
ACMA = b"access-control-max-age"


def build(**options: str) -> CorsFilter:
    """A cors filter with ``options``."""
    return cors_factory.build(options, environment())


def actual(
    cors: CorsFilter,
    origin: str | None,
    method: bytes = b"GET",
    response: ResponseHead | None = None,
) -> Headers:
    """Send a non-preflight request through ``cors``; return the response's fields."""
    fields = [] if origin is None else [(b"Origin", origin.encode())]
    context, request = make_request(method, b"/", fields)
    assert run_request_hook(cors, context, request) is None
    response = response if response is not None else ResponseHead(200)
    run_response_hook(cors, context, response)
    return response.headers


def preflight(
    cors: CorsFilter, origin: str, method: bytes, headers: bytes | None = None
) -> LocalResponse:
    """Send a preflight through ``cors``; return its local answer."""
    fields: list[HeaderPair] = [
        (b"Origin", origin.encode()),
        (b"Access-Control-Request-Method", method),
    ]
    if headers is not None:
        fields.append((b"Access-Control-Request-Headers", headers))
    context, request = make_request(b"OPTIONS", b"/", fields)
    answer = run_request_hook(cors, context, request)
    assert answer is not None
    head = ResponseHead(answer.status, b"", answer.headers.copy())
    run_response_hook(cors, context, head)
    assert head.headers == answer.headers, "the preflight answer is left as made"
    return answer


def test_provides_interfaces() -> None:
    """The factory and its filter provide their interfaces."""
    assert verifyObject(IFilterFactory, cors_factory)
    assert verifyObject(IFilter, build(allow_origins="*"))


VARY = b"vary"
VARY_ORIGIN = (VARY, b"Origin")
CORS_FIELDS = {ACAO, ACAC, ACAM, ACAH, ACEH, ACMA, VARY}


def cors_fields(headers: Headers) -> list[HeaderPair]:
    """The CORS fields and ``Vary`` of ``headers``, names lower-cased, in order."""
    return [
        (name.lower(), value) for name, value in headers if name.lower() in CORS_FIELDS
    ]


@pytest.mark.parametrize(
    ("options", "origin", "expected"),
    [
        ({"allow_origins": "*"}, APP, [(ACAO, b"*")]),
        ({"allow_origins": "*"}, "null", [(ACAO, b"*")]),
        ({"allow_origins": "*"}, None, []),
        ({"allow_origins": APP}, APP, [VARY_ORIGIN, (ACAO, APP.encode())]),
        ({"allow_origins": APP}, EVIL, [VARY_ORIGIN]),
        ({"allow_origins": APP}, None, [VARY_ORIGIN]),
        (
            {"allow_origins": "HTTPS://App.Example.com:443"},
            APP,
            [VARY_ORIGIN, (ACAO, APP.encode())],
        ),
        ({"allow_origins": APP}, "https://app.example.com:8443", [VARY_ORIGIN]),
        ({"allow_origins": APP}, f"{APP}, {EVIL}", [VARY_ORIGIN]),
        (
            {"allow_origins": r"~^https://[a-z]+\.example\.com$"},
            APP,
            [VARY_ORIGIN, (ACAO, APP.encode())],
        ),
        # A pattern must match the whole origin.
        (
            {"allow_origins": r"~https://app\.example\.com"},
            APP + ".evil.net",
            [VARY_ORIGIN],
        ),
        (
            {"allow_origins": "*", "allow_credentials": "yes"},
            EVIL,
            [VARY_ORIGIN, (ACAO, EVIL.encode()), (ACAC, b"true")],
        ),
        ({"allow_origins": "*", "allow_credentials": "yes"}, "null", [VARY_ORIGIN]),
        (
            {"allow_origins": "null", "allow_credentials": "yes"},
            "null",
            [VARY_ORIGIN, (ACAO, b"null"), (ACAC, b"true")],
        ),
        (
            {"allow_origins": "*", "expose_headers": "X-Request-ID, X-Total"},
            APP,
            [(ACAO, b"*"), (ACEH, b"X-Request-ID, X-Total")],
        ),
        (
            {"allow_origins": "*", "expose_headers": "*"},
            APP,
            [(ACAO, b"*"), (ACEH, b"*")],
        ),
        ({"allow_origins": "*", "expose_headers": "*"}, None, []),
    ],
)
def test_actual_request_fields(
    options: dict[str, str], origin: str | None, expected: list[HeaderPair]
) -> None:
    """A response carries the CORS fields its request's origin calls for."""
    assert cors_fields(actual(build(**options), origin)) == expected


def test_upstream_cors_fields_are_replaced() -> None:
    """The upstream's CORS fields never reach the client beside the filter's."""
    upstream = ResponseHead(
        200,
        b"",
        Headers(
            [
                (b"Access-Control-Allow-Origin", b"*"),
                (b"Access-Control-Expose-Headers", b"X-Secret"),
                (b"Content-Type", b"text/html"),
            ]
        ),
    )
    cors = build(allow_origins=APP)
    assert actual(cors, APP, response=upstream).pairs == [
        (b"Content-Type", b"text/html"),
        (b"Vary", b"Origin"),
        (b"Access-Control-Allow-Origin", APP.encode()),
    ]
    refused = ResponseHead(200, b"", Headers([(b"Access-Control-Allow-Origin", b"*")]))
    assert ACAO not in actual(cors, EVIL, response=refused)


def test_local_error_answers_get_the_fields() -> None:
    """A 503 made by edgeproxy is readable by the allowed origin's script."""
    local = ResponseHead(503, b"", Headers([(b"Retry-After", b"30")]))
    headers = actual(
        build(allow_origins=APP, allow_credentials="yes"), APP, b"POST", local
    )
    assert headers.get(ACAO) == APP.encode()
    assert headers.get(ACAC) == b"true"


def test_exposing_everything_with_credentials_lists_the_fields() -> None:
    """With credentials, ``*`` exposed headers name the response's own fields."""
    upstream = ResponseHead(
        200,
        b"",
        Headers(
            [
                (b"Content-Type", b"application/json"),
                (b"X-Request-ID", b"abc"),
                (b"Set-Cookie", b"a=b"),
                (b"x-request-id", b"again"),
                (b"ETag", b'"1"'),
            ]
        ),
    )
    cors = build(allow_origins=APP, allow_credentials="yes", expose_headers="*")
    headers = actual(cors, APP, response=upstream)
    assert headers.get(ACEH) == b"X-Request-ID, ETag"


@pytest.mark.parametrize(
    ("options", "origin", "method", "asked", "expected"),
    [
        (
            {"allow_origins": "*"},
            APP,
            b"GET",
            None,
            [(ACAO, b"*"), (ACAM, b"GET, HEAD, POST")],
        ),
        (
            {"allow_origins": APP, "allow_methods": "get, put, Patch"},
            APP,
            b"PUT",
            None,
            [(ACAO, APP.encode()), (ACAM, b"GET, PUT, Patch"), VARY_ORIGIN],
        ),
        # Browsers never check GET, HEAD and POST: they pass whatever is listed.
        (
            {"allow_origins": "*", "allow_methods": "PUT"},
            APP,
            b"POST",
            None,
            [(ACAO, b"*"), (ACAM, b"PUT")],
        ),
        (
            {"allow_origins": "*", "allow_methods": "GET, *"},
            APP,
            b"PURGE",
            None,
            [(ACAO, b"*"), (ACAM, b"*")],
        ),
        (
            {"allow_origins": "*", "allow_methods": "*", "allow_credentials": "yes"},
            APP,
            b"PURGE",
            None,
            [
                (ACAO, APP.encode()),
                (ACAC, b"true"),
                (ACAM, b"PURGE"),
                (VARY, b"Access-Control-Request-Method"),
                VARY_ORIGIN,
            ],
        ),
        (
            {"allow_origins": "*", "allow_headers": "X-Api-Key, Content-Type"},
            APP,
            b"POST",
            b"content-type,x-api-key",
            [
                (ACAO, b"*"),
                (ACAM, b"GET, HEAD, POST"),
                (ACAH, b"X-Api-Key, Content-Type"),
            ],
        ),
        (
            {"allow_origins": "*", "allow_headers": "*"},
            APP,
            b"POST",
            b"content-type,x-api-key",
            [
                (ACAO, b"*"),
                (ACAM, b"GET, HEAD, POST"),
                (ACAH, b"*"),
                (VARY, b"Access-Control-Request-Headers"),
            ],
        ),
        # Fetch never lets a wildcard cover Authorization.
        (
            {"allow_origins": "*", "allow_headers": "*"},
            APP,
            b"POST",
            b"authorization,x-api-key",
            [
                (ACAO, b"*"),
                (ACAM, b"GET, HEAD, POST"),
                (ACAH, b"*, authorization"),
                (VARY, b"Access-Control-Request-Headers"),
            ],
        ),
        (
            {"allow_origins": APP, "allow_headers": "*", "allow_credentials": "yes"},
            APP,
            b"POST",
            b"authorization, X-Api-Key",
            [
                (ACAO, APP.encode()),
                (ACAC, b"true"),
                (ACAM, b"GET, HEAD, POST"),
                (ACAH, b"authorization, x-api-key"),
                (VARY, b"Access-Control-Request-Headers"),
                VARY_ORIGIN,
            ],
        ),
        (
            {"allow_origins": "*", "max_age": "10m", "expose_headers": "X-Id"},
            APP,
            b"GET",
            None,
            [(ACAO, b"*"), (ACAM, b"GET, HEAD, POST"), (ACMA, b"600")],
        ),
        (
            {"allow_origins": "*", "max_age": "0s"},
            APP,
            b"GET",
            b"",
            [(ACAO, b"*"), (ACAM, b"GET, HEAD, POST"), (ACMA, b"0")],
        ),
    ],
)
def test_preflight_allowed(
    options: dict[str, str],
    origin: str,
    method: bytes,
    asked: bytes | None,
    expected: list[HeaderPair],
) -> None:
    """An allowed preflight is answered here with 204 and the fields it needs."""
    answer = preflight(build(**options), origin, method, asked)
    assert answer.status == 204
    assert answer.body == b""
    assert cors_fields(answer.headers) == expected


@pytest.mark.parametrize(
    ("options", "origin", "method", "asked", "reason"),
    [
        ({"allow_origins": APP}, EVIL, b"GET", None, "the origin is not allowed"),
        (
            {"allow_origins": "*", "allow_credentials": "yes"},
            "null",
            b"GET",
            None,
            "the origin is not allowed",
        ),
        ({"allow_origins": "*"}, APP, b"DELETE", None, "the method DELETE is not"),
        # Methods are case-sensitive, as in the browser's own check.
        (
            {"allow_origins": "*", "allow_methods": "PATCH"},
            APP,
            b"patch",
            None,
            "the method patch is not",
        ),
        ({"allow_origins": "*"}, APP, b"GE T", None, "Method is malformed"),
        (
            {"allow_origins": "*"},
            APP,
            b"POST",
            b"content-type",
            "the headers content-type are not allowed",
        ),
        (
            {"allow_origins": "*", "allow_headers": "X-A"},
            APP,
            b"POST",
            b"x-a,x-b,x-c",
            "the headers x-b, x-c are not allowed",
        ),
        ({"allow_origins": "*"}, APP, b"POST", b"x-a,b@d", "Headers is malformed"),
    ],
)
def test_preflight_refused(
    options: dict[str, str],
    origin: str,
    method: bytes,
    asked: bytes | None,
    reason: str,
) -> None:
    """A refused preflight gets a 403 saying why, and no CORS fields."""
    answer = preflight(build(**options), origin, method, asked)
    assert answer.status == 403
    assert reason.encode() in answer.body
    assert not any(
        name.lower().startswith(b"access-control-") for name, _ in answer.headers
    )


def test_options_without_request_method_is_an_actual_request() -> None:
    """An OPTIONS with Origin but no Access-Control-Request-Method goes upstream."""
    headers = actual(build(allow_origins=APP), APP, b"OPTIONS")
    assert headers.get(ACAO) == APP.encode()


def test_preflight_without_origin_goes_upstream() -> None:
    """An OPTIONS asking a method but with no Origin is not CORS: it passes."""
    context, request = make_request(
        b"OPTIONS", b"/", [(b"Access-Control-Request-Method", b"PUT")]
    )
    assert run_request_hook(build(allow_origins="*"), context, request) is None


@pytest.mark.parametrize(
    ("existing", "expected"),
    [
        ([], [b"Origin"]),
        ([b"Accept"], [b"Accept", b"Origin"]),
        ([b"accept, origin"], [b"accept, origin"]),
        ([b"*"], [b"*"]),
    ],
)
def test_add_vary(existing: list[bytes], expected: list[bytes]) -> None:
    """``Vary`` gets the name once, and nothing when ``*`` covers it already."""
    headers = Headers((b"Vary", value) for value in existing)
    add_vary(headers, b"Origin")
    assert headers.get_all(b"vary") == expected
