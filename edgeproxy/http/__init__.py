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
- ``send_response(head, framing, body)`` to relay an upstream response; or
  ``send_head(head, framing, producer)``, ``send_body(data)``..., ``finish()``
  to write one piece by piece (through a body filter, say);
- ``switch_protocols(head_101, protocol)`` for an ``Upgrade`` request;
- ``abort()`` to drop the connection.

Once the client is gone (or the server ended the exchange: a broken body, a
timeout) these are silent no-ops, and a producer handed over is stopped.

:mod:`edgeproxy.http.client` -- ``HTTPClientProtocol(reactor, settings=None,
listener=None)`` on one upstream connection (connect it with
``connectProtocol``).  ``send_request(head, framing, body)`` returns a
``Deferred`` firing with an ``UpstreamResponse`` (``head``, ``framing``,
``body``) or failing with ``NothingReceived`` (nothing came back: retry on
another connection if the request went on a reused one and has no body),
``BadGateway`` or ``GatewayTimeout``; cancelling it drops the connection.  The
``listener`` (the connection pool) hears ``connection_released(connection,
reusable)`` once per request and ``connection_lost(connection)`` once.  After a
``101``: ``switch_protocols(protocol)``.

:mod:`edgeproxy.http.body` -- ``BodyStream``, the streaming seam between the
two: the reading protocol feeds it, one sink (``send_body``, ``finish``,
``abort``: a ``ServerExchange`` is one) consumes it, and as an ``IPushProducer``
it carries back-pressure from the sink's socket to the reading socket.  Every
buffer is bounded.

:mod:`edgeproxy.http.settings` -- ``ServerSettings`` and ``ClientSettings``,
the limits and timeouts, built from the configuration.

The glue, routing, filters and pool left out::

    def request_received(self, exchange):
        d = connection.send_request(exchange.request, exchange.framing, exchange.body)
        exchange.on_client_gone = d.cancel
        d.addCallback(
            lambda response: exchange.send_response(
                response.head, response.framing, response.body
            )
        )
        d.addErrback(lambda failure: exchange.send_local(error_response(failure)))

Framing fields (``Content-Length``, ``Transfer-Encoding``, ``Connection``) are
never copied across: both protocols re-derive them from the framing values
(:mod:`edgeproxy.core.framing`).  The server protocol answers ``Expect:
100-continue`` itself, when the request body is first read.

Internals: :mod:`~edgeproxy.http.message_reader` (limits around llhttp),
:mod:`~edgeproxy.http.transport` (flow control and hand-over, shared by both
protocols), :mod:`~edgeproxy.http.deadline` (per-connection timers),
:mod:`~edgeproxy.http.wire` (head serialization).
"""
