"""
The HTTP/1.1 data path: lean Twisted protocols around httptools (llhttp).

The pieces, and the seams the exchange glue joins
-------------------------------------------------

:mod:`edgeproxy.http.server` -- ``HTTPServerProtocol(reactor, handler,
settings=None)``, or ``HTTPServerFactory`` with the same arguments for a
listener.  It parses, validates and limits requests, and calls
``handler.request_received(exchange)`` (a :class:`~.server.RequestHandler`) for
each one, in order, one at a time: the next is handed over only when the
previous response is complete.

:mod:`edgeproxy.http.server_exchange` -- the ``ServerExchange`` the handler
gets: ``request`` (a ``RequestHead``), ``framing`` (its body's ``BodyFraming``),
``body`` (a ``BodyStream``, or ``None``), ``client_host``/``client_port``,
``received_at``, ``upgrade``, ``request_complete``, and an ``on_client_gone``
slot (called if the client leaves before the response is complete).  It answers
exactly once, with one of:

- ``send_local(LocalResponse)`` (``Content-Length``, ``Date``, ``Connection``
  added);
- ``send_response(head, framing, body)`` to relay an upstream response (with
  ``unframed=`` when the head's fields were stripped of framing fields in
  the header-policy pass already: see below); or ``send_head(head, framing,
  producer)``, ``send_body(data)``..., ``finish()`` to write one piece by
  piece (through a body filter, say);
- ``switch_protocols(head_101, protocol)`` for an ``Upgrade`` request;
- ``abort()`` to drop the connection.

Once the client is gone (or the server ended the exchange: a broken body, a
timeout) these are silent no-ops, and a producer handed over is stopped.

:mod:`edgeproxy.http.client` -- ``HTTPClientProtocol(reactor, settings=None,
listener=None)`` on one upstream connection (connect it with
``connectProtocol``, or ``connectTCP`` and its ``on_connected`` slot).
``send(head, framing, body, receiver, framed=False)`` sends a request; the
``receiver`` (a :class:`~.client.ResponseReceiver`) hears exactly once:
``response_received(UpstreamResponse)`` (``head``, ``framing``, ``body``) or
``request_failed(error)`` with ``NothingReceived`` (nothing came back: retry
on another connection if the request went on a reused one and has no body),
``BadGateway`` or ``GatewayTimeout``.  ``cancel_request()`` gives the request
up (the receiver hears nothing more) and drops the connection.
``send_request(head, framing, body)`` is the same with a ``Deferred`` as the
receiver (cancelling it cancels the request).  ``framed=True`` says the head's
framing fields are written already (``upstream_request_headers(...,
body=framing)``).  The ``listener`` (the connection pool) hears
``connection_released(connection, reusable)`` once per request and
``connection_lost(connection)`` once.  After a ``101``:
``switch_protocols(protocol)``.

:mod:`edgeproxy.http.connection_pool` -- ``ConnectionPool(reactor)``, the
keep-alive connections per (server, TLS, settings).  ``take_idle(server,
settings, on_release)`` hands over an idle connection at once, or ``None``;
only then ``acquire(server, settings, on_release, fresh=False)`` returns a
``Deferred`` firing with ``(connection, reused)`` (a new connection, or an
idle one).  ``on_release(kept)`` is called once when the request on it is
over.  Idle connections expire by one sweep timer, not a timer each.

:mod:`edgeproxy.http.body` -- ``BodyStream``, the streaming seam between the
two: the reading protocol feeds it, one sink (``send_body``, ``finish``,
``abort``: a ``ServerExchange`` is one) consumes it, and as an ``IPushProducer``
it carries back-pressure from the sink's socket to the reading socket.  Every
buffer is bounded.

:mod:`edgeproxy.http.settings` -- ``ServerSettings`` and ``ClientSettings``,
the limits and timeouts, built from the configuration.

The glue, routing, filters and header policy left out (the request is its
own receiver, as :class:`~.proxy.ProxiedRequest` is)::

    class Relay:
        def __init__(self, pool, exchange):
            self.exchange = exchange
            connection = pool.take_idle(server, settings, self.released)
            # (no idle connection: pool.acquire(...) and send when it fires)
            exchange.on_client_gone = connection.cancel_request
            connection.send(exchange.request, exchange.framing, exchange.body, self)

        def response_received(self, response):
            self.exchange.send_response(response.head, response.framing, response.body)

        def request_failed(self, error):
            self.exchange.send_local(error_response(error))

Framing fields (``Content-Length``, ``Transfer-Encoding``, ``Connection``) are
never copied across: both protocols re-derive them from the framing values
(:mod:`edgeproxy.core.framing`, :mod:`edgeproxy.core.response_framing`).  On
the proxy's usual path that happens in the header-policy pass itself
(:mod:`edgeproxy.core.request_fields`, :mod:`edgeproxy.core.response_fields`):
the request with ``upstream_request_headers(..., body=framing)`` and ``send(...,
framed=True)``, the response with ``client_response_fields`` and
``send_response(..., unframed=...)``, so that no head is scanned twice.  The
server protocol answers ``Expect: 100-continue`` itself, when the request
body is first read.

Internals: :mod:`~edgeproxy.http.message_reader` (limits around llhttp),
:mod:`~edgeproxy.http.transport` (flow control and hand-over, shared by both
protocols), :mod:`~edgeproxy.http.deadline` (per-connection timers),
:mod:`~edgeproxy.http.wire` (head serialization).
"""
