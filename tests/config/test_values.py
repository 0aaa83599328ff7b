"""Tests for edgeproxy.config.values: the value syntaxes of config files."""

from __future__ import annotations

import pytest

from edgeproxy.config.values import (
    parse_bool,
    parse_duration,
    parse_int,
    parse_list,
    parse_name,
    parse_size,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("2d", 172800.0),
        ("1.5s", 1.5),
        ("10", 10.0),
        (" 7s ", 7.0),
    ],
)
def test_duration(text: str, seconds: float) -> None:
    """Durations are numbers with ms/s/m/h/d units, a bare number being seconds."""
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["30x", "", "s", "-1s", "1 2s", "5 minutes"])
def test_bad_duration(text: str) -> None:
    """A malformed duration is rejected with a hint of the right syntax."""
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512", 512),
        ("64KB", 65536),
        ("64kb", 65536),
        ("256MB", 256 * 1024**2),
        ("1GB", 1024**3),
        ("10K", 10240),
        ("3B", 3),
    ],
)
def test_size(text: str, size: int) -> None:
    """Sizes take binary units, in any case."""
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["64XB", "1.5MB", "", "MB", "-1"])
def test_bad_size(text: str) -> None:
    """A malformed size is rejected."""
    with pytest.raises(ValueError, match="is not a size"):
        parse_size(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [("yes", True), ("On", True), ("1", True), ("no", False), ("FALSE", False)],
)
def test_bool(text: str, value: bool) -> None:
    """Yes/no words of several spellings are understood."""
    assert parse_bool(text) is value


def test_bad_bool() -> None:
    """Anything else is not a yes or no."""
    with pytest.raises(ValueError, match="is not yes or no"):
        parse_bool("maybe")


def test_int_minimum() -> None:
    """Whole numbers below their minimum are rejected."""
    assert parse_int("3", minimum=0) == 3
    with pytest.raises(ValueError, match="less than 1"):
        parse_int("0", minimum=1)
    with pytest.raises(ValueError, match="not a whole number"):
        parse_int("three")


def test_list_and_names() -> None:
    """Lists are comma-separated with blanks dropped; names are restricted."""
    assert parse_list(" a, b ,,c ") == ("a", "b", "c")
    assert parse_name("api_v1.x-y") == "api_v1.x-y"
    with pytest.raises(ValueError, match="not a valid name"):
        parse_name("a b")
