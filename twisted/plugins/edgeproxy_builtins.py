"""
edgeproxy's built-in plugins, registered exactly as a third party's would be.

Each plugin object imported here is found by ``twisted.plugin``; ``twistd
edgeproxy --list-plugins`` shows them.
"""

from edgeproxy.balancing.hash import hash_factory
from edgeproxy.balancing.least_conn import least_conn_factory
from edgeproxy.balancing.least_time import least_time_factory
from edgeproxy.balancing.random_two import random_two_factory
from edgeproxy.balancing.round_robin import round_robin_factory
from edgeproxy.balancing.sticky import sticky_factory
from edgeproxy.balancing.weighted import weighted_factory
from edgeproxy.filters.api_key import api_key_factory
from edgeproxy.filters.basic_auth import basic_auth_factory
from edgeproxy.filters.circuit_breaker import circuit_breaker_factory
from edgeproxy.filters.cors import cors_factory
from edgeproxy.filters.headers import headers_factory
from edgeproxy.filters.ip_acl import ip_acl_factory
from edgeproxy.filters.jwt import jwt_factory
from edgeproxy.filters.rate_limit import rate_limit_factory
from edgeproxy.filters.request_id import request_id_factory
from edgeproxy.health.http_get import http_get_check_factory
from edgeproxy.health.tcp import tcp_check_factory

__all__ = [
    "api_key_factory",
    "basic_auth_factory",
    "circuit_breaker_factory",
    "cors_factory",
    "hash_factory",
    "headers_factory",
    "http_get_check_factory",
    "ip_acl_factory",
    "jwt_factory",
    "least_conn_factory",
    "least_time_factory",
    "random_two_factory",
    "rate_limit_factory",
    "request_id_factory",
    "round_robin_factory",
    "sticky_factory",
    "tcp_check_factory",
    "weighted_factory",
]
