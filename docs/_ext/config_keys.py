"""
A Sphinx directive that renders the keys of a kind of configuration section.

``.. config-keys:: route`` lists every key of ``[route:NAME]`` with its default
and documentation, read from ``edgeproxy.config.model``: the reference cannot
fall out of step with what the loader accepts.
"""

from __future__ import annotations

import dataclasses

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

from edgeproxy.config.model import SECTION_KINDS


def _default(field: dataclasses.Field) -> str:  # type: ignore[type-arg]
    if field.default is dataclasses.MISSING:
        return "required"
    value = field.default
    if value is None or value == ():
        return "none"
    if isinstance(value, tuple):
        return ", ".join(value)
    return str(value)


class ConfigKeys(SphinxDirective):
    """Render a definition list of one section kind's keys."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        kinds = {kind.prefix: kind for kind in SECTION_KINDS}
        kind = kinds[self.arguments[0]]
        lines = []
        for field in kind.settings():
            lines.append(f"``{field.name}``")
            lines.append(f"    *Default:* {_default(field)}. {field.metadata['doc']}")
            lines.append("")
        for prefix, target in kind.prefixed_keys.items():
            doc = kind.model.__dataclass_fields__[target].metadata["doc"]
            lines.append(f"``{prefix}KEY``")
            lines.append(f"    {doc}")
            lines.append("")
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source="config-keys"), 0, container)
        return container.children


def setup(app: Sphinx) -> dict[str, object]:
    """Register the directive."""
    app.add_directive("config-keys", ConfigKeys)
    return {"parallel_read_safe": True}
