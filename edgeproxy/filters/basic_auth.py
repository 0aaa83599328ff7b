"""
The ``basic_auth`` filter: HTTP Basic authentication (RFC 7617) with an htpasswd file.

Options::

    [filter:staff]
    plugin = basic_auth
    htpasswd_file = staff.htpasswd
    realm = Staff area
    strip_credentials = yes

``htpasswd_file`` (required)
    ``user:hash`` lines, as ``htpasswd -B`` writes them; relative to the
    configuration's directory.  Two kinds of hash are accepted: bcrypt
    (``$2y$``, ``$2b$``, ``$2a$``) and ``{SHA}`` (unsalted SHA-1, accepted for
    old files only).  MD5 (``$apr1$``), ``crypt`` and plain-text entries are
    refused when the filter is built, naming the user: they are too weak to
    keep, and ``htpasswd -B`` replaces them.
``realm``
    The realm that browsers show in their login dialog (default ``edgeproxy``).
``strip_credentials``
    Remove ``Authorization`` before the request goes upstream (default yes).

A request with a user and password that match goes on with
``context.consumer`` set to the user name; anything else gets a 401 with
``WWW-Authenticate: Basic realm="...", charset="UTF-8"``.  Passwords are
compared as the UTF-8 bytes the client sent; like ``htpasswd``, bcrypt looks at
their first 72 bytes only.

A bcrypt check costs tens of milliseconds by design, so it runs in the
reactor's thread pool (when the reactor has one) instead of stalling every
other connection; each successful check is remembered (up to
:data:`VERIFIED_CACHE_SIZE` credentials, as a keyed hash, never the password)
so that a client resending the same credentials costs one check, not one per
request.  A request naming an unknown user is checked against a decoy entry,
so that its timing does not tell which users exist.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import bcrypt
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorThreads
from twisted.internet.threads import deferToThreadPool
from twisted.plugin import IPlugin
from zope.interface import implementer

from edgeproxy.config.values import parse_bool
from edgeproxy.core.context import RequestContext
from edgeproxy.core.message import LocalResponse, RequestHead, ResponseHead
from edgeproxy.errors import OptionError
from edgeproxy.filters.answers import challenge, parse_realm, unauthorized
from edgeproxy.interfaces import IFilter, IFilterFactory
from edgeproxy.options import parse_options, read_named_text
from edgeproxy.plugin_environment import PluginEnvironment

VERIFIED_CACHE_SIZE = 1024
"""How many successfully checked credentials a filter remembers."""

_BCRYPT = re.compile(r"\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}")
_BCRYPT_PASSWORD_LIMIT = 72
_SHA1 = re.compile(r"\{SHA\}([A-Za-z0-9+/]{27}=)")
_REFUSED = {
    "$apr1$": "MD5 ($apr1$) hashes are too weak",
    "$1$": "MD5-crypt ($1$) hashes are too weak",
    "$5$": "SHA-256-crypt ($5$) hashes are not supported",
    "$6$": "SHA-512-crypt ($6$) hashes are not supported",
}


@dataclass(frozen=True)
class PasswordHash:
    """
    One htpasswd entry's hash.

    :ivar scheme: ``"bcrypt"`` or ``"sha"``.
    :ivar value: the bcrypt hash as written, or the 20-byte SHA-1 digest.
    """

    scheme: str
    value: bytes

    @classmethod
    def parse(cls, text: str) -> PasswordHash:
        """
        Read the hash part of an htpasswd line.

        :raises ValueError: for a malformed or refused hash.
        """
        if _BCRYPT.fullmatch(text):
            return cls("bcrypt", text.encode("ascii"))
        sha = _SHA1.fullmatch(text)
        if sha:
            return cls("sha", base64.b64decode(sha.group(1)))
        prefix = text[: text.find("$", 1) + 1] if text.startswith("$") else ""
        reason = _REFUSED.get(prefix, "crypt and plain-text hashes are refused")
        if text.startswith(("$2", "{SHA}")):
            reason = "the hash is malformed"
        raise ValueError(f"{reason}; re-create it with htpasswd -B (bcrypt)")

    def matches(self, password: bytes) -> bool:
        """Whether ``password`` has this hash (slow for bcrypt, by design)."""
        if self.scheme == "bcrypt":
            return bcrypt.checkpw(password[:_BCRYPT_PASSWORD_LIMIT], self.value)
        return hmac.compare_digest(hashlib.sha1(password).digest(), self.value)


def read_htpasswd(text: str) -> dict[str, PasswordHash]:
    """
    The users of an htpasswd file's text and their hashes.

    :raises ValueError: naming the first bad line, a repeated user, or an
        empty file.
    """
    users: dict[str, PasswordHash] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        user, colon, hashed = line.strip().partition(":")
        if not colon or not user:
            raise ValueError(f"line {number}: not user:hash")
        if user in users:
            raise ValueError(f"line {number}: user {user!r} appears twice")
        try:
            users[user] = PasswordHash.parse(hashed.strip())
        except ValueError as error:
            raise ValueError(f"line {number}: user {user!r}: {error}") from None
    if not users:
        raise ValueError("the file has no users")
    return users


def basic_credentials(request: RequestHead) -> tuple[bytes, bytes] | None:
    """
    The user and password of the request's one ``Authorization: Basic`` field.

    ``None`` when there is no such field, more than one ``Authorization``
    field, or the credentials are malformed.
    """
    fields = request.headers.get_all(b"authorization")
    if len(fields) != 1:
        return None
    scheme, _, encoded = fields[0].strip().partition(b" ")
    if scheme.lower() != b"basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error:
        return None
    user, colon, password = decoded.partition(b":")
    if not colon:
        return None
    return user, password


@implementer(IFilter)
class BasicAuthFilter:
    """Admits requests with a user and password from an htpasswd file."""

    def __init__(
        self,
        users: Mapping[str, PasswordHash],
        reactor: Any,
        realm: str = "edgeproxy",
        strip_credentials: bool = True,
    ) -> None:
        """
        :param users: the hash of each user's password, never empty.
        :param reactor: its thread pool runs bcrypt checks, if it has one.
        """
        self._users = dict(users)
        # The slowest entry, so that unknown users take as long as known ones.
        self._decoy = max(self._users.values(), key=lambda h: h.scheme == "bcrypt")
        self._reactor = reactor
        self.strip_credentials = strip_credentials
        self._challenge = challenge("Basic", [("realm", realm), ("charset", "UTF-8")])
        self._cache_key = os.urandom(32)
        self._verified: dict[bytes, None] = {}

    def on_request(
        self, context: RequestContext, request: RequestHead
    ) -> LocalResponse | Deferred[LocalResponse | None] | None:
        """Set ``context.consumer`` to the user, or refuse the request."""
        credentials = basic_credentials(request)
        if credentials is None:
            return self._refuse(request, "send a user name and password")
        user_bytes, password = credentials
        try:
            user = user_bytes.decode("utf-8")
        except UnicodeDecodeError:
            return self._refuse(request, "the user name is not UTF-8")
        remembered = hmac.digest(
            self._cache_key, user_bytes + b":" + password, "sha256"
        )
        if remembered in self._verified:
            self._admit(context, request, user)
            return None
        known = self._users.get(user)
        entry = known if known is not None else self._decoy

        def decide(matched: bool) -> LocalResponse | None:
            if not matched or known is None:
                return self._refuse(request, "the user name or password is wrong")
            self._remember(remembered)
            self._admit(context, request, user)
            return None

        if entry.scheme == "bcrypt" and IReactorThreads.providedBy(self._reactor):
            pool = self._reactor.getThreadPool()
            checked: Deferred[bool] = deferToThreadPool(
                self._reactor, pool, entry.matches, password
            )
            return checked.addCallback(decide)
        return decide(entry.matches(password))

    def on_response(self, context: RequestContext, response: ResponseHead) -> None:
        """Nothing to do on the way back."""

    def _admit(self, context: RequestContext, request: RequestHead, user: str) -> None:
        context.consumer = user
        if self.strip_credentials:
            request.headers.remove(b"authorization")

    def _remember(self, remembered: bytes) -> None:
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            del self._verified[next(iter(self._verified))]
        self._verified[remembered] = None

    def _refuse(self, request: RequestHead, message: str) -> LocalResponse:
        return unauthorized(request, message, self._challenge)


def _read_users(text: str, environment: PluginEnvironment) -> dict[str, PasswordHash]:
    path = text.strip()
    content = read_named_text(path, environment)
    try:
        return read_htpasswd(content)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


@implementer(IPlugin, IFilterFactory)
class BasicAuthFilterFactory:
    """Builds :class:`BasicAuthFilter` from its options."""

    name = "basic_auth"
    description = "HTTP Basic authentication against an htpasswd file (bcrypt)."

    def build(
        self, options: Mapping[str, str], environment: PluginEnvironment
    ) -> BasicAuthFilter:
        """Parse the options and read the htpasswd file; every problem is reported."""
        parsers: dict[str, Callable[[str], Any]] = {
            "htpasswd_file": lambda text: _read_users(text, environment),
            "realm": parse_realm,
            "strip_credentials": parse_bool,
        }
        values, problems = parse_options(
            options, parsers, required={"htpasswd_file": "required"}, keep_order=True
        )
        if problems:
            raise OptionError(problems)
        return BasicAuthFilter(
            values["htpasswd_file"],
            environment.reactor,
            values.get("realm", "edgeproxy"),
            values.get("strip_credentials", True),
        )


basic_auth_factory = BasicAuthFilterFactory()
