"""Tests for edgeproxy.options: parsing a plugin's options."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from edgeproxy.config.values import parse_duration, parse_int
from edgeproxy.options import (
    parse_header_name,
    parse_options,
    parse_positive_duration,
    read_named_file,
    read_named_text,
)
from edgeproxy.plugin_environment import PluginEnvironment
from edgeproxy.testing import environment


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


def test_known_options_in_the_documented_order() -> None:
    """With keep_order, an unknown option's message lists the options as given."""
    _, problems = parse_options(
        {"colour": "red"},
        {"open_for": parse_duration, "limit": parse_int},
        keep_order=True,
    )
    assert problems == [("colour", "unknown option (use open_for, limit)")]


def test_missing_required_options_come_last() -> None:
    """Each missing required option is reported with its message, after the rest."""
    _, problems = parse_options(
        {"colour": "red", "limit": "2"},
        {"rate": str, "limit": parse_int, "store": str},
        required={"rate": "required (e.g. rate = 10/s)", "limit": "required"},
    )
    assert problems == [
        ("colour", "unknown option (use limit, rate, store)"),
        ("rate", "required (e.g. rate = 10/s)"),
    ]


@pytest.mark.parametrize(
    ("text", "name"),
    [(" X-Request-ID ", b"X-Request-ID"), ("x_trace", b"x_trace")],
)
def test_header_names(text: str, name: bytes) -> None:
    """A token is a header name, spaces around it dropped."""
    assert parse_header_name(text) == name


@pytest.mark.parametrize("text", ["", "X Trace", "X:Trace", "café"])
def test_bad_header_names(text: str) -> None:
    """Empty names, separators and non-ASCII letters are refused, quoting the text."""
    with pytest.raises(ValueError, match=f"^{text.strip()!r} is not a header name$"):
        parse_header_name(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [("0s", "'0s' is not more than 0"), ("soon", "'soon' is not a duration")],
)
def test_positive_durations(text: str, message: str) -> None:
    """A duration of 0 or no duration at all is refused."""
    assert parse_positive_duration("250ms") == 0.25
    with pytest.raises(ValueError, match=message):
        parse_positive_duration(text)


def test_named_files_are_relative_to_the_configuration(tmp_path: Path) -> None:
    """A file an option names is read from the configuration's directory."""
    (tmp_path / "keys").write_bytes("caf\u00e9\n".encode())
    assert read_named_file(" keys ", environment(base_dir=tmp_path)) == b"caf\xc3\xa9\n"
    assert read_named_text("keys", environment(base_dir=tmp_path)) == "caf\u00e9\n"


@pytest.mark.parametrize("read", [read_named_file, read_named_text])
def test_unreadable_files_name_the_path(
    tmp_path: Path, read: Callable[[str, PluginEnvironment], object]
) -> None:
    """A file that cannot be read is a ValueError naming the path as written."""
    with pytest.raises(ValueError, match=r"^cannot read 'absent': "):
        read(" absent ", environment(base_dir=tmp_path))


def test_text_that_is_not_utf8_cannot_be_read(tmp_path: Path) -> None:
    """A named text file must be UTF-8."""
    (tmp_path / "keys").write_bytes(b"\xff")
    with pytest.raises(ValueError, match=r"^cannot read 'keys': 'utf-8' codec"):
        read_named_text("keys", environment(base_dir=tmp_path))
