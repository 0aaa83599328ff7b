"""
Parsers for the value syntaxes of configuration files.

Each parser takes the text of one value and returns a typed value, or raises
``ValueError`` with a message that says what was expected; the loader adds the
file, section and key.
"""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

_SIZE = re.compile(r"^\s*(\d+)\s*(B|KB|MB|GB|K|M|G)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
}

_TRUE = frozenset({"yes", "true", "on", "1"})
_FALSE = frozenset({"no", "false", "off", "0"})


def parse_duration(text: str) -> float:
    """
    Parse a duration such as ``250ms``, ``30s``, ``5m``, ``1h``, ``2d`` into seconds.

    A bare number means seconds.
    """
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(
            f"{text.strip()!r} is not a duration (write e.g. 250ms, 30s, 5m, 1h)"
        )
    number, unit = match.groups()
    return float(number) * _DURATION_UNITS[unit or "s"]


def parse_size(text: str) -> int:
    """
    Parse a size such as ``512``, ``64KB``, ``256MB``, ``1GB`` into bytes.

    Units are binary (1 KB = 1024 bytes) and case-insensitive.
    """
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"{text.strip()!r} is not a size (write e.g. 64KB, 256MB)")
    number, unit = match.groups()
    return int(number) * _SIZE_UNITS[(unit or "").lower()]


def parse_bool(text: str) -> bool:
    """Parse ``yes``/``no`` (also ``true``/``false``, ``on``/``off``, ``1``/``0``)."""
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(f"{text.strip()!r} is not yes or no")


def parse_int(text: str, minimum: int | None = None) -> int:
    """Parse a whole number, at least ``minimum`` when given."""
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"{text.strip()!r} is not a whole number") from None
    if minimum is not None and value < minimum:
        raise ValueError(f"{value} is less than {minimum}")
    return value


def parse_list(text: str) -> tuple[str, ...]:
    """Split a comma-separated list, dropping blanks around and between items."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


def parse_name(text: str) -> str:
    """A name of a section (``route:NAME``): letters, digits, ``_``, ``-``, ``.``."""
    name = text.strip()
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
        raise ValueError(f"{name!r} is not a valid name (letters, digits, _ - .)")
    return name
