"""ArchiveCache: atomic commit, LRU eviction, and giving up quietly when the disk fails."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.services.cache import ArchiveCache, cache_key

WHEN = datetime(2025, 7, 5, 2, 27, 21, tzinfo=UTC)


def store(cache: ArchiveCache, key: str, data: bytes) -> None:
    writer = cache.writer(key, last_modified=WHEN, meta={"order_id": "o"})
    for start in range(0, len(data), 7):
        writer.write(data[start : start + 7])
    writer.commit_with(delivered=1, failed=0)


def test_commit_then_get(tmp_path: Path) -> None:
    cache = ArchiveCache(tmp_path, max_bytes=10_000)
    store(cache, "k1", b"archive bytes")
    hit = cache.get("k1")
    assert hit is not None
    assert hit.path.read_bytes() == b"archive bytes"
    assert hit.size == 13
    assert hit.last_modified == WHEN
    assert hit.meta["delivered"] == 1
    assert cache.get("missing") is None


def test_nothing_is_visible_before_commit_and_discard_leaves_nothing(tmp_path: Path) -> None:
    cache = ArchiveCache(tmp_path, max_bytes=10_000)
    writer = cache.writer("k", last_modified=WHEN, meta={})
    writer.write(b"half")
    assert cache.get("k") is None
    writer.discard()
    assert list(tmp_path.iterdir()) == []


def test_least_recently_used_is_evicted(tmp_path: Path) -> None:
    cache = ArchiveCache(tmp_path, max_bytes=250)
    store(cache, "a", b"a" * 100)
    store(cache, "b", b"b" * 100)
    os.utime(tmp_path / "a.zip", (1, 1))
    os.utime(tmp_path / "b.zip", (2, 2))
    assert cache.get("a") is not None  # a hit makes "a" the most recent
    store(cache, "c", b"c" * 100)
    assert cache.get("b") is None
    assert cache.get("a") is not None and cache.get("c") is not None


def test_disabled_cache_stores_nothing(tmp_path: Path) -> None:
    cache = ArchiveCache(tmp_path / "off", max_bytes=0)
    store(cache, "k", b"data")
    assert cache.get("k") is None
    assert not (tmp_path / "off").exists()


def test_full_disk_is_skipped_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = ArchiveCache(tmp_path, max_bytes=10_000)
    writer = cache.writer("k", last_modified=WHEN, meta={})

    class FullFile:
        def write(self, data: bytes) -> int:
            raise OSError(28, "No space left on device")

        def close(self) -> None:
            pass

    real = writer._file
    assert real is not None
    real.close()
    monkeypatch.setattr(writer, "_file", FullFile())
    with caplog.at_level(logging.WARNING, logger="app.cache"):
        writer.write(b"x")
    assert "No space left on device" in caplog.text
    assert not writer.active
    writer.commit()
    assert cache.get("k") is None
    assert [p for p in tmp_path.iterdir() if p.suffix == ".zip"] == []


def test_keys_separate_owners_options_and_versions() -> None:
    base = {"order_id": "o", "version": "v1", "options": "opt", "owner": "operator"}
    keys = {
        cache_key(**base),
        cache_key(**{**base, "owner": "byok:abc"}),
        cache_key(**{**base, "version": "v2"}),
        cache_key(**{**base, "options": "other"}),
    }
    assert len(keys) == 4
