"""
edgeproxy's benchmark: what edgeproxy costs beside the direct origin, nginx,
HAProxy and Varnish, measured on this machine in one session.

    bench/run                      # every scenario, 3 runs x 5 s each
    bench/run --quick              # 1 run x 2 s each: a smoke run
    bench/run --scenarios http-128-c50,tcp-stream --targets edgeproxy
    bench/run --quick --scenarios cache-128-c50
    bench/run --from-json /tmp/edgeproxy-bench/<stamp>/results.json

The proxy under test runs on one core (--proxy-cpu), the load generator and
the origins on another (--load-cpu).  Results go to a new directory under
--out: results.json, results.md, ratios.png (with matplotlib) and logs/.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from edgebench.machine import cpu_plan, raise_file_limit
from edgebench.plot import write_plot
from edgebench.processes import ProcessGroup, log
from edgebench.report import evaluate, markdown, restructured_text, summarize
from edgebench.scenarios import ALL_KEYS, GOALS, IDLE_CONNECTIONS, PROXIES, RESOURCES
from edgebench.session import Plan, run_session
from edgebench.stack import Stack, which

FILE_LIMIT = 65536
VERSION_SCRIPT = (
    "import sys, twisted; print(sys.version.split()[0], twisted.__version__)"
)
GIB = 1024**3
PUBLISHED = Path(__file__).resolve().parent.parent / "results"
PUBLISHED_FILES = ("results.json", "results.md", "results.rst", "ratios.png")
QUICK = (
    ("reps", 3, 1),
    ("duration", 5, 2),
    ("warmup", 1, 0),
    ("quiet_wait", 5.0, 0.0),
)
"""Options whose default --quick changes: (name, default, with --quick)."""


def default_python() -> str:
    """The interpreter that runs edgeproxy: $EDGEBENCH_PYTHON, else this one."""
    return os.environ.get("EDGEBENCH_PYTHON") or sys.executable


def _names(text: str, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in allowed]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown {what} {', '.join(unknown)} (known: {', '.join(allowed)})"
        )
    return names


def parser() -> argparse.ArgumentParser:
    """The command line."""
    ap = argparse.ArgumentParser(
        prog="bench/run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 1 run x 2 s, no warm-up, no waiting for quiet "
        "(options given explicitly still apply)",
    )
    ap.add_argument("--reps", type=int, help="runs per scenario and target (3)")
    ap.add_argument("--duration", type=int, help="seconds per run (5)")
    ap.add_argument("--warmup", type=int, help="seconds of load before run 1 (1)")
    ap.add_argument(
        "--scenarios",
        type=lambda text: _names(text, ALL_KEYS, "scenario"),
        default=ALL_KEYS,
        help="comma-separated, of: " + ", ".join(ALL_KEYS),
    )
    ap.add_argument(
        "--targets",
        type=lambda text: _names(text, PROXIES, "target"),
        default=PROXIES,
        help="proxies, comma-separated (direct always runs; each runs in the "
        "scenarios that list it): " + ", ".join(PROXIES),
    )
    ap.add_argument("--out", type=Path, default=Path("/tmp/edgeproxy-bench"))
    ap.add_argument(
        "--python",
        default=default_python(),
        help="interpreter with Twisted and edgeproxy's dependencies "
        "(default $EDGEBENCH_PYTHON, else the one running this)",
    )
    ap.add_argument("--proxy-cpu", type=int, default=None)
    ap.add_argument("--load-cpu", type=int, default=None)
    ap.add_argument(
        "--idle-connections",
        type=int,
        default=IDLE_CONNECTIONS,
        help=f"idle connections in the {RESOURCES} scenario ({IDLE_CONNECTIONS:,})",
    )
    ap.add_argument(
        "--upload-bytes",
        type=int,
        default=GIB,
        help=f"size of the upload in the {RESOURCES} scenario (1 GiB)",
    )
    ap.add_argument(
        "--quiet-pct",
        type=float,
        default=10.0,
        help="before each run wait until other processes use less than this "
        "%% of a core ...",
    )
    ap.add_argument("--quiet-wait", type=float, help="... for at most this many s (5)")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument(
        "--publish",
        action="store_true",
        help=f"also copy the results to {PUBLISHED} (what docs/benchmarks.rst shows)",
    )
    ap.add_argument(
        "--from-json",
        type=Path,
        help="measure nothing: render a saved results.json again (beside it)",
    )
    return ap


def render(document: dict[str, Any], out_dir: Path | None, plot: bool) -> str:
    """Print the report of ``document``; write results.md and ratios.png."""
    parts = (document["rows"], document["resources"], document["meta"])
    text = markdown(*parts)
    print(text)
    if out_dir is not None:
        (out_dir / "results.md").write_text(text)
        (out_dir / "results.rst").write_text(restructured_text(*parts))
        if plot:
            title = f"edgeproxy benchmark {document['meta']['date']}"
            if write_plot(document["rows"], out_dir / "ratios.png", title):
                log(f"plot: {out_dir / 'ratios.png'}")
            else:
                log("matplotlib is not installed: no plot (bench/setup installs it)")
    return text


def publish(out_dir: Path) -> None:
    """Copy the results in ``out_dir`` to bench/results, which the docs show."""
    PUBLISHED.mkdir(exist_ok=True)
    for name in PUBLISHED_FILES:
        if (out_dir / name).exists():
            shutil.copyfile(out_dir / name, PUBLISHED / name)
    log(f"published to {PUBLISHED}")


def versions(python: str) -> dict[str, str]:
    """The version of everything measured, for the record."""
    commands = {
        "nginx": ["nginx", "-v"],
        "haproxy": ["haproxy", "-v"],
        "varnishd": ["varnishd", "-V"],
        "redis-server": ["redis-server", "--version"],
        "wrk": ["wrk", "-v"],
        "iperf3": ["iperf3", "-v"],
        "edgeproxy python": [python, "-c", VERSION_SCRIPT],
    }
    found = {}
    for name, argv in commands.items():
        program = which(argv[0]) or argv[0]
        try:
            done = subprocess.run(
                [program, *argv[1:]],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            continue
        lines = (done.stdout + done.stderr).strip().splitlines()
        found[name] = lines[0][:100] if lines else ""
    return found


def _stop_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark the command line asks for; 0 when every run worked."""
    args = parser().parse_args(argv)
    if args.from_json:
        # Render again beside the saved JSON (after a change to the reports).
        document = json.loads(args.from_json.read_text())
        render(document, args.from_json.parent, plot=not args.no_plot)
        if args.publish:
            publish(args.from_json.parent)
        return 0
    # --quick changes the defaults only: what is given explicitly stands.
    for name, full, quick in QUICK:
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    missing = [tool for tool in ("taskset", "wrk", "nginx") if which(tool) is None]
    if missing:
        sys.exit(f"bench/run: {', '.join(missing)} missing: run bench/setup first")
    proxies = tuple(p for p in args.targets if p != "haproxy" or which("haproxy"))
    cpus = cpu_plan(args.proxy_cpu, args.load_cpu)
    if cpus.shared:
        log("only one core: proxy and load share it, ratios will be pessimistic")
    # The harness (and the clients it starts) stays off the proxy's core.
    os.sched_setaffinity(0, {cpus.load})
    file_limit = raise_file_limit(FILE_LIMIT)
    if file_limit < args.idle_connections + 1024 and RESOURCES in args.scenarios:
        log(f"open-file limit {file_limit}: too low for {args.idle_connections} idle")

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = args.out / stamp
    (out_dir / "logs").mkdir(parents=True)
    processes = ProcessGroup(out_dir / "logs")
    stack = Stack(
        out_dir / "logs",
        cpus,
        processes,
        args.python,
        file_limit,
        max_connections=args.idle_connections + 1000,
    )
    plan = Plan(
        scenarios=args.scenarios,
        proxies=proxies,
        reps=args.reps,
        seconds=args.duration,
        warmup=args.warmup,
        quiet_pct=args.quiet_pct,
        quiet_wait=args.quiet_wait,
        idle_connections=args.idle_connections,
        upload_bytes=args.upload_bytes,
    )
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop_on_signal)
    started = datetime.datetime.now()
    try:
        outcome = run_session(plan, cpus, stack, processes)
    finally:
        processes.stop_all()
        stack.remove_shared_dir()
    runs, resources = outcome.runs, outcome.resources
    rows = summarize(runs)
    meta = {
        "date": started.isoformat(timespec="seconds"),
        "elapsed_s": round((datetime.datetime.now() - started).total_seconds(), 1),
        "quick": args.quick,
        "reps": args.reps,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "proxy_cpu": cpus.proxy,
        "load_cpu": cpus.load,
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus",
        "kernel": platform.release(),
        "versions": versions(args.python),
        "notes": outcome.notes,
    }
    goals = []
    for goal in GOALS:
        measured, verdict = evaluate(goal, rows, resources)
        goals.append(
            {
                "goal": goal.label,
                "target": goal.target,
                "edgeproxy": measured,
                "result": verdict,
            }
        )
    document = {
        "meta": meta,
        "rows": rows,
        "resources": resources,
        "goals": goals,
        "runs": runs,
    }
    (out_dir / "results.json").write_text(json.dumps(document, indent=1) + "\n")
    render(document, out_dir, plot=not args.no_plot)
    latest = args.out / "latest"
    if latest.is_symlink() or not latest.exists():
        latest.unlink(missing_ok=True)
        latest.symlink_to(stamp)
    log(f"results: {out_dir} (also {latest}); took {meta['elapsed_s']:.0f} s")
    if args.publish:
        publish(out_dir)
    failed = [run for run in runs if run.get("value") is None]
    return 1 if failed or (not runs and not resources) else 0


if __name__ == "__main__":
    sys.exit(main())
