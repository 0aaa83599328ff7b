"""Parsing a plugin's options: every bad or unknown one reported together."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Problems = list[tuple[str, str]]


def parse_options(
    options: Mapping[str, str], parsers: Mapping[str, Callable[[str], Any]]
) -> tuple[dict[str, Any], Problems]:
    """
    Parse each option with its parser.

    :return: the parsed values by key, and a ``(key, message)`` problem for
        each unknown key (naming the known ones) and each value its parser
        refused (``ValueError``).
    """
    values: dict[str, Any] = {}
    problems: Problems = []
    for key, text in options.items():
        parser = parsers.get(key)
        if parser is None:
            problems.append((key, f"unknown option (use {', '.join(sorted(parsers))})"))
            continue
        try:
            values[key] = parser(text)
        except ValueError as error:
            problems.append((key, str(error)))
    return values, problems
