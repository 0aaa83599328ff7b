"""
The ``jwt`` filter: admit requests that carry a valid JSON Web Token (RFC 7519).

Options::

    [filter:jwt_users]
    plugin = jwt
    algorithms = RS256, ES256
    jwks_url = https://login.example.com/.well-known/jwks.json
    issuer = https://login.example.com/
    audience = users-api
    leeway = 30s
    scopes = users:read
    claims_to_headers = sub: X-User-Id, email: X-User-Email

``algorithms`` (required)
    The accepted ``alg`` values: ``HS256``, ``HS384``, ``HS512`` (with
    ``secret``); ``RS*``, ``PS*``, ``ES256``, ``ES384``, ``ES512``, ``EdDSA``
    (with a public key).  ``none`` is refused.  An algorithm that the key
    cannot verify is an error, so that HMAC can never be tried with a public
    key (the "algorithm confusion" attack).
The key, exactly one of:
    ``secret`` (the HMAC secret, as written, at least as long as the hash:
    32 bytes for HS256); ``public_key_file`` (a PEM public key or certificate);
    ``jwks_file`` (a JWK Set document); ``jwks_url`` (a JWK Set fetched over
    HTTP(S) with, optionally, ``jwks_cache_ttl`` (refresh period, default
    ``1h``), ``jwks_refresh_interval`` (least time between fetches caused by an
    unknown ``kid``, default ``5m``) and ``jwks_timeout`` (default ``10s``)).
``issuer``, ``audience``
    When given, ``iss`` must equal ``issuer`` and ``aud`` must hold one of the
    comma-separated ``audience`` values.  Without ``audience``, ``aud`` is not
    checked: set it whenever the identity provider serves several APIs.
``leeway``
    Clock skew allowed on ``exp``, ``nbf`` and ``iat`` (default ``0s``).
``required_claims``
    Claims that must be present, e.g. ``exp, sub``.
``scopes``
    Scopes the token must grant, from ``scope`` or ``scp`` (each a
    space-separated string or a list); one missing gets a 403
    ``insufficient_scope``.
``token_from``
    ``header`` (``Authorization: Bearer``, the default), ``cookie:NAME`` or
    ``query:NAME``.
``consumer_claim``
    The claim that names the consumer (default ``sub``); a token without it
    is refused.  Empty: no consumer is set and no such claim is needed.
``claims_to_headers``
    ``claim: Header`` pairs; these header fields are always removed from the
    request first, so that a client cannot supply them itself.
``strip_token``
    Remove the token before forwarding (default no).
``realm``
    The realm of the challenges (default ``edgeproxy``).

Answers follow RFC 6750: no token, 401 with ``Bearer realm="..."``; a bad
token, 401 with ``error="invalid_token"`` and an ``error_description``; more
than one token, 400 ``invalid_request``; a missing scope, 403.  When the keys of
``jwks_url`` could never be fetched, 503.

Time: PyJWT reads the system clock to check ``exp``, ``nbf`` and ``iat``.  Those
checks are turned off here and made against the reactor's ``seconds()``
instead, as everything else in edgeproxy is: one clock for the whole process,
and tests that move it by hand (expiry and leeway tested to the second, no
sleeping, no wall-clock flakiness).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import jwt
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.plugin import IPlugin
from twisted.python.failure import Failure
from zope.interface import implementer

from edgeproxy.core.context import RequestContext
from edgeproxy.core.message import LocalResponse, RequestHead, ResponseHead
from edgeproxy.errors import OptionError
from edgeproxy.filters.answers import challenge, local_answer
from edgeproxy.filters.jwks import Fetcher, KeysUnavailable, RemoteKeySet, http_fetch
from edgeproxy.filters.jwt_key_source import KEY_OPTIONS, key_source
from edgeproxy.filters.jwt_keys import KeySet, VerificationKey
from edgeproxy.filters.jwt_policy import (
    POLICY_PARSERS,
    TokenPolicy,
    claim_header_value,
    claims_problem,
    granted_scopes,
)
from edgeproxy.interfaces import IFilter, IFilterFactory
from edgeproxy.options import parse_options
from edgeproxy.plugin_environment import PluginEnvironment

CLAIMS_NOTE = "jwt.claims"
"""The key of ``context.notes`` where an admitted token's claims are kept."""

_B64TOKEN = re.compile(rb"[A-Za-z0-9\-._~+/]+=*")
_DECODE_OPTIONS: jwt.types.Options = {
    # Time claims are checked against the reactor's clock (see the module doc).
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    # Audience and issuer are checked with the rest of the policy, below.
    "verify_aud": False,
    "verify_iss": False,
    "enforce_minimum_key_length": True,
}

log = Logger()


class _Refusal(Exception):
    """Why a request is refused: the answer's status and challenge parameters."""

    def __init__(self, status: int, error: str | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


@implementer(IFilter)
class JWTFilter(Service):
    """
    Admits requests whose token verifies and satisfies a :class:`TokenPolicy`.

    It is a service so that a :class:`RemoteKeySet` is refreshed while it runs.
    """

    def __init__(
        self, policy: TokenPolicy, keys: KeySet | RemoteKeySet, clock: IReactorTime
    ) -> None:
        self.policy = policy
        self.keys = keys
        self._clock = clock

    def startService(self) -> None:
        """Start refreshing remote keys."""
        super().startService()
        if isinstance(self.keys, RemoteKeySet):
            self.keys.start()

    def stopService(self) -> None:
        """Stop refreshing remote keys."""
        super().stopService()
        if isinstance(self.keys, RemoteKeySet):
            self.keys.stop()

    def on_request(
        self, context: RequestContext, request: RequestHead
    ) -> LocalResponse | Deferred[LocalResponse | None] | None:
        """Verify the request's token; admit the request or answer it."""
        try:
            token = self._token(request)
            header = jwt.get_unverified_header(token)
            algorithm = header.get("alg")
            if (
                not isinstance(algorithm, str)
                or algorithm not in self.policy.algorithms
            ):
                raise _Refusal(401, "invalid_token", "the token's algorithm is refused")
            found = self.keys.find(header.get("kid"), algorithm)
        except _Refusal as refusal:
            return self._answer(request, refusal)
        except jwt.PyJWTError:
            return self._answer(
                request, _Refusal(401, "invalid_token", "the token is malformed")
            )
        except KeysUnavailable:
            return self._unavailable(request)
        if not isinstance(found, Deferred):
            return self._admit(context, request, token, algorithm, found)

        def fetched_failed(failure: Failure) -> LocalResponse:
            failure.trap(KeysUnavailable)
            return self._unavailable(request)

        return found.addCallbacks(
            lambda key: self._admit(context, request, token, algorithm, key),
            fetched_failed,
        )

    def on_response(self, context: RequestContext, response: ResponseHead) -> None:
        """Nothing to do on the way back."""

    def _token(self, request: RequestHead) -> str:
        """The request's one token, or a :class:`_Refusal`."""
        values = self.policy.token_from.values(request)
        if len(values) > 1:
            raise _Refusal(400, "invalid_request", "send one token, not several")
        if not values:
            raise _Refusal(
                401, None, f"send a token in {self.policy.token_from.describe()}"
            )
        if not _B64TOKEN.fullmatch(values[0]):
            raise _Refusal(401, "invalid_token", "the token is malformed")
        return values[0].decode("ascii")

    def _admit(
        self,
        context: RequestContext,
        request: RequestHead,
        token: str,
        algorithm: str,
        key: VerificationKey | None,
    ) -> LocalResponse | None:
        try:
            claims = self._claims(token, algorithm, key)
        except _Refusal as refusal:
            return self._answer(request, refusal)
        policy = self.policy
        if policy.consumer_claim is not None:
            context.consumer = str(claims[policy.consumer_claim])
        context.notes[CLAIMS_NOTE] = claims
        for claim, name in policy.claims_to_headers:
            request.headers.remove(name)
            if claims.get(claim) is None:
                continue
            value = claim_header_value(claims[claim])
            if value is None:
                log.warn("claim {claim} cannot be a header value", claim=claim)
            else:
                request.headers.add(name, value)
        if policy.strip_token:
            policy.token_from.strip(request)
        return None

    def _claims(
        self, token: str, algorithm: str, key: VerificationKey | None
    ) -> dict[str, Any]:
        """The verified, acceptable claims of ``token``, or a :class:`_Refusal`."""
        if key is None or algorithm not in key.algorithms:
            raise _Refusal(401, "invalid_token", "no known key signed the token")
        policy = self.policy
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key.key, algorithms=[algorithm], options=_DECODE_OPTIONS
            )
        except jwt.InvalidSignatureError:
            problem: str | None = "the signature does not match"
        except jwt.PyJWTError:
            problem = "the token is malformed"
        else:
            problem = claims_problem(claims, policy, self._clock.seconds())
        if problem is not None:
            raise _Refusal(401, "invalid_token", problem)
        missing = set(policy.scopes) - granted_scopes(claims)
        if missing:
            raise _Refusal(
                403, "insufficient_scope", f"the token lacks the scope {min(missing)}"
            )
        if policy.consumer_claim is not None:
            consumer = claims.get(policy.consumer_claim)
            valid = isinstance(consumer, str | int) and not isinstance(consumer, bool)
            if not valid or consumer == "":
                raise _Refusal(
                    401,
                    "invalid_token",
                    f"the token has no {policy.consumer_claim} claim",
                )
        return claims

    def _answer(self, request: RequestHead, refusal: _Refusal) -> LocalResponse:
        parameters = [("realm", self.policy.realm)]
        if refusal.error is not None:
            parameters.append(("error", refusal.error))
            parameters.append(("error_description", refusal.message))
        if refusal.error == "insufficient_scope":
            parameters.append(("scope", " ".join(self.policy.scopes)))
        return local_answer(
            request,
            refusal.status,
            refusal.message,
            [(b"WWW-Authenticate", challenge("Bearer", parameters))],
        )

    def _unavailable(self, request: RequestHead) -> LocalResponse:
        return local_answer(request, 503, "the token signing keys are not available")


# The key options are read by key_source; they are listed here to be known.
_PARSERS: dict[str, Callable[[str], Any]] = {
    **POLICY_PARSERS,
    **dict.fromkeys(KEY_OPTIONS, str),
}


@implementer(IPlugin, IFilterFactory)
class JWTFilterFactory:
    """Builds :class:`JWTFilter` from its options."""

    name = "jwt"
    description = "Admit requests carrying a valid JSON Web Token; name their consumer."

    def __init__(self, fetcher: Fetcher = http_fetch) -> None:
        """
        :param fetcher: makes the fetch of a ``jwks_url`` (tests give a fake).
        """
        self._fetcher = fetcher

    def build(
        self, options: Mapping[str, str], environment: PluginEnvironment
    ) -> JWTFilter:
        """Parse the options and load the keys; every bad option is reported."""
        values, problems = parse_options(
            options,
            _PARSERS,
            required={"algorithms": "required: list the accepted algorithms"},
            keep_order=True,
        )
        algorithms = values.get("algorithms")
        keys, key_problems = key_source(options, algorithms, environment, self._fetcher)
        problems.extend(key_problems)
        if problems or keys is None or algorithms is None:
            raise OptionError(problems)
        policy = TokenPolicy(
            **{key: value for key, value in values.items() if key in POLICY_PARSERS}
        )
        return JWTFilter(policy, keys, environment.reactor)


jwt_factory = JWTFilterFactory()
