"""How a recipient's archive answers are counted on the stored record.

`verdict` decides, without changing anything, what an archive answer would be: a resume of an
archive this delivery has already served bytes of (never counted), a new download (counted
against `max_downloads`), refused past that limit, or gone. `admitted` applies the verdict to
the record (counters, events) and is run inside the store's atomic `update`, so that two
nodes admitting downloads at once count both. `add_served` adds the byte ranges written to the
recipient and makes the delivery `delivered` once they cover an archive. `admission` turns a
verdict into the answer the routes get, or the error they send.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from app.core.errors import Forbidden
from app.deliveries.errors import DeliveryGone, gone
from app.deliveries.models import Completion, DeliveryRecord, merged

Verdict = Literal["resume", "new", "refused", "gone"]


@dataclass(frozen=True, slots=True)
class Admission:
    """An archive answer the recipient may have: a new download (counted) or a resume."""

    resume: bool


def verdict(record: DeliveryRecord, *, etag: str, start: int | None) -> Verdict:
    """What an archive answer starting at byte `start` (None: the whole archive) of archive
    `etag` would be; changes nothing."""
    if record.revoked_at is not None or record.is_expired():
        return "gone"
    served = record.archive(etag)
    if start and served is not None and served.spans:
        return "resume"
    if record.max_downloads is not None and record.downloads_used >= record.max_downloads:
        return "refused"
    return "new"


def admitted(record: DeliveryRecord, *, etag: str, variant: str, start: int | None) -> Verdict:
    """The verdict, applied to `record`: a new download counted and its archive started, a
    resume or a refusal recorded as an event; nothing changes when gone."""
    found = verdict(record, etag=etag, start=start)
    if found == "resume":
        record.event("archive_resumed", variant=variant, bytes=start)
    elif found == "refused":
        record.event("download_refused", variant=variant)
    elif found == "new":
        record.downloads_used += 1
        record.started(etag, variant)
        record.event("archive_started", variant=variant, bytes=start or 0)
    return found


def admission(record: DeliveryRecord, found: Verdict) -> Admission:
    """The answer for `found`.

    Raises:
        Forbidden: the limit of whole downloads is reached (`download_limit`).
        DeliveryGone: the delivery expired or was revoked.
    """
    if found == "gone":
        gone(record)
        raise DeliveryGone("This delivery link is no longer valid.")
    if found == "refused":
        raise Forbidden(
            f"This link allowed {record.max_downloads} download(s) of the archive; all "
            "were used. A broken download can still be resumed.",
            code="download_limit",
        )
    return Admission(resume=found == "resume")


def add_served(
    record: DeliveryRecord,
    *,
    etag: str,
    variant: str,
    start: int,
    end: int,
    total: int | None,
) -> bool:
    """Add `[start, end)` of archive `etag` (`total` bytes, when known) to `record`; True
    when this made the delivery `delivered` (the first archive covered in full)."""
    archive = record.started(etag, variant)
    if total is not None:
        archive.total = total
    archive.spans = merged(archive.spans, start, end)
    if not archive.complete or record.completed is not None:
        return False
    assert archive.total is not None
    record.completed = Completion(at=time.time(), variant=variant, bytes=archive.total, etag=etag)
    record.event("archive_completed", variant=variant, bytes=archive.total)
    return True
