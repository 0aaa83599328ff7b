"""
The ``cors`` filter: answer CORS preflights and mark responses for other origins.

Options::

    [filter:browser_api]
    plugin = cors
    allow_origins = https://app.example.com, ~^https://[a-z0-9-]+\\.example\\.com$
    allow_methods = GET, HEAD, POST, PUT, DELETE     ; default GET, HEAD, POST
    allow_headers = Authorization, Content-Type      ; default none
    expose_headers = X-Request-ID                    ; default none
    allow_credentials = yes                          ; default no
    max_age = 10m                                    ; default: not sent

``allow_origins`` (required) lists origins as browsers send them
(``scheme://host[:port]``, no path; a default port is dropped), ``null``, ``*``
for any origin, and regular expressions written ``~REGEX`` that must match the
whole origin.  A regular expression runs to the end of its line, so it may hold
commas; put further entries on the next line.  ``allow_methods``,
``allow_headers`` and ``expose_headers`` take names or ``*``.

This follows the CORS protocol of the Fetch standard:

- A preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``)
  is answered here: ``204`` with the ``Access-Control-Allow-*`` fields (and
  ``-Max-Age``) when the origin, the method and every requested header are
  allowed, else ``403`` with a short reason and no CORS fields, which shows the
  refusal in the browser's network panel as gateway users expect.  ``GET``,
  ``HEAD`` and ``POST`` always pass, as browsers never check them.  Methods are
  case-sensitive, but ``DELETE``, ``GET``, ``HEAD``, ``OPTIONS``, ``POST`` and
  ``PUT`` are upper-cased (as browsers do); header names are not.
- Other requests go upstream.  The filter owns the response's
  ``Access-Control-Allow-Origin``, ``-Allow-Credentials`` and ``-Expose-Headers``:
  it drops the upstream's and, when the ``Origin`` is allowed, adds its own, on
  upstream responses and local answers (401, 429, 503) alike.
- ``Access-Control-Allow-Origin`` is ``*`` only for ``*`` origins without
  credentials; otherwise it repeats the request's origin, and every response
  gets ``Vary: Origin`` so that caches keep origins apart.  With credentials,
  ``*`` allows any origin but ``null`` (sandboxed documents), unless listed.
- With credentials, browsers read ``*`` in the other fields literally, so ``*``
  methods and headers repeat what the preflight asks for and ``*`` exposed
  headers list the response's field names.  Without credentials, ``*`` headers
  also name ``Authorization`` when asked: ``*`` never covers it.
"""

from __future__ import annotations

from collections.abc import Mapping

from twisted.plugin import IPlugin
from zope.interface import implementer

from edgeproxy.balancing.request_keys import is_token
from edgeproxy.core.context import RequestContext
from edgeproxy.core.message import Headers, LocalResponse, RequestHead, ResponseHead
from edgeproxy.filters.answers import local_answer
from edgeproxy.filters.cors_policy import CorsPolicy, read_cors_policy
from edgeproxy.interfaces import IFilter, IFilterFactory
from edgeproxy.plugin_environment import PluginEnvironment

SAFELISTED_METHODS = frozenset({b"GET", b"HEAD", b"POST"})
"""Methods that browsers never check in a preflight."""

UNEXPOSABLE = frozenset(
    b"cache-control content-language content-length content-type expires "
    b"last-modified pragma set-cookie set-cookie2".split()
)
"""Response fields never worth exposing: readable already, or never readable."""


_ALLOW_ORIGIN = b"Access-Control-Allow-Origin"
_ALLOW_CREDENTIALS = b"Access-Control-Allow-Credentials"
_EXPOSE_HEADERS = b"Access-Control-Expose-Headers"
_NOTE_ORIGIN = "cors.allow_origin"
_NOTE_PREFLIGHT = "cors.preflight"


@implementer(IFilter)
class CorsFilter:
    """Answers preflights and adds the CORS fields to responses."""

    def __init__(self, policy: CorsPolicy) -> None:
        self.policy = policy

    def __repr__(self) -> str:
        return f"<CorsFilter {self.policy!r}>"

    def on_request(
        self, context: RequestContext, request: RequestHead
    ) -> LocalResponse | None:
        """Answer a preflight; note the allowed origin of any other request."""
        origins = request.headers.get_all(b"origin")
        if not origins:
            return None
        origin = _origin_text(origins)
        requested_method = request.headers.get_all(b"access-control-request-method")
        if request.method == b"OPTIONS" and requested_method:
            context.notes[_NOTE_PREFLIGHT] = True
            return self._preflight(request, origin, requested_method)
        allowed = None if origin is None else self.policy.allow_origin(origin)
        if allowed is not None:
            context.notes[_NOTE_ORIGIN] = allowed
        return None

    def on_response(self, context: RequestContext, response: ResponseHead) -> None:
        """Put this filter's CORS fields in place of the upstream's ones."""
        if context.notes.get(_NOTE_PREFLIGHT):
            return
        policy = self.policy
        headers = response.headers
        for name in (_ALLOW_ORIGIN, _ALLOW_CREDENTIALS, _EXPOSE_HEADERS):
            headers.remove(name)
        allowed = context.notes.get(_NOTE_ORIGIN)
        # Listed before Vary is added: the names are the response's own.
        expose = self._expose(headers) if isinstance(allowed, bytes) else []
        if policy.varies_by_origin:
            add_vary(headers, b"Origin")
        if not isinstance(allowed, bytes):
            return
        headers.add(_ALLOW_ORIGIN, allowed)
        if policy.credentials:
            headers.add(_ALLOW_CREDENTIALS, b"true")
        if expose:
            headers.add(_EXPOSE_HEADERS, b", ".join(expose))

    def _preflight(
        self, request: RequestHead, origin: str | None, requested: list[bytes]
    ) -> LocalResponse:
        policy = self.policy
        allowed = None if origin is None else policy.allow_origin(origin)
        if allowed is None:
            return _refusal(request, "the origin is not allowed")
        method = requested[0].strip()
        if len(requested) > 1 or not _is_token(method):
            return _refusal(request, "Access-Control-Request-Method is malformed")
        any_method = policy.methods == (b"*",)
        if not (any_method or method in policy.methods or method in SAFELISTED_METHODS):
            return _refusal(request, f"the method {method.decode()} is not allowed")
        names = _requested_headers(request.headers)
        if names is None:
            return _refusal(request, "Access-Control-Request-Headers is malformed")
        allowed_names = {name.lower() for name in policy.headers}
        refused = [name for name in names if name not in allowed_names]
        if refused and policy.headers != (b"*",):
            listed = ", ".join(name.decode() for name in refused)
            return _refusal(request, f"the headers {listed} are not allowed")

        answer = LocalResponse(204)
        fields = answer.headers
        fields.add(_ALLOW_ORIGIN, allowed)
        if policy.credentials:
            fields.add(_ALLOW_CREDENTIALS, b"true")
        if any_method and policy.credentials:
            fields.add(b"Access-Control-Allow-Methods", method)
            add_vary(fields, b"Access-Control-Request-Method")
        else:
            fields.add(b"Access-Control-Allow-Methods", b", ".join(policy.methods))
        header_names = self._allow_headers(names)
        if header_names:
            fields.add(b"Access-Control-Allow-Headers", b", ".join(header_names))
        if policy.headers == (b"*",) and names:
            add_vary(fields, b"Access-Control-Request-Headers")
        if policy.max_age is not None:
            fields.add(b"Access-Control-Max-Age", b"%d" % policy.max_age)
        if policy.varies_by_origin:
            add_vary(fields, b"Origin")
        return answer

    def _allow_headers(self, requested: list[bytes]) -> list[bytes]:
        policy = self.policy
        if policy.headers != (b"*",):
            return list(policy.headers)
        if policy.credentials:
            return requested
        # Fetch never lets the wildcard cover Authorization: name it.
        return [b"*", *(name for name in requested if name == b"authorization")]

    def _expose(self, headers: Headers) -> list[bytes]:
        policy = self.policy
        if policy.expose_headers != (b"*",):
            return list(policy.expose_headers)
        if not policy.credentials:
            return [b"*"]
        names: dict[bytes, bytes] = {}
        for name, _ in headers:
            lowered = name.lower()
            if lowered not in UNEXPOSABLE and not lowered.startswith(
                b"access-control-"
            ):
                names.setdefault(lowered, name)
        return list(names.values())


def add_vary(headers: Headers, name: bytes) -> None:
    """Add ``name`` to the ``Vary`` of ``headers`` unless it is already covered."""
    for value in headers.get_all(b"vary"):
        for item in value.split(b","):
            if item.strip().lower() in (b"*", name.lower()):
                return
    headers.add(b"Vary", name)


def _refusal(request: RequestHead, reason: str) -> LocalResponse:
    return local_answer(request, 403, f"CORS preflight refused: {reason}")


def _is_token(value: bytes) -> bool:
    return is_token(value.decode("latin-1"))


def _origin_text(values: list[bytes]) -> str | None:
    """The one origin a browser sends, or ``None`` for anything else."""
    if len(values) != 1:
        return None
    origin = values[0].strip()
    if not origin or not all(0x21 <= byte <= 0x7E for byte in origin):
        return None
    return origin.decode("ascii")


def _requested_headers(headers: Headers) -> list[bytes] | None:
    """The lower-cased names a preflight asks for, or ``None`` if malformed."""
    names: list[bytes] = []
    for value in headers.get_all(b"access-control-request-headers"):
        for item in value.split(b","):
            name = item.strip().lower()
            if not name:
                continue
            if not _is_token(name):
                return None
            if name not in names:
                names.append(name)
    return names


@implementer(IPlugin, IFilterFactory)
class CorsFilterFactory:
    """Builds :class:`CorsFilter` from its options."""

    name = "cors"
    description = "Answer CORS preflights and add CORS fields to responses."

    def build(
        self, options: Mapping[str, str], environment: PluginEnvironment
    ) -> CorsFilter:
        """Parse the options; every bad or missing one is reported."""
        return CorsFilter(read_cors_policy(options))


cors_factory = CorsFilterFactory()
