"""Tests for edgeproxy.balancing.split: traffic splits between upstreams."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest

from edgeproxy.balancing.split import TrafficSplit
from edgeproxy.config.loader import parse_config
from edgeproxy.errors import ConfigError
from edgeproxy.testing import make_request


def choose(split: TrafficSplit, headers: Sequence[tuple[bytes, bytes]] = ()) -> str:
    """The upstream chosen for one request with ``headers``."""
    context, _ = make_request(headers=headers)
    return split.choose(context)


def test_exact_shares_without_a_key() -> None:
    """Without a split key, 10,000 requests split exactly by the percents."""
    split = TrafficSplit((("stable", 95.0), ("canary", 5.0)))
    for _ in range(10_000):
        choose(split)
    assert split.counts == {"stable": 9500, "canary": 500}


def test_no_bursts_to_the_small_side() -> None:
    """The small side's requests are spread out, not sent in a row."""
    split = TrafficSplit((("stable", 90.0), ("canary", 10.0)))
    picks = [choose(split) for _ in range(100)]
    turns = [index for index, name in enumerate(picks) if name == "canary"]
    assert len(turns) == 10
    assert all(b - a == 10 for a, b in itertools.pairwise(turns))


def test_sticky_split_keeps_each_client_on_one_side() -> None:
    """With a key, one client always lands on one side; clients spread by weight."""
    split = TrafficSplit((("stable", 80.0), ("canary", 20.0)), key="header:X-User")
    sides = {}
    for user in range(2000):
        header = [(b"X-User", b"user-%d" % user)]
        first = choose(split, header)
        assert all(choose(split, header) == first for _ in range(3))
        sides[user] = first
    share = sum(1 for side in sides.values() if side == "canary") / len(sides)
    assert 0.17 < share < 0.23


def test_override_names_the_side() -> None:
    """An override header naming an upstream of the split sends the request there."""
    split = TrafficSplit(
        (("stable", 99.0), ("canary", 1.0)), override="header:X-Canary"
    )
    assert {choose(split, [(b"X-Canary", b"canary")]) for _ in range(20)} == {"canary"}
    assert choose(split, [(b"X-Canary", b"unknown")]) == "stable"


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("stable 95%, canary 6%", "add up to 100"),
        ("stable 95, canary 5%", "is not 'NAME PERCENT%'"),
        ("stable 100%, stable 0%", "is not a percent above 0"),
        ("stable 50%, stable 50%", "named twice"),
    ],
)
def test_bad_splits_are_config_errors(value: str, fragment: str) -> None:
    """A malformed split names the route's upstream key."""
    text = (
        f"[route:r]\nupstream = {value}\n"
        "[upstream:stable]\nservers = a:1\n[upstream:canary]\nservers = b:1\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    [problem] = caught.value.problems
    assert (problem.section, problem.key) == ("route:r", "upstream")
    assert fragment in problem.message


def test_split_keys_need_a_split() -> None:
    """split_key on a route with one upstream is refused."""
    text = (
        "[route:r]\nupstream = a\nsplit_key = client_ip\n[upstream:a]\nservers = a:1\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert [(p.key, p.message) for p in caught.value.problems] == [
        ("split_key", "only a traffic split takes this key")
    ]
