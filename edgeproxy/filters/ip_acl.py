"""
The ``ip_acl`` filter: allow or deny requests by the real client address.

Options::

    [filter:office_only]
    plugin = ip_acl
    allow = 10.0.0.0/8, 192.168.1.7, 2001:db8::/32
    deny = 10.9.0.0/16

``allow`` and ``deny`` are lists of IPv4/IPv6 addresses and CIDR networks
(comma- or line-separated); at least one is required.  The address checked is
``context.client_host``, the client as the trusted-proxy rules established it.
``deny`` wins over ``allow``; an empty ``allow`` allows every address not
denied.  A refused request gets a 403 with a short body.  A client whose address
is not an IP (a Unix socket peer) matches no entry.
"""

from __future__ import annotations

from collections.abc import Mapping

from twisted.plugin import IPlugin
from zope.interface import implementer

from edgeproxy.core.addresses import AddressSet
from edgeproxy.core.context import RequestContext
from edgeproxy.core.message import LocalResponse, RequestHead, ResponseHead
from edgeproxy.errors import OptionError
from edgeproxy.filters.answers import local_answer
from edgeproxy.interfaces import IFilter, IFilterFactory
from edgeproxy.plugin_environment import PluginEnvironment


@implementer(IFilter)
class IPAccessFilter:
    """
    Refuses requests from denied addresses, or from addresses not allowed.

    :ivar allow: the addresses allowed; empty means every address.
    :ivar deny: the addresses refused, whatever ``allow`` says.
    """

    def __init__(self, allow: AddressSet, deny: AddressSet) -> None:
        self.allow = allow
        self.deny = deny

    def permits(self, host: str) -> bool:
        """Whether a client at ``host`` may pass."""
        if self.deny.contains(host):
            return False
        return not self.allow or self.allow.contains(host)

    def on_request(
        self, context: RequestContext, request: RequestHead
    ) -> LocalResponse | None:
        """Pass the request, or answer 403."""
        if self.permits(context.client_host):
            return None
        return local_answer(request, 403, "your address is not allowed")

    def on_response(self, context: RequestContext, response: ResponseHead) -> None:
        """Nothing to do on responses."""


def _entries(text: str) -> list[str]:
    return [item for item in text.replace("\n", ",").split(",") if item.strip()]


@implementer(IPlugin, IFilterFactory)
class IPAccessFilterFactory:
    """Builds :class:`IPAccessFilter` from ``allow`` and ``deny`` lists."""

    name = "ip_acl"
    description = "Allow or deny requests by client IP address or network."

    def build(
        self, options: Mapping[str, str], environment: PluginEnvironment
    ) -> IPAccessFilter:
        """Parse both lists; every bad entry and unknown option is reported."""
        problems: list[tuple[str, str]] = []
        sets = {"allow": AddressSet(), "deny": AddressSet()}
        for key, text in options.items():
            if key not in sets:
                problems.append((key, "unknown option (use allow, deny)"))
                continue
            try:
                sets[key] = AddressSet(_entries(text))
            except ValueError as error:
                problems.append((key, str(error)))
        if not problems and not sets["allow"] and not sets["deny"]:
            problems.append(("allow", "give allow, deny or both"))
        if problems:
            raise OptionError(problems)
        return IPAccessFilter(sets["allow"], sets["deny"])


ip_acl_factory = IPAccessFilterFactory()
