"""
The access log: one line per request (and per refused connection attempt).

:mod:`~edgeproxy.access_log.record` holds what a line says,
:mod:`~edgeproxy.access_log.formats` how it is written (``combined`` or
``json``), and :mod:`~edgeproxy.access_log.sink` where it goes: a
``twisted.logger`` publisher of its own, so that access lines never mix with
the process's log, and a file observer on it.
"""
