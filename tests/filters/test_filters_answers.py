"""Tests for edgeproxy.filters.answers: local answers and authentication challenges."""

from __future__ import annotations

import json

import pytest

from edgeproxy.core.message import Headers, RequestHead
from edgeproxy.filters.answers import (
    challenge,
    local_answer,
    parse_realm,
    prefers_json,
    unauthorized,
)


def request_accepting(*accept: bytes) -> RequestHead:
    """A GET whose Accept fields are ``accept``."""
    return RequestHead(b"GET", b"/", Headers([(b"Accept", value) for value in accept]))


@pytest.mark.parametrize(
    ("accept", "json_wanted"),
    [
        (None, False),
        (b"", False),
        (b"application/json", True),
        (b"Application/JSON", True),
        (b"text/plain", False),
        (b"*/*", False),
        (b"application/*", True),
        (b"text/html, application/json;q=0.9", True),
        (b"application/json;q=0.5, text/plain", False),
        (b"text/plain;q=0.2, application/json", True),
        (b"application/json;q=0, */*", False),
        (b"application/json; q=0.8, */*;q=0.1", True),
        (b"text/*;q=0.9, application/json", True),
        (b"application/json;q=2", False),
        (b"nonsense", False),
    ],
)
def test_prefers_json(accept: bytes | None, json_wanted: bool) -> None:
    """JSON only when Accept ranks it above text/plain; ties and no Accept are text."""
    assert prefers_json(accept) is json_wanted


def test_text_answer() -> None:
    """Without a JSON preference the body is 'Reason: message' in plain text."""
    answer = local_answer(request_accepting(b"*/*"), 401, "send an API key")
    assert answer.status == 401
    assert answer.body == b"Unauthorized: send an API key\n"
    assert answer.headers.get(b"Content-Type") == b"text/plain; charset=utf-8"
    assert answer.headers.get(b"Vary") == b"Accept"


def test_json_answer() -> None:
    """A client preferring JSON gets status, reason and message as a JSON object."""
    answer = local_answer(request_accepting(b"application/json"), 429, "slow down")
    assert answer.headers.get(b"Content-Type") == b"application/json"
    assert json.loads(answer.body) == {
        "status": 429,
        "error": "Too Many Requests",
        "message": "slow down",
    }


def test_accept_fields_are_read_together() -> None:
    """Repeated Accept fields count as one list."""
    request = request_accepting(b"text/plain;q=0.1", b"application/json")
    assert local_answer(request, 403, "no").headers.get(b"Content-Type") == (
        b"application/json"
    )


def test_extra_headers_follow_the_defaults() -> None:
    """Extra fields are added after Content-Type and Vary, repeats kept."""
    answer = local_answer(
        None,
        401,
        "who are you",
        [(b"WWW-Authenticate", b"Basic"), (b"WWW-Authenticate", b"Bearer")],
    )
    assert answer.headers.pairs == [
        (b"Content-Type", b"text/plain; charset=utf-8"),
        (b"Vary", b"Accept"),
        (b"WWW-Authenticate", b"Basic"),
        (b"WWW-Authenticate", b"Bearer"),
    ]


def test_unknown_status_has_a_generic_reason() -> None:
    """A status without a registered phrase is called 'Error'."""
    assert local_answer(None, 499, "gone").body == b"Error: gone\n"


@pytest.mark.parametrize(
    ("scheme", "parameters", "value"),
    [
        ("Basic", [], b"Basic"),
        ("Basic", [("realm", "a b")], b'Basic realm="a b"'),
        (
            "Bearer",
            [("realm", "api"), ("error", "invalid_token")],
            b'Bearer realm="api", error="invalid_token"',
        ),
        ("Basic", [("realm", 'say "hi" \\o/')], b'Basic realm="say \\"hi\\" \\\\o/"'),
    ],
)
def test_challenge(
    scheme: str, parameters: list[tuple[str, str]], value: bytes
) -> None:
    """Challenges are 'Scheme name="value", ...' with quotes and backslashes escaped."""
    assert challenge(scheme, parameters) == value


@pytest.mark.parametrize(
    ("scheme", "parameters"),
    [
        ("Two words", []),
        ("Basic", [("bad name", "x")]),
        ("Basic", [("realm", "line\r\nX-Injected: 1")]),
    ],
)
def test_challenge_refuses_what_would_break_the_field(
    scheme: str, parameters: list[tuple[str, str]]
) -> None:
    """A scheme or name that is not a token, or a control character, raises."""
    with pytest.raises(ValueError):
        challenge(scheme, parameters)


@pytest.mark.parametrize(
    ("text", "realm"), [("Staff area", "Staff area"), ("  api  ", "api")]
)
def test_parse_realm(text: str, realm: str) -> None:
    """A realm is trimmed printable ASCII."""
    assert parse_realm(text) == realm


@pytest.mark.parametrize("text", ["", "   ", "caf\u00e9", "tab\there"])
def test_parse_realm_refuses(text: str) -> None:
    """Empty, non-ASCII or control characters are refused."""
    with pytest.raises(ValueError, match="is not a realm"):
        parse_realm(text)


def test_unauthorized_is_a_401_with_its_challenge_and_reason() -> None:
    """An authentication filter's refusal: 401, the challenge, the message as reason."""
    answer = unauthorized(None, "the API key is not valid", b'ApiKey realm="api"')
    assert answer.status == 401
    assert answer.headers.get(b"WWW-Authenticate") == b'ApiKey realm="api"'
    assert answer.reason == "the API key is not valid"
    assert answer.body == b"Unauthorized: the API key is not valid\n"
