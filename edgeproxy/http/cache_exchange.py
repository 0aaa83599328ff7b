"""
The cache side of one request: lookup, serving, filling, coalescing, revalidating.

The policy is :mod:`edgeproxy.core.caching`; the bytes live in a
:class:`~edgeproxy.cache.store.CacheStore`.  A :class:`CacheExchange` walks
one request of a cached route through them, on behalf of its
:class:`CacheClient` (the proxy's request, which sends heads upstream, runs the
response filters and answers the client):

- a fresh (or usably stale) stored response answers at once, its body read
  from the store only as fast as the client takes it
  (:mod:`edgeproxy.http.stored_answer`); ``HEAD`` is answered from a stored
  ``GET``, a single byte range from a stored 200;
- a stale one is revalidated; its 304 freshens the stored heads; an origin
  failure falls back on it within ``stale-if-error``; within
  ``stale-while-revalidate`` it answers at once and one background request
  revalidates it (through a :func:`detached_exchange`);
- a miss goes forward; a storable answer streams to the client and into the
  store from one upstream read (:class:`~edgeproxy.http.store_fill.StoreFill`).
  The client leaving does not stop the fill, and a store failure never breaks
  the client's answer;
- concurrent misses for one URL wait for the one request in flight (single
  flight, kept by the :class:`~edgeproxy.http.shared_cache.SharedCache`), then
  look again; they go forward themselves when it was not stored, or after
  waiting for the upstream's first-byte timeout;
- a 2xx or 3xx answer to an unsafe method removes what it invalidates.

``PURGE`` is answered by :func:`purge_answer`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

from twisted.internet.interfaces import IDelayedCall

from edgeproxy.core.caching.decision import (
    ORIGIN_ERROR_STATUSES,
    Action,
    CacheDecision,
    decide,
    usable_after_error,
)
from edgeproxy.core.caching.freshening import freshen
from edgeproxy.core.caching.freshness import time_to_live
from edgeproxy.core.caching.invalidation import invalidated_keys
from edgeproxy.core.caching.keys import primary_key
from edgeproxy.core.caching.ranges import single_range, without_range
from edgeproxy.core.caching.status import CacheStatus
from edgeproxy.core.caching.storability import storage_decision
from edgeproxy.core.caching.stored_response import StoredResponse
from edgeproxy.core.caching.validation import (
    forward_request,
    not_modified,
    revalidation_request,
    served_response,
)
from edgeproxy.core.framing import NO_BODY, BodyFraming, BodyKind
from edgeproxy.core.message import LocalResponse, RequestHead, ResponseHead
from edgeproxy.http.body import BodyStream
from edgeproxy.http.client import UpstreamResponse
from edgeproxy.http.detached_exchange import detached_exchange
from edgeproxy.http.shared_cache import SharedCache, purge_answer
from edgeproxy.http.store_fill import StoreFill, commit_without_body
from edgeproxy.http.stored_answer import StoredBody, answer_from_store

__all__ = [
    "BodySource",
    "CacheClient",
    "CacheExchange",
    "detached_exchange",
    "purge_answer",
]

_COALESCED = frozenset({"uri-miss", "vary-miss", "stale"})


BodySource = BodyStream | StoredBody | StoreFill
"""What a response body is sent from."""


class CacheClient(Protocol):
    """The proxy's side of a request, as a :class:`CacheExchange` uses it."""

    @property
    def gone(self) -> bool:
        """Whether the client left."""

    def forward(self, head: RequestHead) -> None:
        """Send ``head`` upstream; its answer goes to ``CacheExchange.responded``."""

    def deliver(
        self, head: ResponseHead, framing: BodyFraming, body: BodySource | None
    ) -> None:
        """Answer the client with ``head`` and ``body`` through the response filters."""

    def respond_local(self, answer: LocalResponse) -> None:
        """Answer with a response made here, through the response filters."""

    def fetch_in_background(self, head: RequestHead, cache: CacheExchange) -> None:
        """Send ``head`` upstream for ``cache`` alone, with no client waiting."""


class CacheExchange:
    """
    The cache side of one request on a cached route.

    :param cache: the route's cache.
    :param client: the proxy's request it works for.
    :param request: the request as the client sent it (after the request
        filters), with its public target: the one the cache is keyed by.
    :param upstream_target: the target to send upstream (rewritten).
    :param scheme: the listener's scheme; with ``host``, the URL's origin.
    :param wait_limit: the longest wait for another request's fetch (the
        upstream's first-byte timeout); 0 for no limit.
    :param background: this is a background revalidation: nobody to answer.
    """

    def __init__(
        self,
        cache: SharedCache,
        client: CacheClient,
        request: RequestHead,
        *,
        upstream_target: bytes,
        scheme: bytes,
        host: bytes,
        reactor: Any,
        wait_limit: float = 0.0,
        background: bool = False,
    ) -> None:
        self.cache = cache
        self.client = client
        self.request = request
        self.upstream_target = upstream_target
        self.scheme = scheme
        self.host = host
        self.reactor = reactor
        self.wait_limit = wait_limit
        self.background = background
        self.key = primary_key(scheme, host, request.target)
        self.decision = CacheDecision(Action.FORWARD, CacheStatus(fwd="miss"))
        self.request_time = 0.0
        self.stripped = False
        self.leading = False
        self.waited = False
        self._timer: IDelayedCall | None = None

    # --- the proxy's calls ----------------------------------------------------

    def start(self) -> None:
        """Answer from the store, wait for a fetch in flight, or go forward."""
        self._look_up(may_wait=True)

    def responded(self, response: UpstreamResponse) -> None:
        """The upstream answered (its head already made fit for the client)."""
        head = response.head
        now = self.reactor.seconds()
        for key in invalidated_keys(self.request, head, self.scheme, self.host):
            self.cache.store.remove(key)
        decision = self.decision
        if decision.action is Action.REVALIDATE:
            if head.status == 304 or (
                head.status == 200 and self.request.method == b"HEAD"
            ):
                self._freshen(response, now)
                return
            stale = decision.selected
            if (
                head.status in ORIGIN_ERROR_STATUSES
                and stale is not None
                and not self.background
                and usable_after_error(self.request, stale, now, self.cache.settings)
                and self._serve_stale(stale, now, head.status)
            ):
                _drop(response.body)
                self._end()
                return
            if head.status == 200:
                self.cache.counters.revalidated_200 += 1
        self._store_or_pass(response, now)

    def failed(self) -> bool:
        """The upstream gave no answer; whether a stale response answered instead."""
        self._end()
        if self.background:
            return True
        stale = self.decision.selected
        now = self.reactor.seconds()
        if (
            self.client.gone
            or stale is None
            or not usable_after_error(self.request, stale, now, self.cache.settings)
        ):
            return False
        return self._serve_stale(stale, now, None)

    def client_gone(self) -> bool:
        """The client left; whether the fetch goes on (others wait to be filled)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self.cache.leave(self.key, self._landed)
        return self.leading

    # --- lookup -------------------------------------------------------------------

    def _look_up(self, may_wait: bool) -> None:
        cache, request = self.cache, self.request
        now = self.reactor.seconds()
        variants = cache.store.variants(self.key)
        wanted = single_range(request) if request.method == b"GET" else None
        if wanted is not None:
            decision = decide(without_range(request), variants, now, cache.settings)
            if decision.action is not Action.SERVE:
                decision = decide(request, variants, now, cache.settings)
        else:
            decision = decide(request, variants, now, cache.settings)
        self.decision = decision
        action = decision.action
        if action in (Action.SERVE, Action.SERVE_STALE):
            stored = decision.selected
            assert stored is not None
            if self._serve(stored, decision.status, now, wanted):
                cache.store.record_hit(self.key, stored.variant)
                if action is Action.SERVE_STALE:
                    cache.counters.stale_served += 1
                    self._revalidate_in_background(decision, now)
                return
            decision = self.decision = CacheDecision(
                Action.FORWARD, CacheStatus(fwd="miss")
            )
            action = decision.action
        if action is Action.REFUSE:
            answer = LocalResponse.text(504, "Gateway Timeout: not in the cache")
            answer.headers.add(b"Cache-Status", decision.status.field_value())
            self.client.respond_local(answer)
            return
        status = decision.status
        coalesced = (
            request.method in (b"GET", b"HEAD")
            and status.fwd in _COALESCED
            and status.detail is None
        )
        if coalesced and may_wait and cache.join(self.key, self._landed):
            self.waited = True
            if self.wait_limit > 0:
                self._timer = self.reactor.callLater(self.wait_limit, self._waited)
            return
        if status.fwd in ("uri-miss", "vary-miss", "miss"):
            cache.store.record_miss()
        if coalesced and request.method == b"GET":
            self.leading = cache.lead(self.key)
        if action is Action.REVALIDATE:
            head = revalidation_request(request, decision)
            self.stripped = True
        else:
            head = forward_request(request)
            self.stripped = head is not request
        self._forward(head, now)

    def _landed(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.client.gone:
            self._look_up(may_wait=False)

    def _waited(self) -> None:
        self._timer = None
        self.cache.leave(self.key, self._landed)
        self._look_up(may_wait=False)

    def _forward(self, head: RequestHead, now: float) -> None:
        self.request_time = now
        self.client.forward(
            RequestHead(head.method, self.upstream_target, head.headers.copy(), b"1.1")
        )

    def _end(self) -> None:
        """This request's fetch is over: its waiters look again."""
        if self.leading:
            self.leading = False
            self.cache.land(self.key)
        if self.background:
            self.cache.end_revalidation(self.key)

    # --- answers from the store -------------------------------------------------

    def _serve(
        self,
        stored: StoredResponse,
        status: CacheStatus,
        now: float,
        wanted: tuple[int, int] | None = None,
    ) -> bool:
        """Answer from ``stored``; ``False`` when its body is gone."""
        if self.waited and status.hit:
            status = dataclasses.replace(status, collapsed=True)
        return answer_from_store(
            self.cache.store,
            self.key,
            self.request,
            stored,
            status,
            now,
            self.client.deliver,
            wanted,
        )

    def _serve_stale(self, stale: StoredResponse, now: float, fwd: int | None) -> bool:
        """Answer with ``stale`` because the origin failed (stale-if-error)."""
        ttl = time_to_live(stale, now, self.cache.settings)
        status = CacheStatus(
            fwd="stale", fwd_status=fwd, ttl=ttl, detail="stale-if-error"
        )
        if not self._serve(stale, status, now):
            return False
        self.cache.counters.stale_served += 1
        return True

    def _revalidate_in_background(self, decision: CacheDecision, now: float) -> None:
        """Start the one background revalidation of this URL, unless it runs."""
        if not self.cache.start_revalidation(self.key):
            return
        request = self.request
        as_get = RequestHead(b"GET", request.target, request.headers, request.version)
        head = revalidation_request(as_get, decision, method=b"GET")
        background = CacheExchange(
            self.cache,
            self.client,
            as_get,
            upstream_target=self.upstream_target,
            scheme=self.scheme,
            host=self.host,
            reactor=self.reactor,
            background=True,
        )
        background.decision = dataclasses.replace(decision, action=Action.REVALIDATE)
        background.request_time = now
        head.target = self.upstream_target
        self.client.fetch_in_background(head, background)

    # --- answers from upstream ----------------------------------------------------

    def _freshen(self, response: UpstreamResponse, now: float) -> None:
        """A 304 (or a 200 to HEAD): update the stored heads, answer from them."""
        _drop(response.body)
        cache, decision = self.cache, self.decision
        freshening = freshen(
            self.request,
            decision,
            response.head,
            self.request_time,
            now,
            cache.settings,
        )
        for old, new in freshening.updated:
            cache.store.update(self.key, old.variant, new)
        for old in freshening.removed:
            cache.store.remove_variant(self.key, old.variant)
        serve = freshening.serve
        if serve is None:
            # Nothing matched the 304: ask again, unconditionally.
            self.decision = CacheDecision(Action.FORWARD, decision.status)
            self._forward(forward_request(self.request), now)
            return
        cache.counters.revalidated_304 += 1
        self._end()
        if self.background or self.client.gone:
            return
        ttl = time_to_live(serve, now, cache.settings)
        status = decision.status.forwarded(response.head.status, stored=True, ttl=ttl)
        if not self._serve(serve, status, now):
            self.decision = CacheDecision(Action.FORWARD, CacheStatus(fwd="miss"))
            self._forward(forward_request(self.request), now)

    def _store_or_pass(self, response: UpstreamResponse, now: float) -> None:
        """Store the response if allowed, and pass it on to the client."""
        cache, request, head = self.cache, self.request, response.head
        verdict = storage_decision(
            request, head, self.request_time, now, cache.settings
        )
        stored = verdict.response
        writer = None
        if stored is not None:
            framing = response.framing
            expected = framing.length if framing.kind is BodyKind.LENGTH else None
            writer = cache.store.open_writer(self.key, stored, verdict.tags, expected)
        status = self.decision.status
        if writer is not None and stored is not None:
            ttl = time_to_live(stored, now, cache.settings)
            status = status.forwarded(head.status, stored=True, ttl=ttl)
            client_head = served_response(request, stored, now)
        else:
            status = status.forwarded(head.status)
            if verdict.refusal is not None and request.method == b"GET":
                status = dataclasses.replace(status, detail=verdict.refusal)
            client_head = head
            if self.stripped:
                client_head = not_modified(request, head, now) or head
        client_head.headers.add(b"Cache-Status", status.field_value())
        body = response.body
        fill = None
        if writer is not None and body is not None:
            fill = StoreFill(body, writer, self._filled)
        else:
            if writer is not None:
                commit_without_body(writer)
            self._end()
        if self.background or self.client.gone or client_head.status == 304:
            if fill is not None:
                fill.stopProducing()  # the store's part goes on alone
            else:
                _drop(body)
            if not (self.background or self.client.gone):
                self.client.deliver(client_head, NO_BODY, None)
            return
        self.client.deliver(client_head, response.framing, fill or body)

    def _filled(self, stored: bool) -> None:
        self._end()


def _drop(body: BodyStream | None) -> None:
    """Nobody wants ``body``."""
    if body is not None:
        body.stopProducing()
