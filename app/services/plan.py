"""What an archive of an order will hold, decided before the first byte.

`plan_batch` reads the order, decides which images can be delivered (status `processed`), and
gives every image its safe, unique entry name; `render_report` writes `_download_report.txt`,
the list of skipped images; `archive_entries` lists the entries an archive of recorded images
has (for its size). All of it is a pure function of the order and the options.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime

from app.services.manifest import Record
from app.services.naming import extension_for_format, safe_entry_names
from app.upstream.models import Image, Order
from app.upstream.options import DownloadOptions

REPORT_NAME = "_download_report.txt"
# Entry time when neither the image nor the order carries one (the DOS epoch).
FALLBACK_TIME = datetime(1980, 1, 1, tzinfo=UTC)


class UnknownImages(ValueError):
    """A selection names images that are not in the order; `image_ids` lists them."""

    def __init__(self, image_ids: list[str]) -> None:
        super().__init__("not in this order: " + ", ".join(image_ids))
        self.image_ids = image_ids


class NothingToDeliver(Exception):
    """No image of the order could be delivered; `failures` says why for each."""

    def __init__(self, failures: list[Skipped]) -> None:
        super().__init__(f"none of {len(failures)} images could be delivered")
        self.failures = failures


@dataclass(frozen=True, slots=True)
class PlannedImage:
    image: Image
    entry_name: str
    ready: bool


@dataclass(frozen=True, slots=True)
class Skipped:
    image_id: str
    image_name: str | None
    reason: str


@dataclass(slots=True)
class BatchPlan:
    """What an archive of an order will hold, decided before the first byte."""

    order: Order
    options: DownloadOptions
    images: list[PlannedImage]

    @property
    def deliverable(self) -> list[PlannedImage]:
        return [p for p in self.images if p.ready]

    @property
    def not_ready(self) -> list[Skipped]:
        return [
            Skipped(p.image.image_id, p.image.image_name, p.image.not_ready_reason)
            for p in self.images
            if not p.ready
        ]

    @property
    def modified(self) -> datetime:
        """The archive's own time: the order's last change (never the time of the request)."""
        return self.order.last_updated_at or self.order.created_at or FALLBACK_TIME

    def entry_time(self, image: Image) -> datetime:
        return image.added_at or self.modified


def plan_batch(order: Order, options: DownloadOptions) -> BatchPlan:
    """Name every image of `order` and mark which can be downloaded now.

    With a selection (`options.images`) the plan holds just those images, in the order's own
    order. Entry names are given over the whole order first, so an image has the same name in
    a selection's archive as in the full one.

    Raises:
        UnknownImages: the selection names ids the order does not hold (before any fetch).
    """
    extension = extension_for_format(options.format)
    names = safe_entry_names(
        [(img.image_name, img.image_id) for img in order.images],
        extension=extension,
        reserved=[REPORT_NAME],
    )
    planned = [
        PlannedImage(image=img, entry_name=name, ready=img.is_ready)
        for img, name in zip(order.images, names, strict=True)
    ]
    if options.images is not None:
        held = {p.image.image_id for p in planned}
        unknown = [image_id for image_id in options.images if image_id not in held]
        if unknown:
            raise UnknownImages(unknown)
        chosen = set(options.images)
        planned = [p for p in planned if p.image.image_id in chosen]
    return BatchPlan(order=order, options=options, images=planned)


def archive_entries(plan: BatchPlan, records: list[Record]) -> list[tuple[str, int]]:
    """(name, size) of every entry of the archive whose deliverable images are `records`."""
    entries = [(r.name, r.size) for r in records if r.skipped is None]
    skipped = plan.not_ready + [
        Skipped(r.image_id, _image_name(plan, r.image_id), r.skipped)
        for r in records
        if r.skipped is not None
    ]
    if skipped:
        entries.append((REPORT_NAME, len(render_report(plan, skipped))))
    return entries


def _image_name(plan: BatchPlan, image_id: str) -> str | None:
    for planned in plan.images:
        if planned.image.image_id == image_id:
            return planned.image.image_name
    return None


def render_report(plan: BatchPlan, skipped: list[Skipped]) -> bytes:
    """The text of `_download_report.txt`: every skipped image, why, and how to recover.

    Deterministic: the same order state gives the same text (no clock in it). Names, ids and
    reasons come from the upstream, so each is written on its own line with every line
    break and control character escaped (see `printable`): one name cannot forge lines.
    """
    order = plan.order
    order_id = printable(order.order_id)
    lines = [
        f"Download report for order {order_id}"
        + (f" ({printable(order.name)})" if order.name else ""),
        "",
        f"{len(plan.images) - len(skipped)} of {len(plan.images)} images are in this archive.",
        f"{len(skipped)} could not be included:",
        "",
    ]
    for item in skipped:
        name = printable(item.image_name) if item.image_name else "(no name)"
        lines.append(f"- {printable(item.image_id)}  {name}")
        lines.append(f"    reason: {printable(item.reason)}")
    lines += [
        "",
        "How to recover:",
        "- Images that are still processing: wait until the order is processed, then download",
        f"  the batch again: GET /orders/{order_id}/images",
        "- Images that failed to download: retry the batch; the download is deterministic, so",
        "  the images that were already fine come out identical.",
        "- One image alone: GET /v3/images/<image id>/enhanced on the Autoenhance API.",
        "",
    ]
    return "\n".join(lines).encode("utf-8")


# Characters that end, rewrite or reorder a line: C0/C1 controls and DEL, format characters
# (bidirectional overrides among them), line and paragraph separators, lone surrogates.
_UNPRINTABLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
# Format characters that scripts need inside words (Persian, Indic, emoji sequences).
_JOINERS = frozenset("\u200c\u200d")
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    """`text` on one line: line breaks and control characters as Python-style escapes."""
    out = []
    for char in text:
        if unicodedata.category(char) not in _UNPRINTABLE_CATEGORIES or char in _JOINERS:
            out.append(char)
        elif char in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[char])
        else:
            out.append(char.encode("unicode_escape").decode("ascii"))
    return "".join(out)
