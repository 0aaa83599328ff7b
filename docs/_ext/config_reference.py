"""
The text of the configuration reference, read from ``edgeproxy.config.model``.

:func:`reference_lines` turns one kind of section into reStructuredText: a
definition list with one entry per key (its value syntax, its default and its
documentation) and one per key prefix (``health.KEY``).  The ``config-keys``
directive renders these lines; this module does not import Sphinx, so that
the unit tests can check what the reference says without building it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from edgeproxy.config.model import SectionKind
from edgeproxy.config.values import parse_size

# The model's prefixed-key fields (header_equals, health_options...) are plain
# mappings without a parser, so they may carry no documentation of their own;
# these words stand in until they do.
_PREFIX_DOCS: Mapping[str, str] = {
    "header_equals": (
        "Match only requests that have a field ``NAME`` with exactly this value "
        "(the name without case, the value as received).  One key per field; "
        "all must hold."
    ),
    "header_regex": (
        "Match only requests that have a field ``NAME`` in which this regular "
        "expression is found.  One key per field; all must hold."
    ),
    "health_options": (
        "An option of the ``health`` plugin, e.g. ``health.path = /healthz`` "
        "for ``http_get``; see :ref:`health-checks`."
    ),
    "balance_options": (
        "An option of the ``balance`` strategy, e.g. ``balance.key = "
        "header:X-API-Key`` for ``hash``; see :ref:`balancing`."
    ),
}

# Parsers whose values have a syntax of their own (model.py's private helpers
# are recognised by name: the reference must not import them).
_SYNTAX_BY_PARSER: Mapping[str, str] = {
    "_addresses": "addresses",
    "_regex": "regular expression",
    "_servers": "servers",
    "parse_name": "name",
    "_optional_name": "name",
    "_names": "list of names",
}
_ENDPOINT_KEYS = frozenset({"endpoint", "admin"})

_DURATION_UNITS = (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0))
_SIZE_UNITS = (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024))


def format_duration(seconds: float) -> str:
    """Write ``seconds`` as a config would: ``0``, ``250ms``, ``30s``, ``1h``."""
    if seconds == 0:
        return "0"
    if seconds < 120 and seconds.is_integer():
        # nginx's habit: 60s and 75s read better than 1m and 75s side by side.
        return f"{int(seconds)}s"
    for unit, size in _DURATION_UNITS:
        if seconds >= size and (seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    return f"{round(seconds * 1000)}ms"


def format_size(size: int) -> str:
    """Write ``size`` bytes as the config does: ``512``, ``64KB``, ``1MB``."""
    for unit, factor in _SIZE_UNITS:
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def value_syntax(field: dataclasses.Field[Any]) -> str:
    """
    The syntax of a key's value, as the reference's "Value syntaxes" names it.

    Read from the field's type and parser; a parser this does not know makes
    the syntax ``text`` (or ``list``), never a wrong one.
    """
    parser = getattr(field.metadata["parse"], "__name__", "")
    if parser in _SYNTAX_BY_PARSER:
        return _SYNTAX_BY_PARSER[parser]
    if field.name in _ENDPOINT_KEYS:
        return "endpoint"
    annotation = str(field.type)
    if annotation == "float":
        return "duration"
    if annotation == "bool":
        return "yes/no"
    if annotation.startswith("int"):
        return "size" if field.metadata["parse"] is parse_size else "whole number"
    if annotation.startswith(("tuple", "frozenset")):
        return "list"
    return "text"


def format_default(field: dataclasses.Field[Any]) -> str:
    """The default of a key as a reader would write it, or ``required``."""
    if field.default is dataclasses.MISSING:
        return "required"
    value = field.default
    syntax = value_syntax(field)
    if value is None:
        return "not set"
    if isinstance(value, bool):
        return "``yes``" if value else "``no``"
    if isinstance(value, tuple | frozenset):
        return ", ".join(f"``{item}``" for item in value) if value else "empty"
    if value == "":
        return "empty"
    if syntax == "duration":
        return f"``{format_duration(float(value))}``"
    if syntax == "size":
        return f"``{format_size(int(value))}``"
    return f"``{value}``"


def prefix_doc(kind: SectionKind, target: str) -> str:
    """The documentation of the keys a prefix collects into field ``target``."""
    field = next(f for f in dataclasses.fields(kind.model) if f.name == target)
    doc = field.metadata.get("doc")
    return str(doc) if doc else _PREFIX_DOCS.get(target, "")


def reference_lines(kind: SectionKind) -> list[str]:
    """The reStructuredText of the keys of ``kind``, one definition per key."""
    lines: list[str] = []
    for field in kind.settings():
        default = format_default(field)
        default = "required" if default == "required" else f"default {default}"
        lines.append(f"``{field.name}``")
        lines.append(
            f"    *{value_syntax(field)}*, {default}.  {field.metadata['doc']}"
        )
        lines.append("")
    for prefix, target in kind.prefixed_keys.items():
        lines.append(f"``{prefix}NAME``")
        lines.append(f"    {prefix_doc(kind, target)}")
        lines.append("")
    if kind.plugin_options is not None:
        lines.append("*any other key*")
        lines.append(
            "    An option of the plugin, passed to it as written; the plugin "
            "rejects the ones it does not know."
        )
        lines.append("")
    return lines
