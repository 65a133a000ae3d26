"""The manifest of an archive: what each entry is, written to the store as the archive streams.

A manifest lists, for every deliverable image of a plan in archive order, either the entry it
became (name, size, CRC-32) or that it was skipped and why. Entry offsets are not stored: the
ZIP writer's output is a pure function of names, sizes, CRCs and times, so replaying the
records into a fresh `ZipWriter` gives every offset, and the central directory, exactly.

`complete` is set once every entry is recorded; what follows is the download report (which
is derived from the plan and the recorded skips) and the central directory.

The archive pipeline records an image as soon as it (and every image before it) is fetched,
in the background, and sends an entry's local header only once its record is saved; it marks
the manifest complete before the report or the central directory is sent. So whatever byte a
transfer breaks at, the manifest already describes every byte the client received, and a store
write overlaps the streaming of the entries before it instead of holding up the next header.

Storage: records are written in segments of `SEGMENT_ENTRIES` (`manifests/<key>.<n>.json`),
so each write rewrites at most one segment and an order of 10,000 images costs 10,000 small
writes, not 10,000 ever-growing ones. Each segment carries the id of the stream that wrote
it; a reader follows segments only while that id stays the same, so segments left by two
different streams of the same archive are never mixed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from app.storage import ArchiveStore

logger = logging.getLogger("app.downloads")

MANIFEST_FORMAT = 1
# Records per stored segment: a rewrite stays small (~60 KB at most) while an order of
# 10,000 images needs 20 reads to resume near its end.
SEGMENT_ENTRIES = 512
# A stored segment larger than this is not a segment this service wrote.
MAX_SEGMENT_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Record:
    """One planned entry: the file it became, or why it was skipped. An archive with a
    `manifest.json` also records each file's SHA-256 and pixels (which that file lists)."""

    image_id: str
    name: str
    size: int = 0
    crc32: int = 0
    skipped: str | None = None
    sha256: str | None = None
    width: int | None = None
    height: int | None = None

    def to_json(self) -> dict[str, Any]:
        if self.skipped is not None:
            return {"id": self.image_id, "name": self.name, "skip": self.skipped}
        data: dict[str, Any] = {
            "id": self.image_id,
            "name": self.name,
            "size": self.size,
            "crc": self.crc32,
        }
        if self.sha256 is not None:
            data.update(sha=self.sha256, w=self.width, h=self.height)
        return data

    @classmethod
    def from_json(cls, data: Any) -> Record:
        """Raises: ValueError, TypeError or KeyError for anything this service did not write."""
        image_id, name = data["id"], data["name"]
        if not isinstance(image_id, str) or not isinstance(name, str):
            raise TypeError("id and name must be strings")
        if "skip" in data:
            if not isinstance(data["skip"], str):
                raise TypeError("skip must be a string")
            return cls(image_id=image_id, name=name, skipped=data["skip"])
        size, crc = data["size"], data["crc"]
        if type(size) is not int or type(crc) is not int:
            raise TypeError("size and crc must be integers")
        if size < 0 or not 0 <= crc <= 0xFFFFFFFF:
            raise ValueError("size or crc out of range")
        sha, width, height = data.get("sha"), data.get("w"), data.get("h")
        if sha is not None and not (isinstance(sha, str) and len(sha) == 64):
            raise TypeError("sha must be 64 hex digits")
        if any(v is not None and type(v) is not int for v in (width, height)):
            raise TypeError("w and h must be integers")
        return cls(
            image_id=image_id,
            name=name,
            size=size,
            crc32=crc,
            sha256=sha,
            width=width,
            height=height,
        )


@dataclass(frozen=True, slots=True)
class Manifest:
    """The records of one archive as far as its stream got."""

    key: str
    stream: str
    records: tuple[Record, ...]
    complete: bool


def segment_key(key: str, number: int) -> str:
    return f"manifests/{key}.{number}.json"


async def read_manifest(store: ArchiveStore, key: str) -> Manifest | None:
    """The manifest of archive `key`, or None when there is none (or it cannot be read).

    Never raises for a missing, corrupt or foreign manifest: it simply ends where the
    readable, consistent part ends.
    """
    records: list[Record] = []
    stream: str | None = None
    complete = False
    number = 0
    while True:
        try:
            # Shielded: a read cancelled half-way (the client left) must still close its file.
            raw = await asyncio.shield(store.get_bytes(segment_key(key, number)))
        except Exception as exc:  # a store outage makes the archive unresumable, not a 500
            logger.warning("manifest of %s unreadable: %r", key[:16], exc)
            break
        segment = _parse_segment(raw, key=key, first=number * SEGMENT_ENTRIES)
        if segment is None or (stream is not None and segment[0] != stream):
            break
        stream, entries, complete = segment
        records.extend(entries)
        if complete or len(entries) < SEGMENT_ENTRIES:
            break
        number += 1
    if stream is None:
        return None
    return Manifest(key=key, stream=stream, records=tuple(records), complete=complete)


def _parse_segment(
    raw: bytes | None, *, key: str, first: int
) -> tuple[str, list[Record], bool] | None:
    if raw is None or len(raw) > MAX_SEGMENT_BYTES:
        return None
    try:
        data = json.loads(raw)
        if data["format"] != MANIFEST_FORMAT or data["key"] != key or data["first"] != first:
            return None
        stream, complete = data["stream"], data["complete"]
        if not isinstance(stream, str) or not isinstance(complete, bool):
            return None
        entries = [Record.from_json(item) for item in data["entries"]]
    except (ValueError, TypeError, KeyError):
        return None
    if len(entries) > SEGMENT_ENTRIES:
        return None
    return stream, entries, complete


class ManifestWriter:
    """Persists the records of one stream; `save()` writes only the segments that changed.

    Every segment it wrote is leased until `aclose()`, so eviction cannot remove the start of
    the manifest of an archive that is still streaming. A failing store does not fail the
    download: the writer logs once and stops writing, and a later resume finds the manifest
    as far as it got (which still describes the bytes it covers truthfully).
    """

    def __init__(self, store: ArchiveStore, key: str, *, stream: str, persisted: int = 0) -> None:
        self._store = store
        self._key = key
        self.stream = stream
        self._persisted = persisted  # records already stored by this stream
        self._complete_saved = False
        self._broken = False
        self._leases = contextlib.AsyncExitStack()
        self._leased: set[int] = set()

    async def aclose(self) -> None:
        """Release the leases on the segments (the manifest stays). Idempotent."""
        self._leased.clear()
        await self._leases.aclose()

    async def save(self, records: list[Record], *, complete: bool) -> None:
        if self._broken or (complete and self._complete_saved):
            return
        if len(records) == self._persisted and not complete:
            return
        first_segment = min(self._persisted, max(len(records) - 1, 0)) // SEGMENT_ENTRIES
        last_segment = max(len(records) - 1, 0) // SEGMENT_ENTRIES
        try:
            for number in range(first_segment, last_segment + 1):
                start = number * SEGMENT_ENTRIES
                chunk = records[start : start + SEGMENT_ENTRIES]
                body = {
                    "format": MANIFEST_FORMAT,
                    "key": self._key,
                    "stream": self.stream,
                    "first": start,
                    "complete": complete and number == last_segment,
                    "entries": [record.to_json() for record in chunk],
                }
                payload = json.dumps(body, separators=(",", ":")).encode()
                await self._store.put_bytes(segment_key(self._key, number), payload)
                if number not in self._leased:
                    self._leased.add(number)
                    await self._leases.enter_async_context(
                        self._store.lease(segment_key(self._key, number))
                    )
        except Exception as exc:
            self._broken = True
            logger.warning("manifest of %s not written: %r", self._key[:16], exc)
            return
        self._persisted = len(records)
        self._complete_saved = complete
