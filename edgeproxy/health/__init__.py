"""
The built-in active health checks, one module each.

- ``tcp``: up when a TCP connection can be made (no options);
- ``http_get``: up when an HTTP request answers with an expected status and,
  if asked, body text (options ``path``, ``status``, ``body``, ``host``,
  ``method``).

The factories are registered as plugins in ``twisted/plugins/``;
:data:`BUILTIN_HEALTH_CHECK_FACTORIES` lists them all.  The checks are run on
a timer by :class:`edgeproxy.upstream.monitor.HealthMonitor`.
"""

from __future__ import annotations

from edgeproxy.health.http_get import HttpGetCheckFactory, http_get_check_factory
from edgeproxy.health.tcp import TcpCheckFactory, tcp_check_factory

BUILTIN_HEALTH_CHECK_FACTORIES: tuple[TcpCheckFactory | HttpGetCheckFactory, ...] = (
    tcp_check_factory,
    http_get_check_factory,
)
"""Every built-in health-check factory, in the order of the list above."""
