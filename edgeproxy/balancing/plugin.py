"""
What the built-in strategy plugins are made of: a factory, option reading, a base.

A built-in factory is a :class:`StrategyFactory`: a name, a description and a
function that reads its options through :class:`StrategyOptions` and makes the
strategy.  The options object gathers every problem, and any key that the
function did not read is an error, so ``build`` reports all bad options at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from twisted.plugin import IPlugin
from zope.interface import implementer

from edgeproxy.config.values import parse_duration, parse_int
from edgeproxy.errors import OptionError
from edgeproxy.interfaces import (
    IBalancingStrategy,
    IBalancingStrategyFactory,
    IUpstreamServer,
)
from edgeproxy.plugin_environment import PluginEnvironment


class StrategyOptions:
    """
    The ``balance.*`` options of one upstream, read one by one.

    Each reader returns the option's value, or its default after noting a
    problem; :meth:`check` then raises for every problem and unknown key.
    """

    def __init__(self, options: Mapping[str, str]) -> None:
        self._options = dict(options)
        self._known: list[str] = []
        self.problems: list[tuple[str, str]] = []

    def text(self, key: str, default: str) -> str:
        """The option's text, stripped, or ``default`` when it is not given."""
        self._known.append(key)
        value = self._options.get(key)
        return default if value is None else value.strip()

    def integer(self, key: str) -> int | None:
        """The option as a whole number, or ``None`` when not given (or bad)."""
        self._known.append(key)
        value = self._options.get(key)
        if value is None:
            return None
        try:
            return parse_int(value)
        except ValueError as error:
            self.problem(key, str(error))
            return None

    def duration(self, key: str, default: float) -> float:
        """The option as a positive duration in seconds (``250ms``, ``10s``)."""
        self._known.append(key)
        value = self._options.get(key)
        if value is None:
            return default
        try:
            seconds = parse_duration(value)
        except ValueError as error:
            self.problem(key, str(error))
            return default
        if seconds <= 0:
            self.problem(key, "must be more than 0")
            return default
        return seconds

    def problem(self, key: str, message: str) -> None:
        """Note that option ``key`` is bad."""
        self.problems.append((key, message))

    def check(self) -> None:
        """
        Raise if any option was bad or unknown.

        :raises OptionError: listing every bad option, then every unknown one.
        """
        if self._known:
            hint = "known options: " + ", ".join(self._known)
        else:
            hint = "this strategy takes no options"
        unknown = [
            (key, f"unknown option ({hint})")
            for key in self._options
            if key not in self._known
        ]
        if self.problems or unknown:
            raise OptionError([*self.problems, *unknown])


StrategyMaker = Callable[[StrategyOptions, PluginEnvironment], IBalancingStrategy]


@implementer(IPlugin, IBalancingStrategyFactory)
class StrategyFactory:
    """
    A built-in balancing strategy plugin.

    :ivar name: the strategy's name, as ``balance =`` writes it.
    :ivar description: one line for ``--list-plugins``.
    """

    def __init__(self, name: str, description: str, make: StrategyMaker) -> None:
        self.name = name
        self.description = description
        self._make = make

    def __repr__(self) -> str:
        return f"<StrategyFactory {self.name}>"

    def build(
        self, options: Mapping[str, str], environment: PluginEnvironment
    ) -> IBalancingStrategy:
        """
        Make the strategy for one pool.

        :raises OptionError: listing every bad or unknown option.
        """
        reader = StrategyOptions(options)
        strategy = self._make(reader, environment)
        reader.check()
        return strategy


class StrategyWithoutFeedback:
    """A base for strategies that need not be told when requests start and end."""

    def started(self, server: IUpstreamServer, now: float) -> None:
        """Ignored."""

    def finished(
        self, server: IUpstreamServer, now: float, elapsed: float, failed: bool
    ) -> None:
        """Ignored."""
