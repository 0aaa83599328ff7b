"""
HTTP message heads as plain values: headers as an ordered list of pairs.

Header names and values, methods and targets are ``bytes``, as they are on the
wire (and as in Twisted).  The methods that take a name or value also accept a
``str``, encoded as ISO-8859-1.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

HeaderPair = tuple[bytes, bytes]


def to_bytes(value: bytes | str) -> bytes:
    """Return ``value`` as bytes; a ``str`` is encoded as ISO-8859-1."""
    if isinstance(value, bytes):
        return value
    return value.encode("iso-8859-1")


class Headers:
    """
    Header fields in their received order, repeats kept.

    Name comparisons ignore case; the stored name keeps the case it came with.
    """

    __slots__ = ("pairs",)

    def __init__(self, pairs: Iterable[HeaderPair] = ()) -> None:
        self.pairs: list[HeaderPair] = list(pairs)

    def __iter__(self) -> Iterator[HeaderPair]:
        return iter(self.pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            name = name.encode("iso-8859-1")
        elif not isinstance(name, bytes):
            return False
        wanted = name.lower()
        for key, _ in self.pairs:
            if key.lower() == wanted:
                break
        else:
            return False
        return True

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self.pairs == other.pairs

    def __repr__(self) -> str:
        return f"Headers({self.pairs!r})"

    # get and get_all run several times per proxied request: they inline
    # to_bytes and loop without a comprehension (one call each, no more).

    def get(self, name: bytes | str, default: bytes | None = None) -> bytes | None:
        """Return the first value of ``name``, or ``default``."""
        wanted = (
            name if isinstance(name, bytes) else name.encode("iso-8859-1")
        ).lower()
        for key, value in self.pairs:
            if key.lower() == wanted:
                return value
        return default

    def get_all(self, name: bytes | str) -> list[bytes]:
        """Return every value of ``name``, in order."""
        wanted = (
            name if isinstance(name, bytes) else name.encode("iso-8859-1")
        ).lower()
        values = []
        for key, value in self.pairs:
            if key.lower() == wanted:
                values.append(value)
        return values

    def add(self, name: bytes | str, value: bytes | str) -> None:
        """Append a field, keeping any fields of the same name."""
        self.pairs.append((to_bytes(name), to_bytes(value)))

    def set(self, name: bytes | str, value: bytes | str) -> None:
        """Replace every field of ``name`` with one field holding ``value``."""
        self.remove(name)
        self.add(name, value)

    def remove(self, name: bytes | str) -> int:
        """Remove every field of ``name``; return how many were removed."""
        wanted = to_bytes(name).lower()
        kept = [pair for pair in self.pairs if pair[0].lower() != wanted]
        removed = len(self.pairs) - len(kept)
        if removed:
            self.pairs[:] = kept
        return removed

    def copy(self) -> Headers:
        """Return an independent copy."""
        return headers_of(self.pairs[:])


def headers_of(pairs: list[HeaderPair]) -> Headers:
    """
    Headers holding ``pairs`` itself, not a copy of it.

    For code that has just built the list: the constructor would copy it.
    """
    headers = Headers.__new__(Headers)
    headers.pairs = pairs
    return headers


class RequestHead:
    """
    A request line and its header fields; request filters may change any of it.

    :ivar method: e.g. ``b"GET"``.
    :ivar target: the request target as sent, e.g. ``b"/v1/users?page=2"``.
    :ivar version: ``b"1.1"`` or ``b"1.0"``.
    :ivar headers: the header fields.
    """

    __slots__ = ("headers", "method", "target", "version")

    def __init__(
        self,
        method: bytes,
        target: bytes,
        headers: Headers | None = None,
        version: bytes = b"1.1",
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers if headers is not None else Headers()

    @property
    def path(self) -> bytes:
        """The target without its query."""
        return self.target.partition(b"?")[0]

    @property
    def query(self) -> bytes:
        """The query (after ``?``), or ``b""``."""
        return self.target.partition(b"?")[2]

    def __repr__(self) -> str:
        return f"RequestHead({self.method!r}, {self.target!r}, {self.headers!r})"


class ResponseHead:
    """
    A status line and its header fields; response filters may change any of it.

    :ivar status: the status code, e.g. ``200``.
    :ivar reason: the reason phrase, e.g. ``b"OK"``.
    :ivar headers: the header fields.
    :ivar version: the version the upstream spoke, e.g. ``b"1.1"``.
    """

    __slots__ = ("headers", "reason", "status", "version")

    def __init__(
        self,
        status: int,
        reason: bytes = b"",
        headers: Headers | None = None,
        version: bytes = b"1.1",
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers if headers is not None else Headers()
        self.version = version

    def __repr__(self) -> str:
        return f"ResponseHead({self.status!r}, {self.headers!r})"


class LocalResponse:
    """
    An answer made by edgeproxy itself (an error, a redirect, a filter's refusal).

    The body is small and whole; ``Content-Length`` is added when it is sent.

    :ivar reason: why edgeproxy answered, for the access log (``None``: the
        status says it all, as for a redirect).
    """

    __slots__ = ("body", "headers", "reason", "status")

    def __init__(
        self,
        status: int,
        body: bytes = b"",
        headers: Headers | None = None,
        reason: str | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.headers = headers if headers is not None else Headers()
        self.reason = reason

    @classmethod
    def text(cls, status: int, message: str) -> LocalResponse:
        """
        A ``text/plain`` answer with ``message`` and a newline as its body;
        ``message`` is its reason too.
        """
        return cls(
            status,
            message.encode("utf-8") + b"\n",
            Headers([(b"Content-Type", b"text/plain; charset=utf-8")]),
            reason=message,
        )

    def __repr__(self) -> str:
        return f"LocalResponse({self.status!r}, {self.body!r})"
