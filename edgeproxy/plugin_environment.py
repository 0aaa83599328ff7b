"""What a plugin factory is given besides its options."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class PluginEnvironment:
    """
    The surroundings a plugin is built in.

    :ivar reactor: the reactor the plugin must use for time, timers and I/O
        (``IReactorTime``, ``IReactorTCP``...).  It is never the global one in
        tests.
    :ivar base_dir: the directory of the configuration file; relative paths in
        options (key files, password files) are resolved against it.
    """

    reactor: Any
    base_dir: Path

    def resolve(self, path: str) -> Path:
        """Return ``path`` made absolute against :attr:`base_dir`."""
        return self.base_dir / Path(path).expanduser()
