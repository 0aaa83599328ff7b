"""
From runs to results: medians with min-max per scenario and target, ratios to
the direct origin and to the reference peer of the same run, the goals with
PASS/MISS, as Markdown (printed and saved) and JSON.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from edgebench.scenarios import BY_KEY, GOALS, IDLE_CONNECTIONS, RESOURCES, Goal

Row = dict[str, Any]

DISTURBED_PCT = 10.0
"""Other processes' CPU (% of a core) above which a run counts as disturbed."""

MEDIAN_FIELDS = (
    "p50_ms",
    "p99_ms",
    "mbytes_per_s",
    "proxy_pct",
    "cpu_us_per_op",
    "load_core_pct",
)


def summarize(runs: Sequence[Row]) -> list[Row]:
    """One row per (scenario, target), in the order the runs came."""
    groups: dict[tuple[str, str], list[Row]] = {}
    for run in runs:
        groups.setdefault((run["scenario"], run["target"]), []).append(run)
    rows: list[Row] = []
    for (key, target), group in groups.items():
        good = [run for run in group if run.get("value") is not None]
        values = [run["value"] for run in good]
        row: Row = {
            "scenario": key,
            "target": target,
            "unit": BY_KEY[key].unit,
            "median": statistics.median(values) if values else None,
            "min": min(values) if values else None,
            "max": max(values) if values else None,
            "runs": len(good),
            "failed": len(group) - len(good),
            "errors": sum(run.get("errors") or 0 for run in good),
            "other_pct_max": max((run.get("other_pct") or 0.0) for run in group),
        }
        for name in MEDIAN_FIELDS:
            found = [run[name] for run in good if run.get(name) is not None]
            row[name] = statistics.median(found) if found else None
        rows.append(row)
    for row in rows:
        row["x_direct"] = _ratio(rows, row, "direct")
        references = BY_KEY[row["scenario"]].references
        row["x_refs"] = {name: _ratio(rows, row, name) for name in references}
        row["x_ref"] = row["x_refs"][references[0]]
    return rows


def _ratio(rows: Sequence[Row], row: Row, other: str) -> float | None:
    base = next(
        (r for r in rows if r["scenario"] == row["scenario"] and r["target"] == other),
        None,
    )
    if base is None or not base["median"] or row["median"] is None:
        return None
    return float(row["median"] / base["median"])


def evaluate(
    goal: Goal, rows: Sequence[Row], resources: Sequence[Row]
) -> tuple[float | None, str]:
    """The figure of ``goal``'s target and PASS, MISS or n/a."""
    measured: float | None = None
    if goal.kind == "ratio":
        row = next(
            (
                r
                for r in rows
                if r["scenario"] == goal.scenario and r["target"] == goal.target
            ),
            None,
        )
        measured = None if row is None else row["x_ref"]
        passed = measured is not None and measured >= goal.threshold
    else:
        found = next((r for r in resources if r["target"] == goal.target), None)
        measured = None if found is None else found["idle_mb"]
        passed = measured is not None and measured < goal.threshold
        if found is not None and found["idle_open"] < IDLE_CONNECTIONS:
            # Fewer connections were held than the goal speaks of.
            return measured, f"n/a ({found['idle_open']:,} held)"
    if measured is None:
        return None, "n/a"
    return measured, "PASS" if passed else "MISS"


def number(value: float | None, digits: int = 2) -> str:
    """A table cell: thousands separated, small values with ``digits`` decimals."""
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.{digits}f}"


Table = tuple[list[str], list[list[str]]]
"""A header and its lines of cells."""


def goal_table(rows: Sequence[Row], resources: Sequence[Row]) -> Table:
    """Each goal, edgeproxy's figure and PASS/MISS."""
    lines = []
    for goal in GOALS:
        measured, verdict = evaluate(goal, rows, resources)
        if goal.kind == "idle_rss_mb":
            shown = f"{number(measured, 1)} MB"
        else:
            shown = f"{number(measured)} x"
        lines.append([goal.label, "-" if measured is None else shown, verdict])
    return ["goal", "edgeproxy", "result"], lines


def load_table(rows: Sequence[Row]) -> Table:
    """One line per scenario and target."""
    lines = []
    for row in rows:
        scenario = BY_KEY[row["scenario"]]
        span = f"{number(row['min'])}-{number(row['max'])}" if row["runs"] > 1 else ""
        failed = f" ({row['failed']} failed)" if row["failed"] else ""
        lines.append(
            [
                row["scenario"],
                row["target"],
                f"{number(row['median'])} {scenario.unit}",
                span,
                number(row["x_direct"]),
                _references(row),
                number(row["p50_ms"], 3),
                number(row["p99_ms"], 3),
                number(row["mbytes_per_s"], 1),
                number(row["proxy_pct"], 0),
                number(row["cpu_us_per_op"], 1),
                number(row["load_core_pct"], 0),
                number(row["other_pct_max"], 0),
                f"{row['errors']}{failed}",
            ]
        )
    header = [
        "scenario", "target", "median", "min-max", "x direct", "x ref", "p50 ms",
        "p99 ms", "MB/s", "CPU %", "CPU us/op", "load core %", "other %", "errors",
    ]  # fmt: skip
    return header, lines


def _references(row: Row) -> str:
    # Rows saved before there were several references have x_ref only.
    ratios = row.get("x_refs") or {BY_KEY[row["scenario"]].reference: row["x_ref"]}
    return "; ".join(f"{number(ratio)} {name}" for name, ratio in ratios.items())


def memory_table(resources: Sequence[Row]) -> Table:
    """One line per proxy of the memory scenario."""
    header = [
        "target", "RSS at rest MB", "idle conns open", "RSS idle MB",
        "MB per 1k idle", "closed by server", "RSS peak upload MB",
        "upload MB/s", "upload answer",
    ]  # fmt: skip
    lines = [
        [
            r["target"],
            number(r["rest_mb"], 1),
            f"{r['idle_open']:,}/{r['idle_connections']:,}",
            number(r["idle_mb"], 1),
            number(r["idle_mb_per_1k"], 2),
            str(r["idle_closed_by_server"]),
            number(r["upload_peak_mb"], 1),
            number(r["upload_mb_per_s"], 0),
            r["upload_status"],
        ]
        for r in resources
    ]
    return header, lines


def summary_line(meta: dict[str, Any]) -> str:
    """How the figures were taken, in one sentence."""
    return (
        f"{meta['reps']} run(s) x {meta['duration_s']} s per scenario and target, "
        f"targets alternating; proxy on cpu{meta['proxy_cpu']}, load generator and "
        f"origins on cpu{meta['load_cpu']}. Medians (min-max over runs); x direct "
        "and x ref are ratios of medians measured in this run."
    )


def _markdown_table(table: Table) -> list[str]:
    header, lines = table
    out = ["| " + " | ".join(header) + " |"]
    out.append("|---" + "|---:" * (len(header) - 1) + "|")
    out += ["| " + " | ".join(cells) + " |" for cells in lines]
    return out


def markdown(
    rows: Sequence[Row], resources: Sequence[Row], meta: dict[str, Any]
) -> str:
    """The whole report as Markdown."""
    text = [f"# edgeproxy benchmark, {meta['date']}", "", summary_line(meta)]
    if meta.get("quick"):
        text += ["", "**Quick run (smoke test): the figures are indicative only.**"]
    warning = disturbance(rows)
    if warning:
        text += ["", f"**{warning}**"]
    for note in meta.get("notes", ()):
        text += ["", f"Note: {note}."]
    text += ["", "## Goals", "", *_markdown_table(goal_table(rows, resources))]
    text += ["", "## Load", "", *_markdown_table(load_table(rows))]
    if resources:
        text += ["", f"## Memory ({RESOURCES}: a fresh instance of each proxy)", ""]
        text += _markdown_table(memory_table(resources))
    text += ["", LEGEND]
    return "\n".join(text) + "\n"


def _rst_cell(text: str) -> str:
    # A cell that starts with "-" would be read as a bullet list.
    return "\\" + text if text.startswith("-") else text or " "


def _rst_table(table: Table, title: str) -> list[str]:
    header, lines = table
    out = [f".. list-table:: {title}", "   :header-rows: 1", ""]
    for cells in [header, *lines]:
        out.append(f"   * - {_rst_cell(cells[0])}")
        out += [f"     - {_rst_cell(cell)}" for cell in cells[1:]]
    return [*out, ""]


def disturbance(rows: Sequence[Row]) -> str | None:
    """A warning when other processes took a noticeable share during the runs."""
    worst = max((row["other_pct_max"] for row in rows), default=0.0)
    if worst < DISTURBED_PCT:
        return None
    return (
        f"Other processes used up to {worst:.0f} % of a core during the runs: "
        "the figures are disturbed (see the column other %)."
    )


def restructured_text(
    rows: Sequence[Row], resources: Sequence[Row], meta: dict[str, Any]
) -> str:
    """The tables as reStructuredText, for the documentation to include."""
    text = [summary_line(meta), f"Measured {meta['date']} on {meta['machine']}.", ""]
    notes = []
    if meta.get("quick"):
        notes.append(
            "A quick run (a smoke test): the figures show the harness at work, "
            "not edgeproxy's cost."
        )
    warning = disturbance(rows)
    if warning:
        notes.append(warning)
    notes += [f"{note}." for note in meta.get("notes", ())]
    if notes:
        text += [".. warning::", "", *(f"   {note}" for note in notes), ""]
    text += _rst_table(goal_table(rows, resources), "Goals")
    text += _rst_table(load_table(rows), "Load")
    if resources:
        text += _rst_table(memory_table(resources), "Memory (fresh instances)")
    return "\n".join(text)


LEGEND = """\
Rows: in cache-*, nginx (proxy_cache), varnish and edgeproxy answer from their
cache, hits only (a run during which the origin served a request is refused);
in gateway-128-c50 every request carries a JWT, edgeproxy is the plain route
and edgeproxy-jwt(-redis) the same route behind jwt + rate_limit (counters in
memory or in Redis).  Columns: x ref = the ratio to each reference peer of the
scenario; CPU % = the target's process tree in % of one core (none for direct:
the origins are not counted); CPU us/op = that CPU time per request (per
connection in tcp-connrate, per message in websocket); load core % = how busy
the core of the load generator and the origins was (near 100: the load side,
not the proxy, set the pace); other % = the most that processes not started by
the benchmark used during a run, in % of a core (above ~10 the run was
disturbed); MB = 10^6 bytes."""
