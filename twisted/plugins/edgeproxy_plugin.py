"""Makes ``twistd edgeproxy`` available (a Twisted application plugin)."""

from twisted.application.service import ServiceMaker

edgeproxy = ServiceMaker(
    "edgeproxy",
    "edgeproxy.tap",
    "HTTP/1.1 reverse proxy, WebSocket passthrough and TCP load balancer",
    "edgeproxy",
)
