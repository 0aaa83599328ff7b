"""
One benchmark session: start the stack, check every path, run the scenarios
with the targets alternating run by run, measure memory, stop everything.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from edgebench.drivers import Result, run_iperf, run_websocket, run_wrk
from edgebench.hits import misses_between, origin_requests, warm_cache
from edgebench.machine import CpuPlan
from edgebench.meter import Meter, wait_until_quiet
from edgebench.preflight import preflight
from edgebench.processes import ProcessGroup, log
from edgebench.resources import measure_resources
from edgebench.scenarios import BY_KEY, MEMORY_PROXIES, RESOURCES, Scenario
from edgebench.stack import Stack, Target

WEBSOCKET_MESSAGE = 128
RUN_FAILURES = (OSError, RuntimeError, ValueError, KeyError, subprocess.SubprocessError)
"""What a failed run raises (a tool that died, timed out or said something
unexpected): the run is recorded as failed and the session goes on."""


@dataclass(frozen=True)
class Plan:
    """What to run and for how long."""

    scenarios: tuple[str, ...]
    proxies: tuple[str, ...]
    reps: int
    seconds: int
    warmup: int
    quiet_pct: float
    quiet_wait: float
    idle_connections: int
    upload_bytes: int


@dataclass
class Outcome:
    """What a session measured, and what it could not run and why."""

    runs: list[dict[str, Any]] = field(default_factory=list)
    resources: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def drive(
    scenario: Scenario,
    target: Target,
    cpu: int,
    seconds: int,
    headers: Sequence[str] = (),
) -> Result:
    """One load run of ``scenario`` against ``target`` from core ``cpu``."""
    if scenario.kind == "http":
        return run_wrk(
            cpu, target.http_port, scenario.path, scenario.connections, seconds,
            headers=headers,
        )  # fmt: skip
    if scenario.kind == "connrate":
        assert target.tcp_http_port is not None
        return run_wrk(
            cpu, target.tcp_http_port, scenario.path, scenario.connections, seconds,
            close=True,
        )  # fmt: skip
    if scenario.kind == "stream":
        assert target.tcp_stream_port is not None
        return run_iperf(cpu, target.tcp_stream_port, seconds)
    return run_websocket(
        cpu, target.websocket_port, scenario.path, scenario.connections, seconds,
        WEBSOCKET_MESSAGE,
    )  # fmt: skip


def measure(
    scenario: Scenario,
    target: Target,
    plan: CpuPlan,
    seconds: int,
    headers: Sequence[str] = (),
) -> dict[str, Any]:
    """One run, with the target's CPU time and the cores' load around it."""
    meter = Meter(plan, target.pids)
    result = drive(scenario, target, plan.load, seconds, headers)
    reading = meter.reading()
    per_op = None
    if target.pids and result.requests:
        per_op = reading.proxy_cpu_seconds * 1e6 / result.requests
    return {
        "value": result.value,
        "requests": result.requests,
        "mbytes_per_s": result.mbytes_per_s,
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "errors": result.errors,
        "detail": result.detail,
        "seconds": reading.seconds,
        "proxy_pct": reading.proxy_pct if target.pids else None,
        "cpu_us_per_op": per_op,
        "load_core_pct": reading.load_core_busy_pct,
        "proxy_core_pct": reading.proxy_core_busy_pct,
        "other_pct": reading.other_pct,
    }


def run_session(
    plan: Plan, cpus: CpuPlan, stack: Stack, processes: ProcessGroup
) -> Outcome:
    """Run ``plan``: the load runs, the memory results, notes on what was skipped."""
    loads = [BY_KEY[key] for key in plan.scenarios if key in BY_KEY]
    origins = stack.start_origins(websocket=any(s.kind == "websocket" for s in loads))
    outcome = Outcome()
    if loads:
        targets = [origins.direct()]
        # Only the proxies some chosen scenario runs against are started.
        for name in plan.proxies:
            if not any(name in scenario.targets for scenario in loads):
                continue
            missing = stack.missing(name)
            if missing is not None:
                outcome.notes.append(f"{name} skipped: {missing}")
                log(outcome.notes[-1])
                continue
            try:
                targets.append(stack.start_target(name))
            except RuntimeError as error:
                log(f"{name} left out: it did not start: {error}")
        targets = preflight(targets, loads, stack.bodies, stack.credentials)
        for rep in range(plan.reps):
            for scenario in loads:
                taking_part = [t for t in targets if t.name in scenario.targets]
                # Rotate the order each repetition: no target always goes first.
                shift = rep % max(len(taking_part), 1)
                for target in taking_part[shift:] + taking_part[:shift]:
                    outcome.runs.append(
                        _one_run(plan, cpus, stack, scenario, target, rep)
                    )
    if RESOURCES in plan.scenarios:
        for name in plan.proxies:
            if name not in MEMORY_PROXIES:
                continue
            found = _memory(plan, cpus, stack, processes, name)
            if found is not None:
                outcome.resources.append(found)
    return outcome


def _memory(
    plan: Plan, cpus: CpuPlan, stack: Stack, processes: ProcessGroup, name: str
) -> dict[str, Any] | None:
    try:
        fresh = stack.start_target(name, instance="fresh")
    except RuntimeError as error:
        log(f"{RESOURCES} {name}: it did not start: {error}")
        return None
    try:
        result = measure_resources(
            cpus.load, fresh, plan.idle_connections, plan.upload_bytes
        )
    except RUN_FAILURES as error:
        log(f"{RESOURCES} {name}: FAILED {error}")
        return None
    finally:
        for started in list(processes.started):
            if started.pid in fresh.pids:
                processes.stop(started)
    log(
        f"{RESOURCES} {name}: rest {result.rest_mb:.1f} MB, "
        f"{result.idle_open} idle {result.idle_mb:.1f} MB, "
        f"upload peak {result.upload_peak_mb:.1f} MB"
    )
    return result.as_dict()


def _one_run(
    plan: Plan,
    cpus: CpuPlan,
    stack: Stack,
    scenario: Scenario,
    target: Target,
    rep: int,
) -> dict[str, Any]:
    record: dict[str, Any] = {"rep": rep, "scenario": scenario.key}
    record["target"] = target.name
    headers = []
    if scenario.bearer_token and stack.credentials is not None:
        headers.append(stack.credentials.header)
    # In a cache scenario every answer of a cache must be a hit: the origin
    # may serve no request while a cache is measured.
    mark = target.hit_mark if scenario.cached else None
    if plan.quiet_wait > 0:
        other = wait_until_quiet(cpus, plan.quiet_pct, plan.quiet_wait)
        record["other_pct_before"] = other
    try:
        if mark is not None:
            record["hit"] = warm_cache(target.http_port, scenario.path, mark)
        if rep == 0 and plan.warmup > 0 and scenario.kind != "stream":
            drive(scenario, target, cpus.load, plan.warmup, headers)
        before = origin_requests(stack.origin_port) if mark is not None else 0
        record.update(measure(scenario, target, cpus, plan.seconds, headers))
        if mark is not None:
            misses = misses_between(before, origin_requests(stack.origin_port))
            record["origin_requests"] = misses
            if misses:
                raise RuntimeError(
                    f"the origin served {misses} requests during the run: "
                    "not every answer was a cache hit"
                )
    except RUN_FAILURES as error:
        record.update({"value": None, "failure": str(error)})
        log(f"rep {rep} {scenario.key} {target.name}: FAILED {error}")
        return record
    log(
        f"rep {rep} {scenario.key:15} {target.name:19} {record['value']:10.1f} "
        f"{scenario.unit:7} CPU {record['proxy_pct'] or 0:5.0f}%  "
        f"other {record['other_pct']:4.0f}%  errors {record['errors']}"
    )
    return record
