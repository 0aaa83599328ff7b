"""
The policy of edgeproxy's shared HTTP cache (RFC 9111), as pure functions.

Nothing here stores bytes or reads a clock: the glue
(:mod:`edgeproxy.http.cache_exchange`) passes the request head, the stored
responses (:class:`~.stored_response.StoredResponse`, metadata only), the
upstream response head and the times.  One request goes like this:

1. :func:`~.decision.decide` with the variants stored under
   :func:`~.keys.primary_key` gives a :class:`~.decision.CacheDecision`:
   serve a stored response, serve it stale while one background revalidation
   runs, revalidate, forward, or refuse (504 for ``only-if-cached``).
   Freshness and age come from :mod:`.freshness`.
2. A served response's head comes from :func:`~.validation.served_response`
   (``Age``, and a 304 when the client's own validators match); a single
   byte range of it is cut as :mod:`.ranges` says.
3. A revalidation sends :func:`~.validation.revalidation_request`; its 304
   (or a 200 to a ``HEAD``) goes through :func:`~.freshening.freshen`; an
   origin failure may fall back on the stale response when
   :func:`~.decision.usable_after_error` says so.
4. A forwarded request sends :func:`~.validation.forward_request`; its
   response is stored when :func:`~.storability.storage_decision` allows; a
   response to an unsafe method invalidates
   :func:`~.invalidation.invalidated_keys`.
5. :class:`~.status.CacheStatus` gives the ``Cache-Status`` field (RFC 9211).

This is a shared cache: ``s-maxage``, ``proxy-revalidate`` and ``private``
apply.  206 responses are never stored (no range combining, RFC 9111 section
3.3); requests with ``Range`` bypass the cache unless a stored 200 can answer
them.  The settings a ``[cache:NAME]`` section gives are
:class:`~.settings.CacheSettings`.
"""
