"""
CPU use over one load run: the proxy's, the two cores', and what
processes not started by this benchmark took meanwhile (other people's work on
a shared machine, which makes a run noisy).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

from edgebench.machine import CoreTimes, CpuPlan, core_times, cpu_seconds


@dataclass(frozen=True)
class Reading:
    """CPU use during one run, each in % of one core."""

    seconds: float
    proxy_cpu_seconds: float
    proxy_pct: float
    proxy_core_busy_pct: float
    load_core_busy_pct: float
    other_pct: float


@dataclass(frozen=True)
class _Sample:
    clock: float
    proxy: float
    ours: float
    cores: dict[int, CoreTimes]


class Meter:
    """Counters taken at the start of a run, read against the end by ``reading``."""

    def __init__(self, plan: CpuPlan, proxy_pids: Sequence[int]) -> None:
        self.plan = plan
        self.proxy_pids = list(proxy_pids)
        self._start = self._sample()

    def _sample(self) -> _Sample:
        return _Sample(
            clock=time.perf_counter(),
            proxy=cpu_seconds(self.proxy_pids),
            # This process's tree: every server and client the benchmark started.
            ours=cpu_seconds([os.getpid()]),
            cores=core_times(),
        )

    def reading(self) -> Reading:
        """CPU use since this meter was made."""
        start, end = self._start, self._sample()
        wall = max(end.clock - start.clock, 1e-6)
        cores = {self.plan.proxy, self.plan.load}
        task = sum(end.cores[c].task - start.cores[c].task for c in cores)

        def busy(cpu: int) -> float:
            total = end.cores[cpu].total - start.cores[cpu].total
            used = end.cores[cpu].busy - start.cores[cpu].busy
            return 100.0 * used / total if total > 0 else 0.0

        return Reading(
            seconds=wall,
            proxy_cpu_seconds=end.proxy - start.proxy,
            proxy_pct=100.0 * (end.proxy - start.proxy) / wall,
            proxy_core_busy_pct=busy(self.plan.proxy),
            load_core_busy_pct=busy(self.plan.load),
            other_pct=max(0.0, 100.0 * (task - (end.ours - start.ours)) / wall),
        )


def wait_until_quiet(plan: CpuPlan, threshold_pct: float, max_wait: float) -> float:
    """Wait (at most ``max_wait`` s) until others use < ``threshold_pct`` of a core.

    Returns the share they used in the last half second.
    """
    waited = 0.0
    while True:
        meter = Meter(plan, [])
        time.sleep(0.5)
        other = meter.reading().other_pct
        if other < threshold_pct or waited >= max_wait:
            return other
        waited += 0.5
