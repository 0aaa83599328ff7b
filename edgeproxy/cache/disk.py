"""
A cache store in a directory: survives restarts, bounded in bytes (LRU).

Layout under the store's directory::

    tmp/                     files being written (emptied at startup)
    bodies/ab/<token>        one body; the name is random
    entries/cd/<hash>.meta   one entry's metadata (JSON), naming its body;
                             <hash> is of the primary key and the variant

A body is written to ``tmp/``, then renamed into ``bodies/``; then the
metadata is written to ``tmp/`` and renamed over ``entries/.../<hash>.meta``.
That last rename is the commit: an entry is either wholly there or absent,
whatever moment a crash comes.  At startup the index is rebuilt by reading
every metadata file; one that does not parse, whose hash does not match its
name, or whose body is missing or of another size is deleted, and so are
bodies no metadata names.  No ``fsync``: after a power loss the filesystem
may keep a renamed file empty, which the size check catches.

The store does its file I/O in the reactor thread, synchronously.  Each call
is small and bounded: ``write`` appends one received piece, ``read`` reads
at most :data:`~edgeproxy.cache.store.CHUNK_SIZE` bytes, a commit is two
renames and one small file; they go to the page cache, so they take
microseconds on a local disk.  Handing them to a thread pool would cost a
``Deferred`` and a thread hop per piece and force ordering of the writes of
one file, for no gain on a local disk.  Do not put the directory on a
network filesystem (a stall there stalls the reactor); use the memory store
there.  The startup scan runs once, when the store is built, before the
reactor serves.  One directory belongs to one process: worker processes
need a directory each.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from pathlib import Path
from typing import IO, Any

from twisted.logger import Logger

from edgeproxy.cache.body_writer import BodyWriter
from edgeproxy.cache.store import (
    CHUNK_SIZE,
    IndexedStore,
    StoreEntry,
    WriteClaim,
)
from edgeproxy.core.caching.stored_response import StoredResponse
from edgeproxy.core.message import Headers

log = Logger()

_FORMAT = 1


def _text(value: bytes) -> str:
    """Bytes as a JSON string, losslessly."""
    return value.decode("latin-1")


def _bytes(value: object) -> bytes:
    """A JSON string back to bytes; ``ValueError`` when it is not one."""
    if not isinstance(value, str):
        raise ValueError("not a string")
    return value.encode("latin-1")


def _number(value: object) -> float:
    """A JSON number; ``ValueError`` when it is not one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("not a number")
    return float(value)


def entry_hash(key: bytes, variant: bytes) -> str:
    """The name of an entry's metadata file."""
    return hashlib.sha256(b"%d:%s%s" % (len(key), key, variant)).hexdigest()


def _remove(path: Path) -> None:
    """Delete ``path`` if it is there."""
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as error:
        log.warn("cache: cannot delete {path}: {error}", path=path, error=error)


class DiskReader:
    """One body file, read in pieces, exactly ``size`` bytes."""

    def __init__(self, file: IO[bytes], size: int) -> None:
        self.size = size
        self._file: IO[bytes] | None = file
        self._left = size

    def read(self) -> bytes:
        """The next piece, ``b""`` at the end; ``OSError`` when the file is short."""
        if self._file is None:
            return b""
        if self._left == 0:
            self.close()
            return b""
        piece = self._file.read(min(CHUNK_SIZE, self._left))
        if not piece:
            self.close()
            raise OSError("cached body is shorter than recorded")
        self._left -= len(piece)
        return piece

    def close(self) -> None:
        """Close the file."""
        if self._file is not None:
            self._file.close()
            self._file = None


class DiskWriter(BodyWriter["DiskCacheStore"]):
    """A body written to a temporary file until it is committed."""

    def __init__(
        self,
        store: DiskCacheStore,
        key: bytes,
        response: StoredResponse,
        claim: WriteClaim,
    ) -> None:
        super().__init__(store, key, response, claim)
        self._token = secrets.token_hex(16)
        self._path = store.root / "tmp" / (self._token + ".body")
        self._file: IO[bytes] | None = None

    def _keep(self, data: bytes) -> bool:
        """Append ``data`` to the temporary file; ``False`` on a disk error."""
        try:
            if self._file is None:
                self._file = self._path.open("wb")
            self._file.write(data)
        except OSError as error:
            log.warn(
                "cache: cannot write {path}: {error}", path=self._path, error=error
            )
            return False
        return True

    def _publish(self) -> bool:
        """Rename the body into place, then commit its metadata."""
        relative = Path("bodies", self._token[:2], self._token)
        try:
            if self._file is None:
                self._file = self._path.open("wb")  # an empty body
            self._file.close()
            self._store.ensure_directory(relative.parent)
            self._path.replace(self._store.root / relative)
        except OSError as error:
            log.warn(
                "cache: cannot store {path}: {error}", path=self._path, error=error
            )
            _remove(self._path)
            return False
        entry = StoreEntry(
            self._key, self._response, self._claim.tags, self._size, 0, str(relative)
        )
        committed = self._store.write_metadata(entry)
        if committed is None:
            _remove(self._store.root / relative)
            return False
        return self._store._insert(committed)

    def _drop_partial(self) -> None:
        """Delete the partial body."""
        if self._file is not None:
            self._file.close()
            self._file = None
            _remove(self._path)


class DiskCacheStore(IndexedStore[str]):
    """
    Stored responses in files under ``root``, at most ``max_size`` bytes.

    The payload of an entry is its body's path relative to ``root``.  Building
    the store creates the directory if needed and rebuilds the index from it.

    :param root: the store's directory.
    :param max_size: the bound on stored bytes (bodies and metadata files).
    :param max_object_size: the largest body stored.
    """

    writer_type = DiskWriter

    def __init__(self, root: str | Path, max_size: int, max_object_size: int) -> None:
        super().__init__(max_size, max_object_size)
        self.root = Path(root)
        for name in ("tmp", "bodies", "entries"):
            (self.root / name).mkdir(parents=True, exist_ok=True)
        self._load()

    def ensure_directory(self, relative: Path) -> None:
        """Create a fan-out directory under ``root``."""
        (self.root / relative).mkdir(parents=True, exist_ok=True)

    def _metadata_path(self, key: bytes, variant: bytes) -> Path:
        """Where the metadata of ``key`` and ``variant`` lives."""
        name = entry_hash(key, variant)
        return self.root / "entries" / name[:2] / (name + ".meta")

    def write_metadata(self, entry: StoreEntry[str]) -> StoreEntry[str] | None:
        """
        Commit ``entry``'s metadata (temporary file, then rename).

        Returns the entry with its cost (body and metadata bytes), or ``None``
        when it could not be written.
        """
        response = entry.response
        document = {
            "format": _FORMAT,
            "key": _text(entry.key),
            "variant": _text(response.variant),
            "status": response.status,
            "reason": _text(response.reason),
            "headers": [[_text(n), _text(v)] for n, v in response.headers.pairs],
            "request_time": response.request_time,
            "response_time": response.response_time,
            "tags": sorted(_text(tag) for tag in entry.tags),
            "body": entry.payload,
            "size": entry.body_size,
        }
        data = json.dumps(document).encode("ascii")
        path = self._metadata_path(entry.key, response.variant)
        temporary = self.root / "tmp" / (secrets.token_hex(16) + ".meta")
        try:
            path.parent.mkdir(exist_ok=True)
            temporary.write_bytes(data)
            temporary.replace(path)
        except OSError as error:
            log.warn("cache: cannot write {path}: {error}", path=path, error=error)
            _remove(temporary)
            return None
        return entry.with_response(response, entry.body_size + len(data))

    def open_reader(self, key: bytes, variant: bytes) -> DiskReader | None:
        """The body of one entry, or ``None`` (dropping it if its file is gone)."""
        entry = self._find(key, variant)
        if entry is None:
            return None
        try:
            file = (self.root / entry.payload).open("rb")
        except OSError as error:
            log.warn("cache: dropping {key!r}: {error}", key=key, error=error)
            self._drop(entry.ident)
            return None
        return DiskReader(file, entry.body_size)

    def _rewrite(
        self, entry: StoreEntry[str], response: StoredResponse
    ) -> StoreEntry[str] | None:
        """Write the new metadata; drop the old file when the variant moved."""
        rewritten = self.write_metadata(entry.with_response(response, 0))
        if rewritten is not None and response.variant != entry.response.variant:
            _remove(self._metadata_path(entry.key, entry.response.variant))
        return rewritten

    def _discard(self, entry: StoreEntry[str], replaced: bool) -> None:
        """Delete the body, and the metadata unless a newcomer now owns its name."""
        if not replaced:
            _remove(self._metadata_path(*entry.ident))
        _remove(self.root / entry.payload)

    # --- the startup scan -------------------------------------------------

    def _load(self) -> None:
        """Rebuild the index from the directory; delete what cannot be used."""
        for leftover in (self.root / "tmp").iterdir():
            _remove(leftover)
        by_body: dict[str, StoreEntry[str]] = {}
        for path in sorted((self.root / "entries").glob("*/*.meta")):
            entry = self._read_metadata(path)
            if entry is None:
                _remove(path)
                continue
            other = by_body.get(entry.payload)
            if other is not None:
                # Two files naming one body: a crash during a move; keep the newer.
                older, entry = sorted(
                    (other, entry), key=lambda e: e.response.response_time
                )
                _remove(self._metadata_path(*older.ident))
            by_body[entry.payload] = entry
        for body in (self.root / "bodies").glob("*/*"):
            if str(body.relative_to(self.root)) not in by_body:
                _remove(body)
        # The oldest first, so that the least recently validated go first.
        for entry in sorted(by_body.values(), key=lambda e: e.response.response_time):
            self._insert(entry)

    def _read_metadata(self, path: Path) -> StoreEntry[str] | None:
        """The entry a metadata file describes, or ``None`` when it is unusable."""
        try:
            data = path.read_bytes()
            document: Any = json.loads(data)
            if document.get("format") != _FORMAT:
                raise ValueError("unknown format")
            key = _bytes(document["key"])
            headers = Headers(
                (_bytes(name), _bytes(value)) for name, value in document["headers"]
            )
            response = StoredResponse(
                int(document["status"]),
                _bytes(document["reason"]),
                headers,
                _number(document["request_time"]),
                _number(document["response_time"]),
                _bytes(document["variant"]),
            )
            body = document["body"]
            size = int(document["size"])
            tags = frozenset(_bytes(tag) for tag in document["tags"])
            if (
                not isinstance(body, str)
                or Path(body).parts[:1] != ("bodies",)
                or ".." in Path(body).parts
                or path.name != entry_hash(key, response.variant) + ".meta"
                or (self.root / body).stat().st_size != size
            ):
                raise ValueError("does not match its body or its name")
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as error:
            log.warn("cache: ignoring {path}: {error}", path=path, error=error)
            return None
        return StoreEntry(key, response, tags, size, size + len(data), body)
