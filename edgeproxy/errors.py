"""
The one error hierarchy of edgeproxy.

Configuration problems are values (:class:`ConfigProblem`), gathered and raised
together as one :class:`ConfigError`.  Errors met while serving a request carry
the status that the client gets.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class EdgeproxyError(Exception):
    """The base of every error that edgeproxy raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    """
    One thing wrong with a configuration.

    :ivar file: the configuration file's path, as the user gave it.
    :ivar section: the section, e.g. ``route:api``; empty for file-level problems.
    :ivar key: the key inside the section; empty for section-level problems.
    :ivar message: what is wrong, in words an operator can act on.
    """

    file: str
    section: str
    key: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.section:
            where += f": [{self.section}]"
        if self.key:
            where += f" {self.key}"
        return f"{where}: {self.message}"


class ConfigError(EdgeproxyError):
    """
    A configuration could not be used; every problem found is listed.

    :ivar partial: what could be read of the configuration despite the
        problems (its valid sections), so that later checks can still report
        theirs; ``None`` when nothing could be read.
    """

    def __init__(
        self, problems: Iterable[ConfigProblem], partial: object | None = None
    ) -> None:
        self.problems = tuple(problems)
        self.partial = partial
        super().__init__("\n".join(str(problem) for problem in self.problems))


class OptionError(EdgeproxyError):
    """
    A plugin rejected its options.

    Raised by a plugin factory's ``build``; each entry of ``problems`` is a
    ``(key, message)`` pair, where ``key`` is the option's name as the plugin
    received it (without any ``health.`` or ``balance.`` prefix).
    """

    def __init__(self, problems: Iterable[tuple[str, str]]) -> None:
        self.problems = tuple(problems)
        super().__init__(
            "; ".join(f"{key}: {message}" for key, message in self.problems)
        )


class PluginError(EdgeproxyError):
    """Plugins could not be discovered cleanly (a broken module, a duplicate name)."""

    def __init__(self, messages: Iterable[str]) -> None:
        self.messages = tuple(messages)
        super().__init__("\n".join(self.messages))


class UpstreamError(EdgeproxyError):
    """
    A request could not be answered by an upstream server.

    :ivar status: the status the client gets (502, 503 or 504).
    :ivar reason: a short reason for the log line.
    """

    status = 502

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class BadGateway(UpstreamError):
    """The upstream refused the connection, reset it or answered garbage."""

    status = 502


class NoServerAvailable(UpstreamError):
    """The pool has no healthy server to try."""

    status = 503


class GatewayTimeout(UpstreamError):
    """The upstream did not answer (or connect) in time."""

    status = 504
