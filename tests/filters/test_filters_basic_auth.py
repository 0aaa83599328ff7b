"""Tests for edgeproxy.filters.basic_auth: HTTP Basic authentication with htpasswd."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorThreads
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from zope.interface import implementer
from zope.interface.verify import verifyObject

from edgeproxy.core.message import HeaderPair
from edgeproxy.errors import OptionError
from edgeproxy.filters import basic_auth
from edgeproxy.filters.basic_auth import (
    BasicAuthFilter,
    PasswordHash,
    basic_auth_factory,
    read_htpasswd,
)
from edgeproxy.interfaces import IFilter, IFilterFactory
from edgeproxy.testing import environment, make_request, resolve, run_request_hook

# Cost 4, the cheapest bcrypt allows: the tests check logic, not strength.
ALICE_HASH = bcrypt.hashpw(b"alice-pw", bcrypt.gensalt(4)).decode()
# htpasswd -B writes $2y$; bcrypt's $2b$ is the same algorithm.
CAROL_HASH = "$2y$" + bcrypt.hashpw(b"carol-pw", bcrypt.gensalt(4)).decode()[4:]
BOB_HASH = "{SHA}" + base64.b64encode(hashlib.sha1(b"bob-pw").digest()).decode()
DAVE_HASH = (
    "{SHA}" + base64.b64encode(hashlib.sha1(b"pw:with:colons").digest()).decode()
)
LONG_PASSWORD = b"p" * 72
LONG_HASH = bcrypt.hashpw(LONG_PASSWORD, bcrypt.gensalt(4)).decode()
HTPASSWD = (
    f"# staff\nalice:{ALICE_HASH}\nbob:{BOB_HASH}\n\ncarol:{CAROL_HASH}\n"
    f"d\u00e9sir\u00e9e:{BOB_HASH}\nlong:{LONG_HASH}\ndave:{DAVE_HASH}\n"
)


def basic(user: bytes, password: bytes) -> HeaderPair:
    """An Authorization: Basic field."""
    return (b"Authorization", b"Basic " + base64.b64encode(user + b":" + password))


@pytest.fixture
def htpasswd_dir(tmp_path: Path) -> Path:
    """A configuration directory holding staff.htpasswd."""
    (tmp_path / "staff.htpasswd").write_text(HTPASSWD, encoding="utf-8")
    return tmp_path


def build(directory: Path, reactor: Any = None, **options: str) -> BasicAuthFilter:
    """A basic_auth filter on staff.htpasswd with ``options``."""
    return basic_auth_factory.build(
        {"htpasswd_file": "staff.htpasswd", **options},
        environment(reactor, base_dir=directory),
    )


def test_provides_interfaces(htpasswd_dir: Path) -> None:
    """The factory and its filter provide their interfaces."""
    assert verifyObject(IFilterFactory, basic_auth_factory)
    assert verifyObject(IFilter, build(htpasswd_dir))


@pytest.mark.parametrize(
    ("user", "password"),
    [
        (b"alice", b"alice-pw"),
        (b"bob", b"bob-pw"),
        (b"carol", b"carol-pw"),
        ("d\u00e9sir\u00e9e".encode(), b"bob-pw"),
        (b"dave", b"pw:with:colons"),
    ],
)
def test_good_credentials(htpasswd_dir: Path, user: bytes, password: bytes) -> None:
    """bcrypt ($2b$, $2y$) and {SHA} entries admit, name the user, strip the field.

    The password is everything after the first colon, colons included.
    """
    context, request = make_request(headers=[(b"Host", b"a"), basic(user, password)])
    assert run_request_hook(build(htpasswd_dir), context, request) is None
    assert context.consumer == user.decode()
    assert request.headers.pairs == [(b"Host", b"a")]


def test_strip_credentials_no(htpasswd_dir: Path) -> None:
    """With strip_credentials = no the upstream sees Authorization too."""
    context, request = make_request(headers=[basic(b"bob", b"bob-pw")])
    auth = build(htpasswd_dir, strip_credentials="no")
    assert run_request_hook(auth, context, request) is None
    assert b"Authorization" in request.headers


def test_bcrypt_reads_72_bytes_like_htpasswd(htpasswd_dir: Path) -> None:
    """A password longer than bcrypt's 72 bytes is checked on its first 72."""
    context, request = make_request(headers=[basic(b"long", LONG_PASSWORD + b"more")])
    assert run_request_hook(build(htpasswd_dir), context, request) is None


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ([], "send a user name and password"),
        ([basic(b"alice", b"wrong")], "the user name or password is wrong"),
        ([basic(b"bob", b"Bob-pw")], "the user name or password is wrong"),
        ([basic(b"mallory", b"alice-pw")], "the user name or password is wrong"),
        ([basic(b"alice", b"")], "the user name or password is wrong"),
        ([basic(b"\xff", b"x")], "the user name is not UTF-8"),
        ([(b"Authorization", b"Basic !!!")], "send a user name and password"),
        ([(b"Authorization", b"Basic YWxpY2U=")], "send a user name and password"),
        ([(b"Authorization", b"Bearer abc")], "send a user name and password"),
        (
            [basic(b"bob", b"bob-pw"), basic(b"bob", b"bob-pw")],
            "send a user name and password",
        ),
    ],
)
def test_refusals(htpasswd_dir: Path, headers: list[HeaderPair], message: str) -> None:
    """Missing, malformed, repeated or wrong credentials get a 401 Basic challenge."""
    context, request = make_request(headers=headers)
    answer = run_request_hook(build(htpasswd_dir, realm="Staff"), context, request)
    assert answer is not None
    assert answer.status == 401
    assert answer.headers.get(b"WWW-Authenticate") == (
        b'Basic realm="Staff", charset="UTF-8"'
    )
    assert answer.body == f"Unauthorized: {message}\n".encode()
    assert context.consumer is None


class InlineThreadPool:
    """A thread pool that runs each job at once, counting them."""

    def __init__(self) -> None:
        self.jobs = 0

    def callInThreadWithCallback(
        self,
        on_result: Callable[[bool, object], None],
        function: Callable[..., object],
        *args: object,
    ) -> None:
        self.jobs += 1
        try:
            result = function(*args)
        except Exception:
            on_result(False, Failure())
        else:
            on_result(True, result)


@implementer(IReactorThreads)
class ThreadedClock(MemoryReactorClock):
    """A MemoryReactorClock with an inline thread pool."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = InlineThreadPool()

    def getThreadPool(self) -> InlineThreadPool:
        return self.pool

    def callFromThread(self, function: Callable[..., object], *args: object) -> None:
        function(*args)


def test_bcrypt_runs_in_the_thread_pool_and_is_remembered(htpasswd_dir: Path) -> None:
    """A bcrypt check runs in the reactor's pool; the same credentials again do not."""
    reactor = ThreadedClock()
    auth = build(htpasswd_dir, reactor)
    context, request = make_request(headers=[basic(b"alice", b"alice-pw")])
    pending = auth.on_request(context, request)
    assert isinstance(pending, Deferred)
    assert resolve(pending) is None
    assert context.consumer == "alice"
    assert reactor.pool.jobs == 1
    context, request = make_request(headers=[basic(b"alice", b"alice-pw")])
    assert auth.on_request(context, request) is None
    assert context.consumer == "alice"
    assert reactor.pool.jobs == 1


def test_failures_and_unknown_users_cost_a_check_each(htpasswd_dir: Path) -> None:
    """Wrong passwords are never remembered; unknown users are checked too."""
    reactor = ThreadedClock()
    auth = build(htpasswd_dir, reactor)
    for user in (b"alice", b"alice", b"mallory"):
        context, request = make_request(headers=[basic(user, b"guess")])
        answer = resolve(auth.on_request(context, request))
        assert answer is not None
        assert answer.status == 401
    assert reactor.pool.jobs == 3


def test_remembered_credentials_are_bounded(
    htpasswd_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the cache size the oldest remembered credentials are checked again."""
    monkeypatch.setattr(basic_auth, "VERIFIED_CACHE_SIZE", 1)
    reactor = ThreadedClock()
    auth = build(htpasswd_dir, reactor)
    for user in (b"alice", b"carol", b"carol", b"alice"):
        context, request = make_request(headers=[basic(user, user + b"-pw")])
        assert resolve(auth.on_request(context, request)) is None
    assert reactor.pool.jobs == 3


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("eve:$apr1$abc$defghijklmnopqrstuvwx.", "MD5 ($apr1$) hashes are too weak"),
        ("eve:$1$abc$defghijklmnopqrstuv", "MD5-crypt ($1$) hashes are too weak"),
        ("eve:$6$salt$hash", "SHA-512-crypt ($6$) hashes are not supported"),
        ("eve:abJnggxhB/yWI", "crypt and plain-text hashes are refused"),
        ("eve:plaintext", "crypt and plain-text hashes are refused"),
        ("eve:$2y$10$short", "the hash is malformed"),
        ("eve:{SHA}nope", "the hash is malformed"),
        ("eve", "not user:hash"),
        (f"bob:{BOB_HASH}", "user 'bob' appears twice"),
    ],
)
def test_refused_entries(tmp_path: Path, line: str, fragment: str) -> None:
    """Weak, unknown or malformed entries fail the build, naming line and user."""
    (tmp_path / "staff.htpasswd").write_text(f"bob:{BOB_HASH}\n{line}\n")
    with pytest.raises(OptionError) as raised:
        build(tmp_path)
    ((key, message),) = raised.value.problems
    assert key == "htpasswd_file"
    assert message.startswith("staff.htpasswd: line 2: ")
    assert fragment in message


def test_refused_entries_say_how_to_fix_them() -> None:
    """The message for a refused hash tells how to re-create it."""
    with pytest.raises(ValueError, match=r"re-create it with htpasswd -B \(bcrypt\)"):
        PasswordHash.parse("$apr1$abc$def")


def test_empty_file_is_refused() -> None:
    """A file without users is an error rather than a filter that admits no one."""
    with pytest.raises(ValueError, match="the file has no users"):
        read_htpasswd("# nobody yet\n\n")


@pytest.mark.parametrize(
    ("options", "key", "fragment"),
    [
        ({}, "htpasswd_file", "required"),
        ({"htpasswd_file": "nowhere"}, "htpasswd_file", "cannot read 'nowhere'"),
        ({"htpasswd_file": "staff.htpasswd", "users": "x"}, "users", "unknown option"),
        (
            {"htpasswd_file": "staff.htpasswd", "strip_credentials": "perhaps"},
            "strip_credentials",
            "is not yes or no",
        ),
        (
            {"htpasswd_file": "staff.htpasswd", "realm": "caf\u00e9"},
            "realm",
            "is not a realm",
        ),
    ],
)
def test_option_errors(
    htpasswd_dir: Path, options: dict[str, str], key: str, fragment: str
) -> None:
    """Each bad option is reported against its key."""
    with pytest.raises(OptionError) as raised:
        basic_auth_factory.build(options, environment(base_dir=htpasswd_dir))
    assert [problem[0] for problem in raised.value.problems] == [key]
    assert fragment in raised.value.problems[0][1]
