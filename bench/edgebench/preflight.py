"""
Before any run, each target must prove it does what its scenarios measure:
answer every path with the origin's exact body; and a gateway target must
refuse a request without the bench's token (401: the jwt filter ran), send the
rate limiter's fields with the token (rate_limit ran) and, with the Redis
store, have written its counters to its redis-server.  A target that fails is
left out, loudly.
"""

from __future__ import annotations

from collections.abc import Sequence

from edgebench.gateway import Credentials, redis_key_count
from edgebench.probe import fetch
from edgebench.processes import log
from edgebench.scenarios import Scenario
from edgebench.stack import Target

LIMITER_FIELD = "RateLimit-Policy"
"""Sent by rate_limit on every request it saw (its ``headers`` default)."""


def preflight(
    targets: Sequence[Target],
    scenarios: Sequence[Scenario],
    bodies: dict[str, bytes],
    credentials: Credentials | None,
) -> list[Target]:
    """The targets that pass every check of ``scenarios``; the others are logged."""
    working = []
    for target in targets:
        try:
            for scenario in scenarios:
                if target.name in scenario.targets:
                    check_target(target, scenario, bodies, credentials)
        except (OSError, RuntimeError) as error:
            log(f"preflight: {target.name} left out: {error}")
            continue
        working.append(target)
    return working


def check_target(
    target: Target,
    scenario: Scenario,
    bodies: dict[str, bytes],
    credentials: Credentials | None,
) -> None:
    """Raise RuntimeError unless ``target`` serves ``scenario`` as it should."""
    if scenario.kind == "connrate":
        port = target.tcp_http_port
    elif scenario.kind == "http":
        port = target.http_port
    else:
        return
    if port is None or scenario.path not in bodies:
        return
    headers = {}
    if scenario.bearer_token and credentials is not None:
        headers["Authorization"] = f"Bearer {credentials.token}"
    answer = fetch(port, scenario.path, headers)
    where = f"{target.name} {scenario.path}"
    if answer.status != 200 or answer.body != bodies[scenario.path]:
        raise RuntimeError(
            f"{where}: status {answer.status}, {len(answer.body)} bytes, "
            "not the origin's body"
        )
    if target.token_required:
        if not answer.field(LIMITER_FIELD):
            raise RuntimeError(f"{where}: no {LIMITER_FIELD}: rate_limit did not run")
        refused = fetch(port, scenario.path)
        if refused.status != 401:
            raise RuntimeError(
                f"{where}: status {refused.status} without a token, not 401: "
                "the jwt filter did not run"
            )
    if target.redis_port is not None and redis_key_count(target.redis_port) < 1:
        raise RuntimeError(f"{where}: no key in redis-server: the store is unused")
