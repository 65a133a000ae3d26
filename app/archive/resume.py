"""Where a recorded archive continues: replaying the records that end before an offset.

`position()` feeds the recorded entries that end before the offset into a `ZipWriter` (no
image is fetched: names, sizes and CRC-32s are all a header and the central directory need)
and says which entry spans the offset; `BatchArchive` produces the bytes from there on.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.archive.manifest import Record
from app.archive.plan import BatchPlan, Skipped
from app.archive.zipformat import ZipWriter


class ResumeMismatch(Exception):
    """This archive cannot continue the one its manifest describes.

    Raised when the offset lies past what the manifest covers, the plan no longer matches
    the records, a re-fetched image differs from its record (size or CRC-32) or cannot be
    fetched, or the images still to fetch exceed the bound of a resume. Before the first
    byte the caller answers with the whole current archive instead; after it the exception
    escapes the body and the connection is dropped.
    """


@dataclass(frozen=True, slots=True)
class ResumePoint:
    """Continue a recorded archive from byte `offset` (up to `end`, exclusive, if given).

    `prefetch` makes `start()` fetch every image still to come before it returns, so the
    archive's exact size is known before the first byte (needed when the manifest is not
    complete); `prefetch_max_bytes` bounds the spool that takes.
    """

    offset: int
    records: tuple[Record, ...]
    complete: bool
    end: int | None = None
    prefetch: bool = False
    prefetch_max_bytes: int = 0


@dataclass(frozen=True, slots=True)
class Position:
    """`first`: index (into the plan's deliverable images) of the entry spanning the offset,
    or of the next entry to produce; `skipped` and `delivered`: what the replay covered."""

    first: int
    skipped: list[Skipped]
    delivered: int


def position(plan: BatchPlan, resume: ResumePoint, writer: ZipWriter) -> Position:
    """Replay into `writer` the records of `resume` that end before its offset.

    Raises:
        ResumeMismatch: the records do not belong to this plan (other images or names), a
            complete record does not cover every deliverable image, or the offset lies beyond
            the bytes the records describe.
    """
    deliverable = plan.entries
    records = resume.records
    if len(records) > len(deliverable) or any(
        r.image_id != p.image.image_id or r.name != p.entry_name
        for r, p in zip(records, deliverable, strict=False)
    ):
        raise ResumeMismatch("the order's images no longer match the recorded archive")
    if resume.complete and len(records) != len(deliverable):
        raise ResumeMismatch("a complete record must cover every deliverable image")

    def replay(into: ZipWriter, index: int, record: Record) -> None:
        into.local_header(
            record.name,
            size=record.size,
            crc32=record.crc32,
            modified=plan.entry_time(deliverable[index].image),
        )
        into.data_written(record.size)

    probe = ZipWriter()
    spanning = len(records)
    for index, record in enumerate(records):
        if record.skipped is not None:
            continue
        replay(probe, index, record)
        if probe.offset > resume.offset:
            spanning = index
            break
    if spanning == len(records) and not resume.complete and probe.offset < resume.offset:
        raise ResumeMismatch("the offset lies beyond what the recorded archive covers")
    skipped: list[Skipped] = []
    delivered = 0
    for index in range(spanning):
        record = records[index]
        if record.skipped is not None:
            name = deliverable[index].image.image_name
            skipped.append(Skipped(record.image_id, name, record.skipped))
        else:
            replay(writer, index, record)
            delivered += 1
    return Position(first=spanning, skipped=skipped, delivered=delivered)
