"""
The cache side of one request: lookup, serving, filling, coalescing, revalidating.

The policy is :mod:`edgeproxy.core.cache_policy`; the bytes live in a
:class:`~edgeproxy.cache.store.CacheStore`.  A :class:`CacheExchange` walks
one request of a cached route through them, on behalf of its
:class:`CacheClient` (the proxy's request, which sends heads upstream, runs the
response filters and answers the client):

- a fresh (or usably stale) stored response answers at once, its body read
  from the store only as fast as the client takes it (:class:`StoredBody`);
  ``HEAD`` is answered from a stored ``GET``, a single byte range from a
  stored 200;
- a stale one is revalidated; its 304 freshens the stored heads; an origin
  failure falls back on it within ``stale-if-error``; within
  ``stale-while-revalidate`` it answers at once and one background request
  revalidates it;
- a miss goes forward; a storable answer streams to the client and into the
  store from one upstream read (:class:`StoreFill`).  The client leaving does
  not stop the fill, and a store failure never breaks the client's answer;
- concurrent misses for one URL wait for the one request in flight (single
  flight), then look again; they go forward themselves when it was not
  stored, or after waiting for the upstream's first-byte timeout;
- a 2xx or 3xx answer to an unsafe method removes what it invalidates.

:class:`SharedCache` is what a ``[cache:NAME]`` is at run time, and what a
reload carries over when the section did not change.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urlsplit

from twisted.internet.interfaces import IDelayedCall, IProtocol, IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

from edgeproxy.cache.store import CacheReader, CacheStore, CacheWriter
from edgeproxy.core.addresses import AddressSet
from edgeproxy.core.cache_policy import (
    ORIGIN_ERROR_STATUSES,
    Action,
    CacheDecision,
    CacheSettings,
    CacheStatus,
    StoredResponse,
    decide,
    forward_request,
    freshen,
    invalidated_keys,
    not_modified,
    primary_key,
    revalidation_request,
    served_response,
    storage_decision,
    time_to_live,
    usable_after_error,
)
from edgeproxy.core.framing import (
    NO_BODY,
    BodyFraming,
    BodyKind,
    RequestFraming,
    fixed_length,
)
from edgeproxy.core.message import Headers, LocalResponse, RequestHead, ResponseHead
from edgeproxy.http.body import BodySink, BodyStream
from edgeproxy.http.client import UpstreamResponse
from edgeproxy.http.server_exchange import ServerExchange

log = Logger()

_COALESCED = frozenset({"uri-miss", "vary-miss", "stale"})
_SINGLE_RANGE = re.compile(rb"^bytes=(\d*)-(\d*)$")


@dataclasses.dataclass
class CacheCounters:
    """
    What a cache did, beyond the store's own hits and misses.

    :ivar stale_served: stale answers (stale-while-revalidate, stale-if-error).
    :ivar revalidated_304: revalidations the origin answered 304.
    :ivar revalidated_200: revalidations the origin answered with a new 200.
    :ivar coalesced_waits: requests that waited for another's fetch.
    """

    stale_served: int = 0
    revalidated_304: int = 0
    revalidated_200: int = 0
    coalesced_waits: int = 0


class SharedCache:
    """
    One ``[cache:NAME]`` at run time: store, policy, counters, requests in flight.

    :ivar purge_from: the clients that may send ``PURGE``.
    """

    def __init__(
        self,
        name: str,
        store: CacheStore,
        settings: CacheSettings,
        purge_from: AddressSet,
    ) -> None:
        self.name = name
        self.store = store
        self.settings = settings
        self.purge_from = purge_from
        self.counters = CacheCounters()
        self._flights: dict[bytes, list[Callable[[], None]]] = {}
        self._revalidating: set[bytes] = set()

    def stats(self) -> dict[str, int]:
        """The counters, as the status page shows them."""
        store = self.store.stats()
        return {
            "hits": store.hits,
            "misses": store.misses,
            "entries": store.entries,
            "stored_bytes": store.stored_bytes,
            "evictions": store.evictions,
            "max_size": self.store.max_size,
            **dataclasses.asdict(self.counters),
        }

    def purge_url(self, url: str) -> int:
        """Drop every variant stored for ``url`` (absolute); how many."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{url!r} is not an http:// or https:// URL")
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        key = primary_key(
            parts.scheme.encode("ascii"),
            parts.netloc.encode("latin-1"),
            target.encode("latin-1"),
        )
        return self.store.remove(key)

    # --- single flight, and one background revalidation per key --------------

    def join(self, key: bytes, waiter: Callable[[], None]) -> bool:
        """Wait for the request in flight for ``key``, if there is one."""
        waiters = self._flights.get(key)
        if waiters is None:
            return False
        waiters.append(waiter)
        self.counters.coalesced_waits += 1
        return True

    def leave(self, key: bytes, waiter: Callable[[], None]) -> None:
        """Stop waiting (the client left, or waited long enough)."""
        waiters = self._flights.get(key, [])
        if waiter in waiters:
            waiters.remove(waiter)

    def lead(self, key: bytes) -> bool:
        """A request goes forward for ``key``; ``False`` when one is already."""
        if key in self._flights:
            return False
        self._flights[key] = []
        return True

    def land(self, key: bytes) -> None:
        """The request in flight for ``key`` is over: its waiters look again."""
        for waiter in self._flights.pop(key, []):
            waiter()

    def start_revalidation(self, key: bytes) -> bool:
        """Whether a background revalidation of ``key`` may start (none running)."""
        if key in self._revalidating:
            return False
        self._revalidating.add(key)
        return True

    def end_revalidation(self, key: bytes) -> None:
        """The background revalidation of ``key`` is over."""
        self._revalidating.discard(key)


def purge_answer(
    cache: SharedCache | None,
    client_host: str,
    scheme: bytes,
    host: bytes,
    target: bytes,
) -> LocalResponse:
    """The answer to ``PURGE``: 405 without a cache, 403 from elsewhere, or 200."""
    if cache is None:
        answer = LocalResponse.text(405, "Method Not Allowed: this route has no cache")
        answer.headers.add(b"Allow", b"GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
        return answer
    if not cache.purge_from.contains(client_host):
        return LocalResponse.text(403, "Forbidden: PURGE is not allowed from here")
    purged = cache.store.remove(primary_key(scheme, host, target))
    body = json.dumps({"purged": purged}).encode("ascii") + b"\n"
    return LocalResponse(200, body, Headers([(b"Content-Type", b"application/json")]))


# --- bodies ---------------------------------------------------------------------


@implementer(IPushProducer)
class StoredBody:
    """A stored body (or a byte range of it) sent at the pace of its sink."""

    def __init__(self, reader: CacheReader, skip: int = 0, length: int = -1) -> None:
        self._reader: CacheReader | None = reader
        self._skip = skip
        self._left = reader.size - skip if length < 0 else length
        self._sink: BodySink | None = None
        self._paused = False
        self._pumping = False

    def start(self, sink: BodySink) -> None:
        """Send the body to ``sink``."""
        self._sink = sink
        self._pump()

    def pauseProducing(self) -> None:
        """The client's socket is full."""
        self._paused = True

    def resumeProducing(self) -> None:
        """The client's socket drained."""
        self._paused = False
        self._pump()

    def stopProducing(self) -> None:
        """The client is gone."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()

    def _pump(self) -> None:
        # A write that fills the socket pauses us at once (the transport calls
        # pauseProducing inside write), which ends this loop.
        if self._pumping or self._sink is None:
            return
        self._pumping = True
        try:
            while not self._paused and self._reader is not None:
                self._send_next(self._sink, self._reader)
        finally:
            self._pumping = False

    def _send_next(self, sink: BodySink, reader: CacheReader) -> None:
        try:
            piece = reader.read() if self._left > 0 else b""
        except OSError as error:
            self.stopProducing()
            sink.abort(error)
            return
        if not piece:
            self.stopProducing()
            sink.finish()
            return
        if self._skip:
            dropped = min(self._skip, len(piece))
            self._skip -= dropped
            piece = piece[dropped:]
        piece = piece[: self._left]
        self._left -= len(piece)
        if piece:
            sink.send_body(piece)


@implementer(IPushProducer)
class StoreFill:
    """
    One upstream body going both to the client and into the store.

    It is the upstream body's sink and the client's producer: the client's
    back-pressure pauses the upstream while the client is there; once it is
    gone (:meth:`stopProducing`) the body goes on into the store alone, and
    is dropped only when the store gives up too.  ``done(stored)`` is called
    once, when the store's part is over.
    """

    def __init__(
        self, body: BodyStream, writer: CacheWriter, done: Callable[[bool], None]
    ) -> None:
        self._body = body
        self._writer: CacheWriter | None = writer
        self._done: Callable[[bool], None] | None = done
        self._sink: BodySink | None = None
        self._started = False
        self._detached = False
        self._paused = False
        self._ended = False

    def start(self, sink: BodySink) -> None:
        """Send the body to the client ``sink`` too."""
        if not self._detached:
            self._sink = sink
            self._begin()

    def pauseProducing(self) -> None:
        """The client's socket is full: pause the upstream."""
        if not self._detached:
            self._paused = True
            self._body.pauseProducing()

    def resumeProducing(self) -> None:
        """The client's socket drained."""
        if self._paused:
            self._paused = False
            self._body.resumeProducing()

    def stopProducing(self) -> None:
        """The client is gone (or never comes): fill the store alone."""
        self._sink = None
        self._detached = True
        if self._writer is None:
            if not self._ended:
                self._body.stopProducing()
            return
        self._begin()
        self.resumeProducing()

    # --- the upstream body's sink ----------------------------------------------

    def send_body(self, data: bytes) -> None:
        """One piece: into the store, then to the client."""
        writer = self._writer
        if writer is not None:
            try:
                written = writer.write(data)
            except Exception:
                log.failure("cache: storing a response body failed")
                written = False
            if not written:
                self._give_up(writer)
        if self._sink is not None:
            self._sink.send_body(data)
        elif self._writer is None:
            self._body.stopProducing()

    def finish(self) -> None:
        """The whole body came: commit, then end the client's response."""
        self._ended = True
        writer, self._writer = self._writer, None
        stored = False
        if writer is not None:
            try:
                stored = writer.commit()
            except Exception:
                log.failure("cache: committing a response body failed")
        if self._sink is not None:
            self._sink.finish()
        self._report(stored)

    def abort(self, reason: Exception | None = None) -> None:
        """The upstream body broke: drop the entry and the client's response."""
        self._ended = True
        if self._writer is not None:
            self._give_up(self._writer)
        if self._sink is not None:
            self._sink.abort(reason)

    def _begin(self) -> None:
        if not self._started:
            self._started = True
            self._body.start(self)

    def _give_up(self, writer: CacheWriter) -> None:
        self._writer = None
        try:
            writer.abandon()
        except Exception:
            log.failure("cache: abandoning a response body failed")
        self._report(False)

    def _report(self, stored: bool) -> None:
        done, self._done = self._done, None
        if done is not None:
            done(stored)


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


class _Nowhere:
    """The connection of a background request's exchange: nothing goes anywhere."""

    def write(self, data: bytes) -> None:
        """Drop ``data``."""

    def http_date(self) -> bytes:
        """No date needed."""
        return b""

    def may_persist(self) -> bool:
        """Nothing persists."""
        return False

    def response_started(
        self, exchange: ServerExchange, producer: IPushProducer | None
    ) -> None:
        """Nothing to pace."""

    def response_finished(self, exchange: ServerExchange, keep_alive: bool) -> None:
        """Nothing to go on with."""

    def response_aborted(self, exchange: ServerExchange) -> None:
        """Nothing to drop."""

    def request_body_paused(self, paused: bool) -> None:
        """There is no request body."""

    def protocols_switched(self, protocol: IProtocol) -> None:
        """Never asked for."""


def detached_exchange(
    request: RequestHead, client_host: str, client_port: int, now: float
) -> ServerExchange:
    """An exchange with no client, for a request the cache makes on its own."""
    framing = RequestFraming(NO_BODY, keep_alive=False, expects_continue=False)
    exchange = ServerExchange(
        _Nowhere(),
        request,
        framing,
        client_host=client_host,
        client_port=client_port,
        received_at=now,
        upgrade=False,
    )
    exchange.request_complete = True
    return exchange


def _single_range(request: RequestHead) -> tuple[int, int] | None:
    """``(first, last)`` of a one-range ``bytes=`` request (``last`` -1: open)."""
    values = request.headers.get_all(b"range")
    if len(values) != 1 or b"if-range" in request.headers:
        return None
    match = _SINGLE_RANGE.match(values[0].strip())
    if match is None or match.group(1) + match.group(2) == b"":
        return None
    first = int(match.group(1)) if match.group(1) else -1
    last = int(match.group(2)) if match.group(2) else -1
    if first >= 0 and 0 <= last < first:
        return None
    return first, last


def _without_range(request: RequestHead) -> RequestHead:
    """A copy of ``request`` without its ``Range``."""
    pairs = [pair for pair in request.headers.pairs if pair[0].lower() != b"range"]
    return RequestHead(request.method, request.target, Headers(pairs), request.version)


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
        wanted = _single_range(request) if request.method == b"GET" else None
        if wanted is not None:
            decision = decide(_without_range(request), variants, now, cache.settings)
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
        request = self.request
        head = served_response(
            _without_range(request) if wanted else request, stored, now
        )
        if self.waited and status.hit:
            status = dataclasses.replace(status, collapsed=True)
        head.headers.add(b"Cache-Status", status.field_value())
        if head.status == 304:
            self.client.deliver(head, NO_BODY, None)
            return True
        reader = self.cache.store.open_reader(self.key, stored.variant)
        if reader is None:
            return False
        size = reader.size
        if wanted is not None and stored.status == 200:
            return self._serve_range(head, reader, wanted)
        if request.method == b"HEAD" or not size:
            reader.close()
            self.client.deliver(head, fixed_length(size), None)
        else:
            self.client.deliver(head, fixed_length(size), StoredBody(reader))
        return True

    def _serve_range(
        self, head: ResponseHead, reader: CacheReader, wanted: tuple[int, int]
    ) -> bool:
        """Answer a byte range of a stored 200 (RFC 9110 section 14)."""
        size = reader.size
        first, last = wanted
        if first < 0:
            first, last = max(0, size - last), size - 1
        elif last < 0 or last >= size:
            last = size - 1
        if first >= size or last < first:
            reader.close()
            refusal = ResponseHead(416, b"Range Not Satisfiable")
            refusal.headers.add(b"Content-Range", b"bytes */%d" % size)
            refusal.headers.pairs += [
                pair
                for pair in head.headers.pairs
                if pair[0].lower() == b"cache-status"
            ]
            self.client.deliver(refusal, fixed_length(0), None)
            return True
        head.status, head.reason = 206, b"Partial Content"
        head.headers.set(b"Content-Range", b"bytes %d-%d/%d" % (first, last, size))
        body = StoredBody(reader, skip=first, length=last - first + 1)
        self.client.deliver(head, fixed_length(last - first + 1), body)
        return True

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
                _commit(writer)
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


def _commit(writer: CacheWriter) -> None:
    """Store an entry without a body."""
    try:
        writer.commit()
    except Exception:
        log.failure("cache: committing an empty response failed")


def _drop(body: BodyStream | None) -> None:
    """Nobody wants ``body``."""
    if body is not None:
        body.stopProducing()
