"""
The ``api_key`` filter: let a request through only with a known API key.

Options::

    [filter:partners]
    plugin = api_key
    key_from = header:X-API-Key
    keys = acme:3f9a7c0e5d,
        globex:sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    keys_file = partners.keys
    strip_key = yes
    realm = partners

``key_from``
    Where the key travels: ``header:NAME`` (the default is ``header:X-API-Key``),
    ``query:NAME`` or ``cookie:NAME``.
``keys``
    ``consumer:KEY`` pairs, separated by commas or line breaks.  A key written
    ``sha256:HEX`` is the SHA-256 of the real key, so that the configuration
    need not hold the key itself.
``keys_file``
    A file of ``consumer = KEY`` (or ``consumer = sha256:HEX``) lines; blank
    lines and lines starting with ``#`` are skipped.  Relative to the
    configuration's directory.  ``keys`` and ``keys_file`` may be combined; at
    least one is needed.  A consumer may have several keys (to rotate them); a
    key belongs to one consumer only.
``strip_key``
    Remove the key from the request before it goes upstream (default yes).
``realm``
    The realm of the challenge (default ``edgeproxy``).

A request with a known key goes on with ``context.consumer`` set to the key's
consumer.  A missing, repeated or unknown key gets a 401.  RFC 9110 requires a
``WWW-Authenticate`` field on a 401, and no standard scheme describes API keys,
so the challenge is ``ApiKey realm="..."``: a syntactically valid scheme that
clients ignore (browsers show no login dialog for it) and that tells a
developer which kind of credential is missing; the body says where to send it.

Keys are compared in constant time with respect to the secret: each configured
key is kept only as its SHA-256 digest, in a dict keyed by that digest, and a
request's key is hashed and looked up.  How long the lookup takes depends on
the digest of the *presented* key, which an attacker chooses, not on how
much of the *secret* key it matches; learning that a guess's digest shares
bytes with a stored digest tells nothing about the key (SHA-256 is preimage
resistant), so the byte-by-byte timing attack on ``==`` has nothing to grip.
The cost is also the same whether ten keys or ten thousand are configured.

The module also holds :class:`CredentialLocation`, the header / query / cookie
addressing that the ``jwt`` filter shares.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from twisted.plugin import IPlugin
from zope.interface import implementer

from edgeproxy.balancing.request_keys import is_token
from edgeproxy.config.values import parse_bool
from edgeproxy.core.context import RequestContext
from edgeproxy.core.message import Headers, LocalResponse, RequestHead, ResponseHead
from edgeproxy.errors import OptionError
from edgeproxy.filters.answers import challenge, parse_realm, unauthorized
from edgeproxy.interfaces import IFilter, IFilterFactory
from edgeproxy.options import parse_options, read_named_text
from edgeproxy.plugin_environment import PluginEnvironment

_CONSUMER = re.compile(r"[A-Za-z0-9_.@+-]+")
_KEY = re.compile(r"[\x21-\x7e]+")
_HASHED = re.compile(r"sha256:([0-9a-fA-F]{64})")


def _form_decode(text: bytes) -> bytes:
    """A query component decoded as HTML forms encode it (``+`` is a space)."""
    return unquote_to_bytes(text.replace(b"+", b" "))


def _cookie_pairs(field: bytes) -> list[tuple[bytes, bytes]]:
    """The ``name=value`` pairs of one ``Cookie`` field (values unquoted)."""
    pairs = []
    for item in field.split(b";"):
        name, equals, value = item.strip().partition(b"=")
        if equals:
            pairs.append((name, value.strip().strip(b'"')))
    return pairs


@dataclass(frozen=True)
class CredentialLocation:
    """
    Where a request carries a credential: a header field, a query parameter or a cookie.

    :ivar kind: ``"header"``, ``"query"``, ``"cookie"``, or ``"bearer"`` (the
        token of ``Authorization: Bearer``, see :data:`BEARER`).
    :ivar name: the field's, parameter's or cookie's name.
    """

    kind: str
    name: bytes

    @classmethod
    def parse(cls, text: str, kinds: Collection[str]) -> CredentialLocation:
        """
        Read ``KIND:NAME`` (e.g. ``header:X-API-Key``), for one of ``kinds``.

        :raises ValueError: if ``text`` is not of that form.
        """
        kind, colon, name = text.strip().partition(":")
        name = name.strip()
        if kind not in kinds or not colon:
            forms = ", ".join(f"{kind}:NAME" for kind in kinds)
            raise ValueError(f"{text.strip()!r} is not one of {forms}")
        if kind == "query":
            valid = bool(name) and all(char not in "&=#?" for char in name)
        else:
            valid = is_token(name)
        if not valid or not name.isascii():
            raise ValueError(f"{name!r} is not a valid {kind} name")
        return cls(kind, name.encode("ascii"))

    def describe(self) -> str:
        """Where to send the credential, in words: ``the X-API-Key header``."""
        if self.kind == "bearer":
            return "an Authorization: Bearer field"
        noun = {"header": "header", "query": "query parameter", "cookie": "cookie"}
        return f"the {self.name.decode('ascii')} {noun[self.kind]}"

    def values(self, request: RequestHead) -> list[bytes]:
        """Every non-empty value this location has in ``request``, in order."""
        if self.kind == "header":
            found = [value.strip() for value in request.headers.get_all(self.name)]
        elif self.kind == "bearer":
            parts = [
                field.strip().partition(b" ")
                for field in request.headers.get_all(self.name)
            ]
            found = [
                value.strip()
                for scheme, _, value in parts
                if scheme.lower() == b"bearer"
            ]
        elif self.kind == "query":
            found = []
            for item in request.query.split(b"&"):
                name, _, value = item.partition(b"=")
                if _form_decode(name) == self.name:
                    found.append(_form_decode(value))
        else:
            found = [
                value
                for field in request.headers.get_all(b"cookie")
                for name, value in _cookie_pairs(field)
                if name == self.name
            ]
        return [value for value in found if value]

    def strip(self, request: RequestHead) -> None:
        """Remove the credential from ``request``, leaving everything else as sent."""
        if self.kind in {"header", "bearer"}:
            request.headers.remove(self.name)
        elif self.kind == "query":
            path, question, query = request.target.partition(b"?")
            if not question:
                return
            kept = [
                item
                for item in query.split(b"&")
                if _form_decode(item.partition(b"=")[0]) != self.name
            ]
            request.target = path + (b"?" + b"&".join(kept) if kept else b"")
        else:
            fields = Headers()
            for name, value in request.headers:
                if name.lower() != b"cookie":
                    fields.add(name, value)
                elif others := self._other_cookies(value):
                    fields.add(name, others)
            request.headers.pairs[:] = fields.pairs

    def _other_cookies(self, field: bytes) -> bytes:
        """A ``Cookie`` field's value without this location's cookie."""
        items = [item.strip() for item in field.split(b";")]
        return b"; ".join(
            item for item in items if item and item.partition(b"=")[0] != self.name
        )


BEARER = CredentialLocation("bearer", b"Authorization")
"""The token of an ``Authorization: Bearer`` field (RFC 6750)."""


def key_digest(key: bytes) -> bytes:
    """The SHA-256 digest by which a key is stored and looked up."""
    return hashlib.sha256(key).digest()


def _parse_entry(consumer: str, key: str) -> tuple[str, bytes]:
    """One ``consumer``/``key`` pair as (consumer, digest)."""
    consumer, key = consumer.strip(), key.strip()
    if not _CONSUMER.fullmatch(consumer):
        raise ValueError(
            f"{consumer!r} is not a consumer name (letters, digits, _ . @ + -)"
        )
    hashed = _HASHED.fullmatch(key)
    if hashed:
        return consumer, bytes.fromhex(hashed.group(1))
    if key.startswith("sha256:"):
        raise ValueError(f"the key of {consumer!r} is not sha256: and 64 hex digits")
    if not _KEY.fullmatch(key):
        raise ValueError(f"the key of {consumer!r} is empty or has spaces")
    return consumer, key_digest(key.encode("ascii"))


def _parse_inline(text: str) -> list[tuple[str, bytes]]:
    entries = []
    for item in text.replace("\n", ",").split(","):
        if not item.strip():
            continue
        consumer, colon, key = item.partition(":")
        if not colon:
            raise ValueError(f"{item.strip()!r} is not consumer:KEY")
        entries.append(_parse_entry(consumer, key))
    return entries


def _parse_file(text: str, environment: PluginEnvironment) -> list[tuple[str, bytes]]:
    path = text.strip()
    entries = []
    lines = read_named_text(path, environment).splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        consumer, equals, key = line.partition("=")
        if not equals:
            raise ValueError(f"{path}, line {number}: not 'consumer = KEY'")
        try:
            entries.append(_parse_entry(consumer, key))
        except ValueError as error:
            raise ValueError(f"{path}, line {number}: {error}") from None
    return entries


@implementer(IFilter)
class APIKeyFilter:
    """Admits requests that carry a known API key and names their consumer."""

    def __init__(
        self,
        consumers: Mapping[bytes, str],
        location: CredentialLocation,
        strip_key: bool = True,
        realm: str = "edgeproxy",
    ) -> None:
        """
        :param consumers: consumer names keyed by the SHA-256 digest of their key.
        """
        self._consumers = dict(consumers)
        self.location = location
        self.strip_key = strip_key
        self._challenge = challenge("ApiKey", [("realm", realm)])

    def on_request(
        self, context: RequestContext, request: RequestHead
    ) -> LocalResponse | None:
        """Set ``context.consumer`` from the key, or refuse the request."""
        values = self.location.values(request)
        if not values:
            return self._refuse(
                request, f"send an API key in {self.location.describe()}"
            )
        if len(values) > 1:
            return self._refuse(request, "send one API key, not several")
        consumer = self._consumers.get(key_digest(values[0]))
        if consumer is None:
            return self._refuse(request, "the API key is not valid")
        context.consumer = consumer
        if self.strip_key:
            self.location.strip(request)
        return None

    def on_response(self, context: RequestContext, response: ResponseHead) -> None:
        """Nothing to do on the way back."""

    def _refuse(self, request: RequestHead, message: str) -> LocalResponse:
        return unauthorized(request, message, self._challenge)


_PARSERS: dict[str, Callable[[str], Any]] = {
    "key_from": lambda text: CredentialLocation.parse(
        text, ("header", "query", "cookie")
    ),
    "keys": _parse_inline,
    "strip_key": parse_bool,
    "realm": parse_realm,
}


@implementer(IPlugin, IFilterFactory)
class APIKeyFilterFactory:
    """Builds :class:`APIKeyFilter` from its options."""

    name = "api_key"
    description = "Admit requests carrying a known API key; name their consumer."

    def build(
        self, options: Mapping[str, str], environment: PluginEnvironment
    ) -> APIKeyFilter:
        """Parse the options and read the keys file; every bad option is reported."""
        parsers = {
            **_PARSERS,
            "keys_file": lambda text: _parse_file(text, environment),
        }
        values, problems = parse_options(options, parsers, keep_order=True)
        consumers: dict[bytes, str] = {}
        for key in ("keys", "keys_file"):
            for consumer, digest in values.get(key, ()):
                if consumers.setdefault(digest, consumer) != consumer:
                    problems.append(
                        (key, f"{consumer!r} has the key of {consumers[digest]!r}")
                    )
        if not consumers and not problems:
            problems.append(("keys", "give keys or keys_file (no key is known)"))
        if problems:
            raise OptionError(problems)
        return APIKeyFilter(
            consumers,
            values.get("key_from", CredentialLocation("header", b"X-API-Key")),
            values.get("strip_key", True),
            values.get("realm", "edgeproxy"),
        )


api_key_factory = APIKeyFilterFactory()
