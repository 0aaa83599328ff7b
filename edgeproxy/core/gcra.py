"""
The generic cell rate algorithm (GCRA): rate limiting as one number per key.

A limit of ``count`` requests per ``period`` lets one request through every
*emission interval* ``T = period / count``; ``burst`` more may come at once, which
is a *burst tolerance* of ``burst * T``.  The state of a key is its theoretical
arrival time (TAT): when the next request would be on schedule.  A request at
``now`` conforms when it is no earlier than ``TAT - tolerance``; it then moves the
TAT one interval on.  Unlike fixed windows, there is no window edge where twice
the limit can pass: at most ``burst + 1 + elapsed / T`` requests pass in any span.

Times are whole microseconds (``int``): the same arithmetic then runs exactly
here and in the Redis script (whose numbers are doubles, exact for integers up to
2**53, far past any microsecond clock), and repeated additions do not drift.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

MICROSECONDS = 1_000_000

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def to_microseconds(seconds: float) -> int:
    """``seconds`` as whole microseconds, rounded to the nearest."""
    return round(seconds * MICROSECONDS)


def whole_seconds(microseconds: int) -> int:
    """``microseconds`` rounded up to whole seconds, as HTTP delay-seconds are."""
    return max(0, math.ceil(microseconds / MICROSECONDS))


@dataclass(frozen=True)
class Rate:
    """
    ``count`` requests per ``period`` seconds, as written ``100/m`` or ``5/10s``.

    :ivar text: the rate as the configuration wrote it, stripped.
    """

    count: int
    period: float
    text: str


def parse_rate(text: str) -> Rate:
    """
    Parse ``N/s``, ``N/m``, ``N/h``, ``N/d`` (or a multiple: ``N/10s``, ``N/250ms``).

    :raises ValueError: saying what was expected, for anything else, a zero count,
        or a rate faster than one request per microsecond.
    """
    match = _RATE.match(text)
    if match is None:
        raise ValueError(
            f"{text.strip()!r} is not a rate (write e.g. 10/s, 100/m, 1000/h)"
        )
    count_text, multiple, unit = match.groups()
    count = int(count_text)
    period = float(multiple or "1") * _UNITS[unit]
    if count < 1 or period <= 0:
        raise ValueError(f"{text.strip()!r} allows no request at all")
    if to_microseconds(period / count) < 1:
        raise ValueError(f"{text.strip()!r} is faster than one request per microsecond")
    return Rate(count, period, text.strip())


@dataclass(frozen=True)
class GcraPolicy:
    """
    One limit in the terms of the algorithm.

    :ivar emission_interval: microseconds between requests at the sustained rate.
    :ivar burst_tolerance: microseconds a request may come ahead of schedule.
    :ivar limit: how many requests may pass at once from rest (``burst + 1``).
    """

    rate: Rate
    burst: int
    emission_interval: int
    burst_tolerance: int

    @classmethod
    def from_rate(cls, rate: Rate, burst: int = 0) -> GcraPolicy:
        """The policy for ``rate`` with ``burst`` extra requests allowed at once."""
        if burst < 0:
            raise ValueError("burst cannot be negative")
        interval = to_microseconds(rate.period / rate.count)
        return cls(rate, burst, interval, interval * burst)

    @property
    def limit(self) -> int:
        """How many requests may pass at once from rest."""
        return self.burst + 1


@dataclass(frozen=True)
class GcraDecision:
    """
    The outcome for one request; durations in microseconds.

    :ivar allowed: whether the request conforms.
    :ivar tat: the key's TAT to store (unchanged when refused).
    :ivar delay: how far ahead of schedule the request came; a shaper that holds
        conforming requests (``mode = delay``) waits this long before passing it.
    :ivar retry_after: how long until a request would conform (0 when allowed).
    :ivar remaining: how many more requests would conform right now.
    :ivar reset: how long until the key is back at rest (its full burst available).
    """

    allowed: bool
    tat: int
    delay: int
    retry_after: int
    remaining: int
    reset: int


def gcra(
    tat: int, now: int, emission_interval: int, burst_tolerance: int
) -> GcraDecision:
    """
    Decide one request arriving at ``now`` for a key whose TAT is ``tat``.

    :param tat: the key's stored TAT; any value not after ``now`` (such as 0)
        means the key is at rest.
    :param now: the time of the request, in microseconds on the same clock.
    :param emission_interval: microseconds per request at the sustained rate (> 0).
    :param burst_tolerance: microseconds a request may come early (>= 0).
    """
    scheduled = max(tat, now)
    delay = scheduled - now
    if delay > burst_tolerance:
        return GcraDecision(
            allowed=False,
            tat=tat,
            delay=delay,
            retry_after=delay - burst_tolerance,
            remaining=0,
            reset=delay,
        )
    new_tat = scheduled + emission_interval
    reset = new_tat - now
    # A k-th further request now conforms while reset + (k-1)*T <= tolerance.
    remaining = max(0, (burst_tolerance - reset) // emission_interval + 1)
    return GcraDecision(
        allowed=True,
        tat=new_tat,
        delay=delay,
        retry_after=0,
        remaining=remaining,
        reset=reset,
    )


def decide(tat: int, now: int, policy: GcraPolicy) -> GcraDecision:
    """:func:`gcra` with the intervals of ``policy``."""
    return gcra(tat, now, policy.emission_interval, policy.burst_tolerance)
