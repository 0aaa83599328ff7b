"""
Changing request targets, answering redirects, and mapping Location back.

:func:`rewrite_target` turns the target a client sent into the one sent
upstream; :func:`redirect_response` answers a request with a redirect;
:func:`rewrite_locations` turns the upstream's own URLs in ``Location``,
``Content-Location`` and ``Refresh`` back into public ones (what nginx calls
``proxy_redirect``).

Replacement templates (``rewrite``, ``redirect``) are nginx-like: ``$1`` to
``$9`` insert a numbered capture, ``${12}`` any numbered capture, ``${name}``
a named capture ``(?P<name>...)``, ``$0`` the whole match and ``$$`` a dollar
sign; any other ``$`` is a configuration error, as is a reference to a
capture the regex does not have.  A capture that did not take part in the
match inserts nothing.

The query string follows nginx's ``rewrite`` rules: a regex applies to the
path only, and the original query is carried over (appended with ``&`` when
the replacement has its own ``?``, dropped when the replacement ends with
``?``).  A regex that contains ``\\?`` applies instead to the whole target
(path and query), and its replacement is the whole new target.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from edgeproxy.core.message import Headers, LocalResponse, RequestHead
from edgeproxy.core.routing import host_key

_REFERENCE = re.compile(r"\$(?:(\d)|\{(\w+)\}|(\$))")
_HTTP_SCHEMES = (b"http", b"https")
_DEFAULT_PORTS = {b"http": b"80", b"https": b"443"}
LOCATION_FIELDS = frozenset({b"location", b"content-location", b"refresh"})
"""The (lowered) names of the fields :func:`rewrite_locations` rewrites."""
# "5; url=/next", "0;URL='/x'", "3, /y": the delay and separator, then the URL.
_REFRESH = re.compile(rb"(\s*[\d.]+\s*[;,]\s*(?:url\s*=\s*)?)(.*)", re.I | re.S)
_REDIRECT_STATUSES = frozenset({301, 302, 307, 308})


class Template:
    """A replacement text with references to a regex's captures."""

    __slots__ = ("_parts", "text")

    def __init__(self, text: str, regex: re.Pattern[bytes] | None) -> None:
        """
        Parse ``text``; its references must exist in ``regex``.

        Raises ``ValueError`` for a stray ``$`` or an unknown capture.
        """
        self.text = text
        parts: list[tuple[bytes, int | str | None]] = []
        position = 0
        for reference in _REFERENCE.finditer(text):
            literal = text[position : reference.start()]
            _check_literal(text, literal)
            position = reference.end()
            digit, braced, dollar = reference.groups()
            if dollar:
                parts.append(((literal + "$").encode("utf-8"), None))
                continue
            group: int | str = (
                int(digit or braced) if (digit or braced).isdigit() else braced
            )
            _check_group(text, group, regex)
            parts.append((literal.encode("utf-8"), group))
        rest = text[position:]
        _check_literal(text, rest)
        parts.append((rest.encode("utf-8"), None))
        self._parts = tuple(parts)

    def expand(self, match: re.Match[bytes] | None) -> bytes:
        """The text with each reference replaced by ``match``'s capture."""
        pieces: list[bytes] = []
        for literal, group in self._parts:
            pieces.append(literal)
            if group is not None and match is not None:
                pieces.append(match.group(group) or b"")
        return b"".join(pieces)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Template):
            return NotImplemented
        return self.text == other.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"Template({self.text!r})"


def _check_literal(text: str, literal: str) -> None:
    """Raise ``ValueError`` if a ``$`` in ``text`` starts no reference."""
    if "$" in literal:
        raise ValueError(
            f"{text!r}: '$' must be followed by a digit, '{{name}}' or '$'"
        )


def _check_group(text: str, group: int | str, regex: re.Pattern[bytes] | None) -> None:
    """Raise ``ValueError`` unless ``regex`` has the capture ``group``."""
    if regex is None:
        raise ValueError(f"{text!r} refers to a capture but there is no regex")
    known = (
        group in regex.groupindex if isinstance(group, str) else group <= regex.groups
    )
    if not known:
        raise ValueError(
            f"{text!r} refers to ${{{group}}}, which the regex"
            f" {regex.pattern.decode('utf-8', 'replace')!r} does not capture"
        )


def _compile(key: str, pattern: str) -> re.Pattern[bytes]:
    """Compile a configured regex for matching bytes; ValueError when bad."""
    try:
        return re.compile(pattern.encode("utf-8"))
    except re.error as error:
        raise ValueError(f"{key} {pattern!r} is not a valid regex: {error}") from None


def _applies_to_query(regex: re.Pattern[bytes]) -> bool:
    """Whether a regex is meant for the whole target: it matches a ``?``."""
    return b"\\?" in regex.pattern


def _with_query(result: bytes, query: bytes | None) -> bytes:
    """A replaced path with the original query carried over, as nginx does."""
    if result.endswith(b"?"):
        return result[:-1]
    if query is None:
        return result
    if b"?" in result:
        return result + b"&" + query if query else result
    return result + b"?" + query


def _subject(
    regex: re.Pattern[bytes] | None, target: bytes
) -> tuple[bytes, bytes | None]:
    """
    What ``regex`` is searched in, and the query to carry over.

    The path and its query (``None`` when there is no ``?``), or the whole
    target and ``None`` when the regex is for the whole target.
    """
    if regex is not None and _applies_to_query(regex):
        return target, None
    path, separator, query = target.partition(b"?")
    return path, query if separator else None


def _prefix(key: str, prefix: str) -> bytes:
    """A configured path prefix, checked to start with ``/``, as bytes."""
    if prefix and not prefix.startswith("/"):
        raise ValueError(f"{key} {prefix!r} must start with '/'")
    return prefix.encode("utf-8")


@dataclass(frozen=True)
class Rewrite:
    """
    How a route changes the target it sends upstream.

    Filled from keys of a ``[route:NAME]`` section (see :meth:`from_config`):
    ``rewrite = REGEX REPLACEMENT`` -> ``pattern`` and ``replacement``;
    ``strip_prefix`` and ``add_prefix`` -> the fields of the same name.

    Steps, in order: the regex replaces the whole path when it matches it
    (``re.search`` on the path as received, so anchor it; the path is left
    alone when it does not match; a regex with ``\\?`` works on the whole
    target instead, see the module docstring); then ``strip_prefix`` is
    removed from the start of the path when it is there (literally:
    ``/api`` strips ``/apix`` to ``/x``; write ``/api/`` to strip whole
    segments only); then ``add_prefix`` is put in front (``/v2`` and
    ``/v2/`` both turn ``/x`` into ``/v2/x``).  The path always starts with
    ``/``.  Raises ``ValueError`` for a bad regex, template or prefix.
    """

    pattern: str = ""
    replacement: str = ""
    strip_prefix: str = ""
    add_prefix: str = ""
    _regex: re.Pattern[bytes] | None = field(init=False, repr=False, compare=False)
    _template: Template = field(init=False, repr=False, compare=False)
    _strip: bytes = field(init=False, repr=False, compare=False)
    _add: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        regex = _compile("rewrite", self.pattern) if self.pattern else None
        if regex is not None and not self.replacement:
            raise ValueError(f"rewrite {self.pattern!r} needs a replacement")
        object.__setattr__(self, "_regex", regex)
        object.__setattr__(self, "_template", Template(self.replacement, regex))
        object.__setattr__(self, "_strip", _prefix("strip_prefix", self.strip_prefix))
        add = _prefix("add_prefix", self.add_prefix).rstrip(b"/")
        object.__setattr__(self, "_add", add)

    @classmethod
    def from_config(
        cls, rewrite: str = "", strip_prefix: str = "", add_prefix: str = ""
    ) -> Rewrite:
        """
        Build from the config values; ``rewrite`` is ``REGEX REPLACEMENT``.

        The replacement is the last word, so the regex may contain spaces.
        """
        pattern, _, replacement = rewrite.strip().rpartition(" ")
        if rewrite.strip() and not pattern.strip():
            raise ValueError(
                f"rewrite {rewrite!r} must be a regex and a replacement,"
                " separated by a space"
            )
        return cls(pattern.strip(), replacement, strip_prefix, add_prefix)

    def regex(self) -> re.Pattern[bytes] | None:
        """The compiled ``pattern``, for redirects that use its captures."""
        return self._regex


def rewrite_target(rule: Rewrite, target: bytes) -> bytes:
    """
    The target to send upstream for the origin-form ``target``, per ``rule``.

    The target ``*`` (OPTIONS) is returned unchanged.
    """
    if target == b"*":
        return target
    regex = rule._regex
    if regex is not None:
        subject, query = _subject(regex, target)
        match = regex.search(subject)
        if match is not None:
            target = _with_query(rule._template.expand(match), query)
    if not (rule._strip or rule._add) and target[:1] == b"/":
        return target
    path, separator, query = target.partition(b"?")
    if rule._strip and path.startswith(rule._strip):
        path = path[len(rule._strip) :]
    if path[:1] != b"/":
        path = b"/" + path
    return rule._add + path + separator + query


@dataclass(frozen=True)
class Redirect:
    """
    A route that answers with a redirect instead of proxying.

    Filled from keys of a ``[route:NAME]`` section:

    - ``redirect`` -> ``location``: the target template, absolute
      (``https://new.example/$1``) or not (``/new/$1``); its captures come
      from ``pattern``, and the query is carried over as for ``rewrite``.
    - ``redirect_status`` -> ``status``: 301, 302 (the default), 307 or 308.
    - ``https_redirect`` -> ``https``: redirect to ``https://`` on the same
      host (port dropped) and target; excludes ``redirect``.
    - ``https_port`` -> ``https_port``: the port to put in that URL (none,
      or 443, leaves it out).
    - ``pattern``: not a key of its own; the loader passes the regex of the
      route's ``rewrite`` if it has one, else its ``path_regex``.

    Raises ``ValueError`` for a bad status, template or combination.
    """

    status: int = 302
    location: str = ""
    https: bool = False
    https_port: int | None = None
    pattern: str = ""
    _regex: re.Pattern[bytes] | None = field(init=False, repr=False, compare=False)
    _template: Template = field(init=False, repr=False, compare=False)
    _port: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.status not in _REDIRECT_STATUSES:
            raise ValueError(
                f"redirect_status {self.status} must be one of 301, 302, 307, 308"
            )
        if self.https == bool(self.location):
            raise ValueError("a redirect needs exactly one of redirect, https_redirect")
        if self.https_port is not None and not 0 < self.https_port < 65536:
            raise ValueError(f"https_port {self.https_port} is not a port")
        regex = _compile("regex", self.pattern) if self.pattern else None
        port = b"" if self.https_port in (None, 443) else b":%d" % self.https_port
        object.__setattr__(self, "_regex", regex)
        object.__setattr__(self, "_template", Template(self.location, regex))
        object.__setattr__(self, "_port", port)


def redirect_response(
    rule: Redirect, head: RequestHead, host: bytes | None
) -> LocalResponse:
    """
    The redirect answering ``head``, whose host (as received) is ``host``.

    A capture the template refers to is empty when ``rule.pattern`` does not
    match.  An https redirect without a host cannot name its target: the
    answer is then a 400.
    """
    if rule.https:
        if not host:
            return LocalResponse.text(400, "A Host is needed to redirect to https.")
        target = head.target if head.target[:1] == b"/" else b"/"
        location = b"https://" + host_key(host) + rule._port + target
    else:
        subject, query = _subject(rule._regex, head.target)
        match = rule._regex.search(subject) if rule._regex is not None else None
        location = _with_query(rule._template.expand(match), query)
    response = LocalResponse.text(
        rule.status, "Redirecting to " + location.decode("latin-1")
    )
    response.headers.add(b"Location", location)
    return response


@dataclass(frozen=True)
class LocationRewrite:
    """
    How a route maps the upstream's own URLs in responses back to public ones.

    Filled from keys of a ``[route:NAME]`` section:

    - ``location_rewrite`` -> ``enabled`` (bool, default yes).
    - ``location_rewrite_hosts`` -> ``upstream_hosts``: more authorities
      (``users.internal``, ``backend:8080``) the upstream may call itself,
      beside the server's address and the Host sent to it, which the caller
      gives for each response.
    - ``strip_prefix`` and ``add_prefix`` -> the fields of the same name, the
      route's :class:`Rewrite` prefixes, undone here: ``add_prefix`` is
      removed from the path (a path without it is not ours to map and is left
      alone), then ``strip_prefix`` is put back.

    A URL (``http`` or ``https``, or ``//authority``) whose authority is one of
    the upstream's becomes the public scheme and host with the mapped path;
    any other absolute URL is left alone; a path (``/x``) only has its prefix
    mapped; a relative reference (``x``, ``../x``) is left alone.
    """

    enabled: bool = True
    upstream_hosts: tuple[str, ...] = ()
    strip_prefix: str = ""
    add_prefix: str = ""
    _hosts: tuple[bytes, ...] = field(init=False, repr=False, compare=False)
    _strip: bytes = field(init=False, repr=False, compare=False)
    _add: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        hosts = tuple(host.strip().encode("utf-8") for host in self.upstream_hosts)
        if any(not host or b"/" in host for host in hosts):
            raise ValueError(
                "location_rewrite_hosts must be host[:port] values, without"
                " scheme or path"
            )
        strip = _prefix("strip_prefix", self.strip_prefix).rstrip(b"/")
        add = _prefix("add_prefix", self.add_prefix).rstrip(b"/")
        object.__setattr__(self, "_hosts", hosts)
        object.__setattr__(self, "_strip", strip)
        object.__setattr__(self, "_add", add)


def _authority_key(authority: bytes, scheme: bytes) -> bytes:
    """An authority as compared: lower case, without the scheme's default port."""
    lowered = authority.lower()
    name, colon, port = lowered.rpartition(b":")
    if colon and not name.endswith(b"]") and b":" in name:
        return lowered  # a bare IPv6 address: every colon is its own
    if colon and (not port or port == _DEFAULT_PORTS.get(scheme)):
        return name
    return lowered


class _LocationMapping:
    """One response's mapping from upstream URLs to public ones."""

    __slots__ = ("_keys", "_public_base", "_rule")

    def __init__(
        self,
        rule: LocationRewrite,
        upstream_authorities: Sequence[bytes],
        public_base: bytes,
    ) -> None:
        self._rule = rule
        self._public_base = public_base
        authorities = [*upstream_authorities, *rule._hosts]
        self._keys = {
            scheme: {_authority_key(authority, scheme) for authority in authorities}
            for scheme in _HTTP_SCHEMES
        }

    def public_path(self, path: bytes) -> bytes:
        """Undo the prefixes of a path (with query); unchanged if not ours."""
        rule = self._rule
        if rule._add:
            after = path[len(rule._add) : len(rule._add) + 1]
            if not path.startswith(rule._add) or after not in (b"", b"/", b"?", b"#"):
                return path
            path = path[len(rule._add) :]
            if path[:1] != b"/":
                path = b"/" + path
        return rule._strip + path

    def public_url(self, url: bytes) -> bytes:
        """The public form of a URL from a Location-like field."""
        scheme, separator, rest = url.partition(b"://")
        if separator:
            scheme = scheme.lower()
            if scheme not in _HTTP_SCHEMES:
                return url
        elif url.startswith(b"//"):
            scheme, rest = b"http", url[2:]
        elif url.startswith(b"/"):
            return self.public_path(url)
        else:
            return url
        end = len(rest)
        for delimiter in (b"/", b"?", b"#"):
            found = rest.find(delimiter, 0, end)
            if found >= 0:
                end = found
        if _authority_key(rest[:end], scheme) not in self._keys[scheme]:
            return url
        path = rest[end:]
        if path[:1] != b"/":
            path = b"/" + path
        return self._public_base + self.public_path(path)

    def public_refresh(self, value: bytes) -> bytes:
        """A ``Refresh`` value with its URL made public."""
        parsed = _REFRESH.fullmatch(value)
        if parsed is None:
            return value
        lead, url = parsed.groups()
        quote = url[:1]
        if quote in (b"'", b'"') and len(url) > 1 and url.endswith(quote):
            return lead + quote + self.public_url(url[1:-1]) + quote
        return lead + self.public_url(url)


def rewrite_locations(
    headers: Headers,
    rule: LocationRewrite,
    *,
    upstream_authorities: Sequence[bytes],
    public_scheme: bytes,
    public_host: bytes | None,
) -> Headers:
    """
    ``headers`` with ``Location``, ``Content-Location`` and ``Refresh`` public.

    :param upstream_authorities: the ``host[:port]`` values the upstream may
        put in its URLs: the server's address and the Host sent to it.
    :param public_scheme: the scheme the client used, ``b"http"`` or ``b"https"``.
    :param public_host: the host the client used (as received); when ``None``,
        mapped URLs are written as paths, which clients resolve against the
        URL they asked for.

    Returns ``headers`` itself when nothing changes, else new Headers.
    """
    if not rule.enabled:
        return headers
    pairs = headers.pairs
    mapping: _LocationMapping | None = None
    changed: list[tuple[bytes, bytes]] | None = None
    for index, (name, value) in enumerate(pairs):
        lname = name.lower()
        if lname not in LOCATION_FIELDS:
            continue
        if mapping is None:
            base = public_scheme + b"://" + public_host if public_host else b""
            mapping = _LocationMapping(rule, upstream_authorities, base)
        if lname == b"refresh":
            public = mapping.public_refresh(value)
        else:
            public = mapping.public_url(value.strip())
        if public != value:
            if changed is None:
                changed = list(pairs)
            changed[index] = (name, public)
    return headers if changed is None else Headers(changed)
