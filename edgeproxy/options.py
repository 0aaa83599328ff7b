"""
Parsing a plugin's options: every bad, unknown or missing one reported together.

Also here: the parsers of values that several plugins share (a header name, a
positive duration) and the reading of a file that an option names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from edgeproxy.balancing.request_keys import is_token
from edgeproxy.config.values import parse_duration
from edgeproxy.plugin_environment import PluginEnvironment

Problems = list[tuple[str, str]]


def parse_options(
    options: Mapping[str, str],
    parsers: Mapping[str, Callable[[str], Any]],
    *,
    required: Mapping[str, str] | None = None,
    keep_order: bool = False,
) -> tuple[dict[str, Any], Problems]:
    """
    Parse each option with its parser.

    :param parsers: the parser of each known option; a parser raises
        ``ValueError`` with a message for the operator.
    :param required: the options that must be given, each with the message
        that its absence gets.
    :param keep_order: name the known options in an unknown option's message
        in the order of ``parsers`` (the order the plugin documents them in)
        rather than sorted.
    :return: the parsed values by key, and a ``(key, message)`` problem for
        each unknown key (naming the known ones) and each value its parser
        refused, in the order of ``options``, then one for each missing
        required option.
    """
    known = ", ".join(parsers if keep_order else sorted(parsers))
    values: dict[str, Any] = {}
    problems: Problems = []
    for key, text in options.items():
        parser = parsers.get(key)
        if parser is None:
            problems.append((key, f"unknown option (use {known})"))
            continue
        try:
            values[key] = parser(text)
        except ValueError as error:
            problems.append((key, str(error)))
    for key, message in (required or {}).items():
        if key not in options:
            problems.append((key, message))
    return values, problems


def parse_header_name(text: str) -> bytes:
    """
    Parse the name of a header field (an RFC 9110 token).

    :raises ValueError: naming the text that is not one.
    """
    name = text.strip()
    if not is_token(name):
        raise ValueError(f"{name!r} is not a header name")
    return name.encode("ascii")


def parse_positive_duration(text: str) -> float:
    """
    Parse a duration (``250ms``, ``30s``) that is more than 0.

    :raises ValueError: for what is not a duration, or is 0.
    """
    value = parse_duration(text)
    if value <= 0:
        raise ValueError(f"{text.strip()!r} is not more than 0")
    return value


def read_named_file(text: str, environment: PluginEnvironment) -> bytes:
    """
    The bytes of the file that an option names, relative to the configuration.

    :raises ValueError: ``cannot read 'PATH': why``.
    """
    path = text.strip()
    try:
        return environment.resolve(path).read_bytes()
    except OSError as error:
        raise ValueError(f"cannot read {path!r}: {error}") from None


def read_named_text(text: str, environment: PluginEnvironment) -> str:
    """
    The UTF-8 text of the file that an option names, relative to the configuration.

    :raises ValueError: ``cannot read 'PATH': why`` (not UTF-8 included).
    """
    path = text.strip()
    try:
        return environment.resolve(path).read_text(encoding="utf-8")
    except (OSError, UnicodeError) as error:
        raise ValueError(f"cannot read {path!r}: {error}") from None
