"""
The cache scenarios measure hits only: each cache is warmed until it answers
with its hit mark, and the origin's request count (nginx's stub_status) is
read around every run, so that a run during which any request reached the
origin is refused rather than reported.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from edgebench.probe import fetch

ORIGIN_STATUS_PATH = "/origin-status"
WARMING_TRIES = 20
WARMING_PAUSE = 0.05


@dataclass(frozen=True)
class HitMark:
    """How a cache says "hit": a response field and the start of its value."""

    field: str
    prefix: str

    def seen_in(self, value: str) -> bool:
        """True when ``value`` of the field marks a hit."""
        return value.strip().lower().startswith(self.prefix.lower())


def warm_cache(port: int, path: str, mark: HitMark) -> str:
    """Request ``path`` until the cache behind ``port`` answers a hit.

    Returns the hit's field value; raises RuntimeError when no hit comes.
    """
    seen = ""
    for _ in range(WARMING_TRIES):
        answer = fetch(port, path)
        seen = answer.field(mark.field)
        if answer.status == 200 and mark.seen_in(seen):
            return seen
        # nginx stores the response once its body is complete: ask again.
        time.sleep(WARMING_PAUSE)
    raise RuntimeError(
        f"no cache hit for {path} after {WARMING_TRIES} requests "
        f"(last {mark.field}: {seen!r})"
    )


def origin_requests(port: int) -> int:
    """Requests the origin has served so far, this one included."""
    text = fetch(port, ORIGIN_STATUS_PATH).body.decode("ascii", "replace")
    # "server accepts handled requests" and below it the three counters.
    found = re.search(r"^\s*(\d+)\s+(\d+)\s+(\d+)\s*$", text, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"the origin's {ORIGIN_STATUS_PATH} said {text[:200]!r}")
    return int(found.group(3))


def misses_between(before: int, after: int) -> int:
    """Requests the origin served between two readings (not the readings)."""
    return after - before - 1
