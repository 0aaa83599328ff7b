"""Tests for edgeproxy.options: parsing a plugin's options."""

from __future__ import annotations

from edgeproxy.config.values import parse_duration, parse_int
from edgeproxy.options import parse_options


def test_values_parsed_and_problems_gathered() -> None:
    """Good values are parsed; unknown keys and bad values are all reported."""
    values, problems = parse_options(
        {"open_for": "30s", "limit": "x", "colour": "red"},
        {"open_for": parse_duration, "limit": parse_int},
    )
    assert values == {"open_for": 30.0}
    assert problems == [
        ("limit", "'x' is not a whole number"),
        ("colour", "unknown option (use limit, open_for)"),
    ]
