"""
The ``rate_limit`` filter: a GCRA limit per client, consumer, route or header.

Options::

    [filter:per_key_limit]
    plugin = rate_limit
    rate = 100/s              ; required: N/s, N/m, N/h, N/d (or N/10s, N/250ms)
    burst = 50                ; extra requests allowed at once (default 0)
    key = header:X-API-Key    ; client_ip (default), header:NAME, consumer, route,
                              ; path, or parts joined by +: consumer+route
    mode = reject             ; reject (default): refuse at once;
                              ; delay: hold early requests up to the burst's worth
                              ; of delay (nginx limit_req without nodelay)
    status = 429              ; the refusal's status (default 429)
    store = redis://127.0.0.1:6379/0   ; memory (default) or redis://...
    store_timeout = 500ms     ; how long a Redis answer may take (default 500ms)
    on_store_error = allow    ; allow (default: fail open) or deny (answer 503)
    max_keys = 100000         ; keys the memory store keeps (default 100000)
    headers = yes             ; RateLimit-Policy and RateLimit fields (default yes)
    policy = default          ; the policy's name in those fields

The rate limit fields follow draft-ietf-httpapi-ratelimit-headers-11 (whose field
forms are those of drafts 08 to 11): ``RateLimit-Policy: "default";q=100;w=1``
(the configured rate: ``q`` requests per ``w`` seconds) and
``RateLimit: "default";r=42;t=3`` (``r`` requests may pass now; ``t`` seconds
until the full burst is available again).  They go on every response to a
request the filter saw, passed or refused; a refusal also carries
``Retry-After``.

A request lacking a part of its key (no such header, no consumer) is limited
all the same, under a shared ``-`` value for that part: leaving a header out
must not be a way around the limit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from twisted.application.service import IService, Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.plugin import IPlugin
from twisted.python.failure import Failure
from zope.interface import implementer

from edgeproxy.config.values import parse_bool, parse_duration, parse_int
from edgeproxy.core.context import RequestContext
from edgeproxy.core.gcra import (
    GcraDecision,
    GcraPolicy,
    parse_rate,
    to_microseconds,
    whole_seconds,
)
from edgeproxy.core.message import LocalResponse, RequestHead, ResponseHead
from edgeproxy.errors import OptionError
from edgeproxy.filters.answers import local_answer
from edgeproxy.filters.rate_limit_keys import KeyPart, parse_key, request_key
from edgeproxy.interfaces import IFilter, IFilterFactory
from edgeproxy.options import parse_options
from edgeproxy.plugin_environment import PluginEnvironment
from edgeproxy.store import RateLimitStore, StoreUnavailable
from edgeproxy.store.memory import DEFAULT_MAX_KEYS, MemoryStore
from edgeproxy.store.redis import RedisStore
from edgeproxy.store.redis_client import RedisClient

log = Logger()

_POLICY_NAME = re.compile(r"[A-Za-z0-9_.:\-]+")


# --- the filter ---------------------------------------------------------------


@dataclass(frozen=True)
class RateLimitSettings:
    """The parsed options of one ``rate_limit`` filter."""

    policy: GcraPolicy
    key: tuple[KeyPart, ...] = (KeyPart("client_ip"),)
    delay: bool = False
    status: int = 429
    fail_open: bool = True
    headers: bool = True
    policy_name: str = "default"

    @cached_property
    def policy_field(self) -> bytes:
        """The ``RateLimit-Policy`` field value."""
        window = whole_seconds(to_microseconds(self.policy.rate.period))
        return (
            f'"{self.policy_name}";q={self.policy.rate.count};w={max(1, window)}'
        ).encode("ascii")

    def limit_field(self, decision: GcraDecision) -> bytes:
        """The ``RateLimit`` field value after ``decision``."""
        return (
            f'"{self.policy_name}";r={decision.remaining};'
            f"t={whole_seconds(decision.reset)}"
        ).encode("ascii")


@implementer(IFilter)
class RateLimitFilter(Service):
    """
    Limits requests per key with GCRA, in memory or in a shared store.

    A service: a store that holds a connection (Redis) is started and stopped
    with it.

    :ivar store: where the state of the keys lives.
    :ivar store_errors: how many requests the store could not decide.
    :ivar fail_opens: how many of those were let through (``on_store_error =
        allow``).
    """

    def __init__(
        self, settings: RateLimitSettings, store: RateLimitStore, reactor: Any
    ) -> None:
        self.settings = settings
        self.store = store
        self.store_errors = 0
        self.fail_opens = 0
        self._reactor = reactor
        self._store_failing = False

    def startService(self) -> None:
        """Start the store's connection, if it has one."""
        super().startService()
        if IService.providedBy(self.store):
            self.store.startService()

    def stopService(self) -> Any:
        """Stop the store's connection, if it has one."""
        super().stopService()
        if IService.providedBy(self.store):
            return self.store.stopService()
        return None

    def on_request(
        self, context: RequestContext, request: RequestHead
    ) -> LocalResponse | Deferred[LocalResponse | None] | None:
        """Count the request under its key; refuse, hold or pass it."""
        key = request_key(self.settings.key, context, request)
        now = to_microseconds(self._reactor.seconds())
        outcome = self.store.take(key, self.settings.policy, now)
        if not isinstance(outcome, Deferred):
            return self._decided(outcome, context, request)
        result: Deferred[LocalResponse | None] = outcome.addCallbacks(
            self._decided,
            self._store_failed,
            callbackArgs=(context, request),
            errbackArgs=(request,),
        )
        return result

    def on_response(self, context: RequestContext, response: ResponseHead) -> None:
        """Nothing: the fields were added to the context with the decision."""

    def _decided(
        self, decision: GcraDecision, context: RequestContext, request: RequestHead
    ) -> LocalResponse | Deferred[LocalResponse | None] | None:
        if self._store_failing:
            self._store_failing = False
            log.info("the rate-limit store answers again")
        settings = self.settings
        if settings.headers:
            context.response_headers.add(b"RateLimit-Policy", settings.policy_field)
            context.response_headers.add(b"RateLimit", settings.limit_field(decision))
        if not decision.allowed:
            return self._refusal(decision, request)
        if settings.delay and decision.delay > 0:
            return self._hold(decision.delay / 1_000_000)
        return None

    def _refusal(self, decision: GcraDecision, request: RequestHead) -> LocalResponse:
        retry_after = b"%d" % whole_seconds(decision.retry_after)
        return local_answer(
            request,
            self.settings.status,
            "rate limit exceeded",
            [(b"Retry-After", retry_after)],
        )

    def _hold(self, seconds: float) -> Deferred[LocalResponse | None]:
        timer: list[IDelayedCall] = []
        held: Deferred[LocalResponse | None] = Deferred(lambda _: timer[0].cancel())
        timer.append(self._reactor.callLater(seconds, held.callback, None))
        return held

    def _store_failed(
        self, failure: Failure, request: RequestHead
    ) -> LocalResponse | None:
        failure.trap(StoreUnavailable)
        self.store_errors += 1
        if not self._store_failing:
            self._store_failing = True
            log.warn(
                "the rate-limit store cannot answer ({error}); requests are {policy}",
                error=failure.getErrorMessage(),
                policy="let through" if self.settings.fail_open else "refused",
            )
        if self.settings.fail_open:
            self.fail_opens += 1
            return None
        return local_answer(
            request, 503, "the rate limit cannot be checked", [(b"Retry-After", b"1")]
        )


# --- the factory --------------------------------------------------------------


def _choice(*words: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        word = text.strip().lower()
        if word not in words:
            raise ValueError(f"{text.strip()!r} is not one of {', '.join(words)}")
        return word

    return parse


def _status(text: str) -> int:
    status = parse_int(text, minimum=400)
    if status > 599:
        raise ValueError(f"{status} is not a 4xx or 5xx status")
    return status


def _policy_name(text: str) -> str:
    name = text.strip()
    if not _POLICY_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a policy name (letters, digits, _ . : -)")
    return name


def _store(text: str) -> str:
    word = text.strip()
    if word != "memory" and not word.startswith("redis://"):
        raise ValueError(
            f"{word!r} is not a store (use memory or redis://host:port/db)"
        )
    return word


_PARSERS: dict[str, Callable[[str], object]] = {
    "rate": parse_rate,
    "burst": lambda text: parse_int(text, minimum=0),
    "key": parse_key,
    "mode": _choice("reject", "delay"),
    "status": _status,
    "store": _store,
    "store_timeout": parse_duration,
    "on_store_error": _choice("allow", "deny"),
    "max_keys": lambda text: parse_int(text, minimum=1),
    "headers": parse_bool,
    "policy": _policy_name,
}


@implementer(IPlugin, IFilterFactory)
class RateLimitFilterFactory:
    """Builds :class:`RateLimitFilter` from a ``[filter:NAME]`` section."""

    name = "rate_limit"
    description = "Limit request rates per client, consumer, route or header (GCRA)."

    def build(
        self, options: Mapping[str, str], environment: PluginEnvironment
    ) -> RateLimitFilter:
        """Parse and check every option; make the store (no connection yet)."""
        values, problems = parse_options(
            options,
            _PARSERS,
            required={"rate": "required (e.g. rate = 10/s)"},
            keep_order=True,
        )
        store_text = values.get("store", "memory")
        store: RateLimitStore | None = None
        if store_text == "memory":
            store = MemoryStore(values.get("max_keys", DEFAULT_MAX_KEYS))
        elif "store" in values:
            try:
                client = RedisClient.from_url(
                    store_text, environment.reactor, values.get("store_timeout", 0.5)
                )
            except ValueError as error:
                problems.append(("store", str(error)))
            else:
                store = RedisStore(client)
        if problems:
            raise OptionError(problems)
        assert store is not None
        settings = RateLimitSettings(
            policy=GcraPolicy.from_rate(values["rate"], values.get("burst", 0)),
            key=values.get("key", (KeyPart("client_ip"),)),
            delay=values.get("mode", "reject") == "delay",
            status=values.get("status", 429),
            fail_open=values.get("on_store_error", "allow") == "allow",
            headers=values.get("headers", True),
            policy_name=values.get("policy", "default"),
        )
        return RateLimitFilter(settings, store, environment.reactor)


rate_limit_factory = RateLimitFilterFactory()
