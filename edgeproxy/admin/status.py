"""
The admin site: what edgeproxy is doing, and runtime control of servers.

``GET /status``
    JSON: the listeners, every upstream's servers with their state and
    counters, and every cache's counters (hits, misses, stale answers,
    revalidations answered 304 and 200, requests that waited for another's
    fetch, stored bytes, entries, evictions).
``POST /reload``
    Load the configuration file again (as ``SIGHUP`` does): 200 when the new
    configuration runs, 409 (and a log line saying why) when it was refused.
``POST /upstreams/NAME/servers/HOST:PORT/drain`` (also ``disable``, ``enable``)
    Change a server's admin state; answers the server's new state as JSON.
    The change holds across a reload while the server stays in the config.
``POST /caches/NAME/purge?url=URL`` (or ``?tag=TAG``)
    Drop every stored variant of the absolute ``URL`` (``http://host/path``),
    or every response that carried ``TAG`` in ``Surrogate-Key`` or
    ``Cache-Tag``; answers how many entries went.

The site reads the current snapshot for every request, so it always shows the
running configuration.  Bind it to a loopback or otherwise private address.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from edgeproxy.snapshot import SnapshotHolder
from edgeproxy.upstream.pool import UpstreamPool

_ACTIONS = ("drain", "disable", "enable")


def _json(request: Request, status: int, body: object) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/json")
    request.setHeader(b"Cache-Control", b"no-store")
    return json.dumps(body, indent=2, sort_keys=True).encode("utf-8") + b"\n"


def status_document(holder: SnapshotHolder, now: float) -> dict[str, Any]:
    """The state of the running configuration, as plain data."""
    snapshot = holder.current
    return {
        "listeners": {
            name: {"protocol": listener.protocol, "endpoint": listener.endpoint}
            for name, listener in snapshot.config.listeners.items()
        },
        "splits": {
            route.name: dict(route.split.counts)
            for table in snapshot.route_tables.values()
            for route in table.payloads()
            if route.split is not None
        },
        "upstreams": {
            name: {
                "servers": [
                    dataclasses.asdict(server.stats(now)) for server in pool.servers
                ]
            }
            for name, pool in snapshot.pools.items()
        },
        "caches": {name: cache.stats() for name, cache in snapshot.caches.items()},
    }


class StatusResource(Resource):
    """``GET /status``."""

    isLeaf = True

    def __init__(self, holder: SnapshotHolder, reactor: Any) -> None:
        super().__init__()
        self.holder = holder
        self.reactor = reactor

    def render_GET(self, request: Request) -> bytes:
        """Answer the status document."""
        return _json(request, 200, status_document(self.holder, self.reactor.seconds()))


class UpstreamsResource(Resource):
    """``POST /upstreams/NAME/servers/KEY/ACTION``."""

    isLeaf = True

    def __init__(self, holder: SnapshotHolder, reactor: Any) -> None:
        super().__init__()
        self.holder = holder
        self.reactor = reactor

    def render_POST(self, request: Request) -> bytes:
        """Apply a runtime action to one server."""
        parts = [part.decode("utf-8", "replace") for part in request.postpath or []]
        if len(parts) != 4 or parts[1] != "servers" or parts[3] not in _ACTIONS:
            return _json(
                request,
                404,
                {
                    "error": "use POST /upstreams/NAME/servers/HOST:PORT/"
                    "drain|disable|enable"
                },
            )
        name, _, key, action = parts
        pool: UpstreamPool | None = self.holder.current.pools.get(name)
        if pool is None:
            return _json(request, 404, {"error": f"no upstream {name!r}"})
        now = self.reactor.seconds()
        try:
            getattr(pool, action)(key, now)
        except KeyError:
            return _json(request, 404, {"error": f"no server {key!r} in {name!r}"})
        return _json(request, 200, dataclasses.asdict(pool.server(key).stats(now)))


class CachesResource(Resource):
    """``POST /caches/NAME/purge?url=URL`` or ``?tag=TAG``."""

    isLeaf = True

    def __init__(self, holder: SnapshotHolder) -> None:
        super().__init__()
        self.holder = holder

    def render_POST(self, request: Request) -> bytes:
        """Purge by URL or by tag."""
        parts = [part.decode("utf-8", "replace") for part in request.postpath or []]
        if len(parts) != 2 or parts[1] != "purge":
            return _json(
                request, 404, {"error": "use POST /caches/NAME/purge?url=...|tag=..."}
            )
        cache = self.holder.current.caches.get(parts[0])
        if cache is None:
            return _json(request, 404, {"error": f"no cache {parts[0]!r}"})
        arguments = request.args or {}
        urls, tags = arguments.get(b"url", []), arguments.get(b"tag", [])
        if len(urls) + len(tags) != 1:
            return _json(request, 400, {"error": "give one url=... or one tag=..."})
        if tags:
            return _json(request, 200, {"purged": cache.store.purge_tag(tags[0])})
        try:
            purged = cache.purge_url(urls[0].decode("latin-1"))
        except ValueError as error:
            return _json(request, 400, {"error": str(error)})
        return _json(request, 200, {"purged": purged})


class ReloadResource(Resource):
    """``POST /reload``: load the configuration file again."""

    isLeaf = True

    def __init__(self, reload: Callable[[], bool]) -> None:
        super().__init__()
        self.reload = reload

    def render_POST(self, request: Request) -> bytes:
        """Reload; 200 when the new configuration runs, 409 when it was refused."""
        if self.reload():
            return _json(request, 200, {"reloaded": True})
        return _json(
            request,
            409,
            {"reloaded": False, "error": "the configuration was refused: see the log"},
        )


def admin_site(
    holder: SnapshotHolder,
    reactor: Any,
    reload: Callable[[], bool] | None = None,
) -> Site:
    """The admin site over the current snapshot of ``holder``."""
    root = Resource()
    root.putChild(b"status", StatusResource(holder, reactor))
    root.putChild(b"upstreams", UpstreamsResource(holder, reactor))
    root.putChild(b"caches", CachesResource(holder))
    if reload is not None:
        root.putChild(b"reload", ReloadResource(reload))
    site = Site(root)
    site.displayTracebacks = False
    return site
