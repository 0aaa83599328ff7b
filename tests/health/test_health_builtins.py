"""Tests for edgeproxy.health: the list of built-in health-check plugins."""

from __future__ import annotations

import pytest
from twisted.internet.testing import MemoryReactorClock
from twisted.plugin import IPlugin
from zope.interface.verify import verifyObject

from edgeproxy.errors import OptionError
from edgeproxy.health import BUILTIN_HEALTH_CHECK_FACTORIES
from edgeproxy.interfaces import IHealthCheck, IHealthCheckFactory
from edgeproxy.testing import environment


def test_the_builtin_names() -> None:
    """tcp and http_get are there, once each, in that order."""
    assert [factory.name for factory in BUILTIN_HEALTH_CHECK_FACTORIES] == [
        "tcp",
        "http_get",
    ]


@pytest.mark.parametrize(
    "factory", BUILTIN_HEALTH_CHECK_FACTORIES, ids=lambda factory: factory.name
)
def test_factories_are_plugins_that_build_checks(factory: IHealthCheckFactory) -> None:
    """Every factory is an IPlugin and a check factory; it builds a check."""
    assert verifyObject(IPlugin, factory)
    assert verifyObject(IHealthCheckFactory, factory)
    assert factory.description
    assert verifyObject(IHealthCheck, factory.build({}, environment()))


@pytest.mark.parametrize(
    "factory", BUILTIN_HEALTH_CHECK_FACTORIES, ids=lambda factory: factory.name
)
def test_building_starts_no_io(factory: IHealthCheckFactory) -> None:
    """Building a check (as --check does) neither connects nor sets a timer."""
    reactor = MemoryReactorClock()
    factory.build({}, environment(reactor))
    assert reactor.tcpClients == []
    assert reactor.getDelayedCalls() == []


@pytest.mark.parametrize(
    "factory", BUILTIN_HEALTH_CHECK_FACTORIES, ids=lambda factory: factory.name
)
def test_unknown_options_are_errors(factory: IHealthCheckFactory) -> None:
    """An option a check does not know fails the build, naming the option."""
    with pytest.raises(OptionError) as raised:
        factory.build({"colour": "blue"}, environment())
    [(key, message)] = raised.value.problems
    assert key == "colour"
    assert message.startswith("unknown option (")
