"""
edgeproxy: an HTTP/1.1 reverse proxy, WebSocket passthrough and TCP load balancer.

The application is started with ``twistd -n edgeproxy -c conf.ini``; the public
Python surface for plugin authors is :mod:`edgeproxy.interfaces` and
:mod:`edgeproxy.testing`.
"""

__version__ = "0.1.0"
