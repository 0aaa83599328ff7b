"""
The upstream model: pools of servers with weights, admin state and health.

:mod:`~edgeproxy.upstream.server_list` parses the ``servers`` key,
:mod:`~edgeproxy.upstream.server` holds one server's state machine and
:mod:`~edgeproxy.upstream.pool` chooses among servers with a balancing
strategy.  All of it is sans-IO: time comes in as ``now``.
"""

from __future__ import annotations

from edgeproxy.upstream.pool import UpstreamPool
from edgeproxy.upstream.server import (
    AdminState,
    HealthPolicy,
    ServerStats,
    ServerTransition,
    UpstreamServer,
)
from edgeproxy.upstream.server_list import ServerSpec, parse_servers

__all__ = [
    "AdminState",
    "HealthPolicy",
    "ServerSpec",
    "ServerStats",
    "ServerTransition",
    "UpstreamPool",
    "UpstreamServer",
    "parse_servers",
]
