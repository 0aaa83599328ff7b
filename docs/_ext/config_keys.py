"""
A Sphinx directive that renders the keys of a kind of configuration section.

``.. config-keys:: route`` lists every key of ``[route:NAME]`` with its value
syntax, its default and its documentation, read from
``edgeproxy.config.model`` (see ``config_reference``): the reference cannot
fall out of step with what the loader accepts.
"""

from __future__ import annotations

from config_reference import reference_lines
from docutils import nodes  # type: ignore[import-untyped]
from docutils.statemachine import StringList  # type: ignore[import-untyped]
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

from edgeproxy.config.model import SECTION_KINDS


class ConfigKeys(SphinxDirective):
    """Render a definition list of one section kind's keys."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        """Parse the generated definition list in place of the directive."""
        kinds = {kind.prefix: kind for kind in SECTION_KINDS}
        kind = kinds.get(self.arguments[0])
        if kind is None:
            known = ", ".join(sorted(kinds))
            raise self.error(
                f"config-keys: no section kind {self.arguments[0]!r} (known: {known})"
            )
        source = f"config-keys {kind.prefix}"
        container = nodes.container()
        self.state.nested_parse(
            StringList(reference_lines(kind), source=source), 0, container
        )
        return list(container.children)


def setup(app: Sphinx) -> dict[str, object]:
    """Register the directive."""
    app.add_directive("config-keys", ConfigKeys)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
