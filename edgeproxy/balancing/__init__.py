"""
The built-in balancing strategies, one module each.

- ``round_robin``: each server in turn, ignoring weights;
- ``weighted``: smooth weighted round robin (nginx's);
- ``least_conn``: fewest requests in flight;
- ``random_two``: power of two random choices (option ``seed``);
- ``hash``: consistent hashing (option ``key``);
- ``least_time``: lowest peak-EWMA response time (option ``decay``);
- ``sticky``: cookie pinning (option ``cookie``).

The factories are registered as plugins in ``twisted/plugins/``;
:data:`BUILTIN_STRATEGY_FACTORIES` lists them all.
"""

from __future__ import annotations

from edgeproxy.balancing.hash import hash_factory
from edgeproxy.balancing.least_conn import least_conn_factory
from edgeproxy.balancing.least_time import least_time_factory
from edgeproxy.balancing.plugin import StrategyFactory
from edgeproxy.balancing.random_two import random_two_factory
from edgeproxy.balancing.round_robin import round_robin_factory
from edgeproxy.balancing.sticky import sticky_factory
from edgeproxy.balancing.weighted import weighted_factory

BUILTIN_STRATEGY_FACTORIES: tuple[StrategyFactory, ...] = (
    round_robin_factory,
    weighted_factory,
    least_conn_factory,
    random_two_factory,
    hash_factory,
    least_time_factory,
    sticky_factory,
)
"""Every built-in strategy factory, in the order of the list above."""
