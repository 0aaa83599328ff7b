"""
Writing through Twisted's plain TCP transports.

Twisted's transports only buffer a write and send it on the reactor's next
turn, after watching the socket for writability (two ``epoll_ctl`` calls and
a dozen Python calls per write).  When nothing is waiting in the transport's
buffer, :func:`write_through` sends the bytes to the socket at once and
leaves only what the socket does not take to the transport, in order.  Both
HTTP protocols (:mod:`edgeproxy.http.transport`) and the tunnel
(:mod:`edgeproxy.tunnel`) write this way.

It reads the transport's queue state, which is Twisted's own attributes:
:func:`plain_tcp_transport` checks once per transport type that they are
there, and every other transport (TLS, UNIX, another Twisted, the tests'
fakes) is written to as usual.
"""

from __future__ import annotations

from typing import Any, cast

from twisted.internet import tcp

# The transports written through, and the state of theirs that says whether
# anything is queued (Twisted's FileDescriptor and tcp.Connection): where one
# is missing (another Twisted), every write goes through the transport.  It is
# checked on the first transport of each type.
_PLAIN_TCP = (tcp.Server, tcp.Client)
_WRITE_STATE = (
    "TLS",
    "_aborting",
    "_tempDataLen",
    "_writeDisconnected",
    "bufferSize",
    "connected",
    "dataBuffer",
    "disconnecting",
    "socket",
)
_writable_types: dict[type, bool] = {}


def plain_tcp_transport(transport: object) -> Any:
    """
    ``transport`` if it is a plain TCP connection, which can be written through.

    :return: the transport, typed loosely (its queue state is Twisted's
        private attributes), or ``None`` for TLS, UNIX and test transports.
    """
    kind = type(transport)
    writable = _writable_types.get(kind)
    if writable is None:
        writable = _writable_types[kind] = kind in _PLAIN_TCP and all(
            hasattr(transport, name) for name in _WRITE_STATE
        )
    return transport if writable and not cast(Any, transport).TLS else None


def write_through(direct: Any, data: bytes) -> bytes:
    """
    Send what the socket of ``direct`` takes now, if nothing is queued before.

    :param direct: a transport from :func:`plain_tcp_transport`.
    :return: the bytes left for ``direct.write`` (all of them when something
        is queued or the connection is closing), in order after what was sent.
    """
    if not direct.connected or (
        direct._tempDataLen
        or direct.dataBuffer
        or direct.disconnecting
        or direct._aborting
        or direct._writeDisconnected
        or direct.TLS
    ):
        return data
    try:
        sent = direct.socket.send(data)
    except OSError:
        # Full (EAGAIN) or broken: the transport meets the error on its own
        # write and reports it as usual.
        return data
    return data[sent:] if sent else data
