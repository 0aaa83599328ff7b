"""Tests for edgeproxy.cache.disk: files that survive restarts, and bad files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from edgeproxy.cache.disk import DiskCacheStore, entry_hash
from edgeproxy.core.message import Headers
from tests.cache.test_cache_memory import KEY, OTHER, put, read, response


def _store(root: Path, max_size: int = 10**7) -> DiskCacheStore:
    """A disk store in ``root/cache``."""
    return DiskCacheStore(root / "cache", max_size, 10**6)


def _files(root: Path, folder: str) -> list[Path]:
    """The files under ``root/cache/folder``."""
    return sorted(
        path for path in (root / "cache" / folder).rglob("*") if path.is_file()
    )


def _metadata(root: Path, key: bytes = KEY, variant: bytes = b"") -> Path:
    """The metadata file of an entry."""
    name = entry_hash(key, variant)
    return root / "cache" / "entries" / name[:2] / (name + ".meta")


def test_survives_restart(tmp_path: Path) -> None:
    """Entries, variants, metadata and tags are all there after a restart."""
    store = _store(tmp_path)
    assert put(store, body=b"one", variant=b"v1", tags=[b"t"])
    assert put(store, body=b"two" * 50_000, variant=b"v2")
    assert put(store, OTHER, body=b"", tags=[b"t"])
    before = store.stats()
    again = _store(tmp_path)
    assert sorted(r.variant for r in again.variants(KEY)) == [b"v1", b"v2"]
    assert again.variants(OTHER) == [response()]
    assert read(again, variant=b"v1") == b"one"
    assert read(again, variant=b"v2") == b"two" * 50_000
    assert read(again, OTHER) == b""
    assert again.stats()[2:4] == before[2:4]
    assert again.purge_tag(b"t") == 2


def test_update_survives_restart(tmp_path: Path) -> None:
    """A freshened entry comes back with its new metadata, under its new variant."""
    store = _store(tmp_path)
    assert put(store, body=b"body", variant=b"v1")
    fresher = response(b"v2", time=5000.0, etag=b'"2"')
    assert store.update(KEY, b"v1", fresher)
    assert not _metadata(tmp_path, variant=b"v1").exists()
    again = _store(tmp_path)
    assert again.variants(KEY) == [fresher]
    assert read(again, variant=b"v2") == b"body"


def test_writes_are_atomic(tmp_path: Path) -> None:
    """A body being written lives in tmp/ only; a restart discards it."""
    store = _store(tmp_path)
    writer = store.open_writer(KEY, response())
    assert writer is not None
    assert writer.write(b"partial")
    assert _files(tmp_path, "entries") == []
    assert len(_files(tmp_path, "tmp")) == 1
    again = _store(tmp_path)
    assert again.variants(KEY) == []
    assert _files(tmp_path, "tmp") == []
    writer.abandon()


def test_no_files_left_behind(tmp_path: Path) -> None:
    """Replaced, removed, evicted and abandoned entries leave no file."""
    store = _store(tmp_path)
    assert put(store, body=b"old")
    assert put(store, body=b"new")
    assert read(store) == b"new"
    assert len(_files(tmp_path, "bodies")) == 1
    writer = store.open_writer(OTHER, response())
    assert writer is not None
    assert writer.write(b"partial")
    writer.abandon()
    assert store.remove(KEY) == 1
    for folder in ("bodies", "entries", "tmp"):
        assert _files(tmp_path, folder) == [], folder


def _corrupt_metadata(path: Path) -> None:
    """Unparsable JSON."""
    path.write_bytes(b'{"format": 1, "key": ')


def _other_name(path: Path) -> None:
    """Valid metadata under another entry's name."""
    path.rename(path.with_name("0" * 64 + ".meta"))


def _escaping_body(path: Path) -> None:
    """Metadata naming a file outside the store."""
    document = json.loads(path.read_bytes())
    document["body"] = "bodies/../../outside"
    document["size"] = 7
    path.write_text(json.dumps(document))


def _wrong_types(path: Path) -> None:
    """Metadata with fields of the wrong type."""
    document = json.loads(path.read_bytes())
    document["headers"] = "Cache-Control: max-age=60"
    path.write_text(json.dumps(document))


def _unknown_format(path: Path) -> None:
    """Metadata of a future format."""
    document = json.loads(path.read_bytes())
    document["format"] = 2
    path.write_text(json.dumps(document))


def _short_body(path: Path) -> None:
    """The body is shorter than recorded (a crash before the data reached disk)."""
    body = path.parents[2] / json.loads(path.read_bytes())["body"]
    body.write_bytes(b"hel")


def _missing_body(path: Path) -> None:
    """The body file is gone."""
    (path.parents[2] / json.loads(path.read_bytes())["body"]).unlink()


@pytest.mark.parametrize(
    "damage",
    [
        _corrupt_metadata,
        _other_name,
        _escaping_body,
        _wrong_types,
        _unknown_format,
        _short_body,
        _missing_body,
    ],
)
def test_damaged_entries_ignored(
    tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    """An entry that cannot be trusted is skipped at startup and its files deleted."""
    outside = tmp_path / "outside"
    outside.write_bytes(b"keep me")
    store = _store(tmp_path)
    assert put(store)
    assert put(store, OTHER, body=b"intact")
    damage(_metadata(tmp_path))
    again = _store(tmp_path)
    assert again.variants(KEY) == []
    assert read(again, OTHER) == b"intact"
    assert again.stats().entries == 1
    assert len(_files(tmp_path, "entries")) == 1
    assert len(_files(tmp_path, "bodies")) == 1
    assert outside.read_bytes() == b"keep me"


def test_orphan_bodies_deleted(tmp_path: Path) -> None:
    """A body no metadata names (a crash between the two renames) is deleted."""
    store = _store(tmp_path)
    assert put(store)
    _metadata(tmp_path).unlink()
    _store(tmp_path)
    assert _files(tmp_path, "bodies") == []


def test_two_metadata_for_one_body(tmp_path: Path) -> None:
    """A crash during a variant move leaves two names for one body: the newer wins."""
    store = _store(tmp_path)
    assert put(store, body=b"body", variant=b"v1")
    old = _metadata(tmp_path, variant=b"v1")
    saved = old.read_bytes()
    assert store.update(KEY, b"v1", response(b"v2", time=5000.0))
    old.write_bytes(saved)
    again = _store(tmp_path)
    assert [r.variant for r in again.variants(KEY)] == [b"v2"]
    assert not old.exists()
    assert read(again, variant=b"v2") == b"body"


def test_restart_with_smaller_bound(tmp_path: Path) -> None:
    """A store reopened with a smaller max_size evicts the least recently validated."""
    store = _store(tmp_path)
    for number, time in enumerate((3000.0, 1000.0, 2000.0)):
        key = b"http://app.example/%d" % number
        writer = store.open_writer(key, response(time=time))
        assert writer is not None
        assert writer.write(b"x" * 1000)
        assert writer.commit()
    cost = store.stats().stored_bytes // 3
    again = _store(tmp_path, max_size=2 * cost + 10)
    assert again.stats().entries == 2
    assert again.variants(b"http://app.example/1") == []
    assert len(_files(tmp_path, "bodies")) == 2


def test_body_deleted_while_indexed(tmp_path: Path) -> None:
    """A body deleted behind the store's back reads as a miss, and the entry goes."""
    store = _store(tmp_path)
    assert put(store)
    for body in _files(tmp_path, "bodies"):
        body.unlink()
    assert store.open_reader(KEY, b"") is None
    assert store.variants(KEY) == []
    assert not _metadata(tmp_path).exists()


def test_body_truncated_while_read(tmp_path: Path) -> None:
    """A body cut short behind the store's back fails the read, never sends less."""
    store = _store(tmp_path)
    assert put(store, body=b"x" * 100_000)
    (body,) = _files(tmp_path, "bodies")
    reader = store.open_reader(KEY, b"")
    assert reader is not None
    body.write_bytes(b"x" * 10)
    with pytest.raises(OSError, match="shorter"):
        while reader.read():
            pass
    reader.close()


def test_unwritable_store(tmp_path: Path) -> None:
    """A write that fails abandons the entry instead of raising."""
    store = _store(tmp_path)
    (tmp_path / "cache" / "tmp").rmdir()
    (tmp_path / "cache" / "tmp").write_bytes(b"not a directory")
    writer = store.open_writer(KEY, response())
    assert writer is not None
    assert not writer.write(b"data")
    assert not writer.commit()
    assert store.variants(KEY) == []


def test_metadata_format(tmp_path: Path) -> None:
    """Metadata is JSON holding every byte of the head losslessly."""
    store = _store(tmp_path)
    odd = response()
    odd.headers.add(b"X-Bytes", bytes(range(128, 256)))
    writer = store.open_writer(KEY, odd)
    assert writer is not None
    assert writer.commit()
    again = _store(tmp_path)
    (stored,) = again.variants(KEY)
    assert stored.headers == Headers(odd.headers.pairs)
