"""
The ratios as a PNG: each target's median as a fraction of the direct origin,
per scenario, and each goal's edgeproxy target against the scenario's
reference peer with the goal marked.
Needs matplotlib; without it the benchmark says so and writes no picture.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from edgebench.report import Row
from edgebench.scenarios import GOALS, SCENARIOS

COLOURS = {
    "nginx": "#4c72b0",
    "haproxy": "#55a868",
    "varnish": "#8172b2",
    "edgeproxy": "#c44e52",
    "edgeproxy-jwt": "#dd8452",
    "edgeproxy-jwt-redis": "#937860",
}


def write_plot(rows: Sequence[Row], path: Path, title: str) -> bool:
    """Draw the ratios of ``rows`` into ``path``; False when matplotlib is absent."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    keys = [s.key for s in SCENARIOS if any(r["scenario"] == s.key for r in rows)]
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    shown = [t for t in COLOURS if any(r["target"] == t for r in rows)]
    width = 0.8 / max(len(shown), 1)
    for index, target in enumerate(shown):
        heights = [_field(rows, key, target, "x_direct") for key in keys]
        middle = index - (len(shown) - 1) / 2
        positions = [k + middle * width for k in range(len(keys))]
        left.bar(positions, heights, width, label=target, color=COLOURS[target])
    left.axhline(1.0, color="grey", linewidth=0.8)
    left.set_xticks(range(len(keys)), keys, rotation=30, ha="right")
    left.set_ylabel("x direct (median / direct origin's median)")
    left.set_title("Every target against the direct origin")
    left.legend()

    goals = [g for g in GOALS if g.kind == "ratio" and g.scenario in keys]
    measured = [_field(rows, g.scenario, g.target, "x_ref") for g in goals]
    colours = [COLOURS.get(g.target, COLOURS["edgeproxy"]) for g in goals]
    right.bar(range(len(goals)), measured, 0.6, color=colours)
    for index, goal in enumerate(goals):
        right.hlines(goal.threshold, index - 0.4, index + 0.4, color="black")
    right.set_xticks(
        range(len(goals)), [g.label for g in goals], rotation=30, ha="right"
    )
    right.set_ylabel("edgeproxy / reference peer (bar); goal (line)")
    right.set_title("edgeproxy against its reference peer (goals)")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def _field(rows: Sequence[Row], key: str, target: str, name: str) -> float:
    for row in rows:
        if row["scenario"] == key and row["target"] == target:
            value = row[name]
            return float(value) if value is not None else 0.0
    return 0.0
