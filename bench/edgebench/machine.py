"""
What the machine says about its cores, processes and memory, read from /proc.

CPU time is counted per process tree (a process and all its descendants, plus
what its reaped children used), so that nginx's workers count for nginx and
every wrk run counts for the harness that started it.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Iterable
from dataclasses import dataclass

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuPlan:
    """Which core runs the proxy under test and which runs everything else."""

    proxy: int
    load: int

    @property
    def shared(self) -> bool:
        """True when there is one core only: proxy and load compete for it."""
        return self.proxy == self.load


def cpu_plan(proxy: int | None = None, load: int | None = None) -> CpuPlan:
    """The cores to use: the first two this process may run on, unless given."""
    allowed = sorted(os.sched_getaffinity(0))
    chosen_proxy = allowed[0] if proxy is None else proxy
    others = [cpu for cpu in allowed if cpu != chosen_proxy]
    chosen_load = (others[0] if others else chosen_proxy) if load is None else load
    return CpuPlan(proxy=chosen_proxy, load=chosen_load)


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            text = stat.read()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split after the last ")".
    return text[text.rindex(")") + 2 :].split()


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def process_tree(roots: Iterable[int]) -> list[int]:
    """The PIDs of ``roots`` and of all their live descendants."""
    children = _children()
    found: list[int] = []
    pending = list(roots)
    while pending:
        pid = pending.pop()
        if pid not in found:
            found.append(pid)
            pending.extend(children.get(pid, []))
    return found


def cpu_seconds(roots: Iterable[int]) -> float:
    """User + system CPU seconds of the trees at ``roots``, reaped children included."""
    ticks = 0
    for pid in process_tree(roots):
        fields = _stat_fields(pid)
        if fields is not None:
            # utime, stime, cutime, cstime: fields 14-17 of proc(5), counted
            # from the state field (field 3) here.
            ticks += sum(int(value) for value in fields[11:15])
    return ticks / CLOCK_TICKS


def resident_bytes(roots: Iterable[int]) -> int:
    """Resident memory (VmRSS) of the trees at ``roots``, in bytes."""
    total = 0
    for pid in process_tree(roots):
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            continue
    return total


@dataclass(frozen=True)
class CoreTimes:
    """Cumulative seconds of one core: running tasks (user, nice, system) and in all."""

    task: float
    busy: float
    total: float


def core_times() -> dict[int, CoreTimes]:
    """Cumulative times of every core, from /proc/stat."""
    cores: dict[int, CoreTimes] = {}
    with open("/proc/stat") as stat:
        for line in stat:
            name, *values = line.split()
            if name.startswith("cpu") and name[3:].isdigit():
                ticks = [int(value) for value in values[:8]]
                user, nice, system, idle, iowait = ticks[:5]
                cores[int(name[3:])] = CoreTimes(
                    task=(user + nice + system) / CLOCK_TICKS,
                    busy=(sum(ticks) - idle - iowait) / CLOCK_TICKS,
                    total=sum(ticks) / CLOCK_TICKS,
                )
    return cores


def raise_file_limit(wanted: int) -> int:
    """Raise the open-file limit towards ``wanted`` as far as allowed; return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted and os.geteuid() == 0:
        # root may raise the hard limit too
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return wanted
        except (OSError, ValueError):
            pass
    ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft == resource.RLIM_INFINITY or soft >= ceiling:
        return soft if soft != resource.RLIM_INFINITY else wanted
    resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
    return ceiling
