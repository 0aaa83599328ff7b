"""Tests for the built-in strategy factories (edgeproxy.balancing.plugin)."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet.testing import MemoryReactorClock
from twisted.plugin import IPlugin
from zope.interface.verify import verifyObject

from edgeproxy.balancing import BUILTIN_STRATEGY_FACTORIES
from edgeproxy.balancing.plugin import StrategyFactory
from edgeproxy.errors import OptionError
from edgeproxy.interfaces import IBalancingStrategy, IBalancingStrategyFactory
from edgeproxy.plugin_environment import PluginEnvironment

ENVIRONMENT = PluginEnvironment(MemoryReactorClock(), Path("/etc/edgeproxy"))
FACTORIES = {factory.name: factory for factory in BUILTIN_STRATEGY_FACTORIES}


def build(name: str, **options: str) -> IBalancingStrategy:
    """Build the named built-in strategy with ``options``."""
    return FACTORIES[name].build(options, ENVIRONMENT)


def option_problems(name: str, **options: str) -> tuple[tuple[str, str], ...]:
    """The problems that building the named strategy with ``options`` reports."""
    with pytest.raises(OptionError) as raised:
        build(name, **options)
    return raised.value.problems


def test_the_builtin_names() -> None:
    """The seven documented strategies are there, once each."""
    assert [factory.name for factory in BUILTIN_STRATEGY_FACTORIES] == [
        "round_robin",
        "weighted",
        "least_conn",
        "random_two",
        "hash",
        "least_time",
        "sticky",
    ]


@pytest.mark.parametrize("factory", BUILTIN_STRATEGY_FACTORIES, ids=lambda f: f.name)
def test_factories_are_plugins_that_build_strategies(factory: StrategyFactory) -> None:
    """Every factory is an IPlugin and a strategy factory; it builds a strategy."""
    assert verifyObject(IPlugin, factory)
    assert verifyObject(IBalancingStrategyFactory, factory)
    assert factory.description
    assert verifyObject(IBalancingStrategy, factory.build({}, ENVIRONMENT))


@pytest.mark.parametrize("factory", BUILTIN_STRATEGY_FACTORIES, ids=lambda f: f.name)
def test_unknown_options_are_errors(factory: StrategyFactory) -> None:
    """An option a strategy does not know fails the build, naming the option."""
    problems = option_problems(factory.name, colour="blue")
    assert [key for key, _ in problems] == ["colour"]
    assert "unknown option" in problems[0][1]


def test_an_optionless_strategy_says_so() -> None:
    """The message for a strategy without options says it takes none."""
    assert option_problems("least_conn", seed="1") == (
        ("seed", "unknown option (this strategy takes no options)"),
    )


def test_the_known_options_are_listed() -> None:
    """The message for an unknown option lists the strategy's options."""
    assert option_problems("hash", keys="url") == (
        ("keys", "unknown option (known options: key)"),
    )


@pytest.mark.parametrize(
    ("name", "options", "expected"),
    [
        ("random_two", {"seed": "many"}, ("seed", "'many' is not a whole number")),
        ("hash", {"key": "ip"}, ("key", "'ip' is not client_ip, url, header:NAME")),
        ("hash", {"key": "header:"}, ("key", "is not client_ip")),
        ("hash", {"key": "cookie:a b"}, ("key", "is not client_ip")),
        ("least_time", {"decay": "soon"}, ("decay", "'soon' is not a duration")),
        ("least_time", {"decay": "0s"}, ("decay", "must be more than 0")),
        ("sticky", {"cookie": "a;b"}, ("cookie", "'a;b' is not a valid cookie name")),
    ],
)
def test_bad_option_values_are_errors(
    name: str, options: dict[str, str], expected: tuple[str, str]
) -> None:
    """A bad option value fails the build with a message naming the option."""
    ((key, message),) = option_problems(name, **options)
    assert key == expected[0]
    assert expected[1] in message


def test_every_bad_option_is_listed() -> None:
    """Bad values and unknown keys are all reported by one OptionError."""
    problems = option_problems("hash", key="nope", weight="3", salt="x")
    assert [key for key, _ in problems] == ["key", "weight", "salt"]


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("random_two", {"seed": "42"}),
        ("hash", {"key": "header:X-API-Key"}),
        ("hash", {"key": "cookie:session"}),
        ("hash", {"key": "url"}),
        ("least_time", {"decay": "250ms"}),
        ("sticky", {"cookie": "SRV"}),
    ],
)
def test_good_options_build(name: str, options: dict[str, str]) -> None:
    """Each documented option is accepted."""
    assert verifyObject(IBalancingStrategy, build(name, **options))
