"""What an archive of an order will hold, decided before the first byte.

`plan_batch` reads the order, decides which images can be delivered (status `processed`), and
gives every image its safe, unique entry name (`naming`: the photos' own names, numbered in
shot order, or the order's address and a number); with `variants`, every deliverable image
becomes one entry per variant, `<label>/<name>`, image by image (so one fetch of an image
serves all its variants and is released before the next). `render_report` writes
`_download_report.txt`, the list of skipped images; `archive_entries` lists the entries an
archive of recorded entries has (for its size). All of it is a pure function of the order,
the options and the presets.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from app.archive.listing import MANIFEST_NAME, ListedFile, render_listing
from app.archive.manifest import Record
from app.archive.naming import (
    address_stem,
    extension_for_format,
    numbered_names,
    safe_entry_names,
)
from app.imaging.presets import Preset, parse_variants
from app.upstream.models import Image, Order
from app.upstream.options import DownloadOptions

REPORT_NAME = "_download_report.txt"
MEDIA_TYPES = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "avif": "image/avif",
    "jxl": "image/jxl",
}
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
class PlannedEntry:
    """One file of the archive: `image` as `variant` (None: as delivered) under `entry_name`;
    `source` numbers the deliverable image it is made from (entries of one image share it)."""

    image: Image
    entry_name: str
    variant: Preset | None
    source: int
    position: int  # the image's place in the order's shot order, from 1


@dataclass(frozen=True, slots=True)
class Skipped:
    image_id: str
    image_name: str | None
    reason: str


@dataclass(slots=True)
class BatchPlan:
    """What an archive of an order will hold, decided before the first byte.

    `entries` are the files the deliverable images become, in archive order: one per image,
    or with `variants` one per image and variant.
    """

    order: Order
    options: DownloadOptions
    images: list[PlannedImage]
    variants: tuple[Preset, ...] = ()
    entries: list[PlannedEntry] = field(init=False)

    def __post_init__(self) -> None:
        positions = {img.image_id: n for n, img in enumerate(self.order.images, start=1)}
        kinds: tuple[Preset | None, ...] = self.variants or (None,)
        self.entries = [
            PlannedEntry(
                image=planned.image,
                entry_name=planned.entry_name
                if variant is None
                else f"{variant.label}/{planned.entry_name}",
                variant=variant,
                source=source,
                position=positions.get(planned.image.image_id, 0),
            )
            for source, planned in enumerate(self.deliverable)
            for variant in kinds
        ]

    @property
    def deliverable(self) -> list[PlannedImage]:
        return [p for p in self.images if p.ready]

    @property
    def files(self) -> int:
        """Files the archive holds when nothing is skipped: each image once per variant."""
        return len(self.images) * max(1, len(self.variants))

    @property
    def fetch_options(self) -> DownloadOptions:
        """How each image is asked of the upstream: as the options say, or for variants the
        full-quality JPEG once for all of them (`preview=false`: with `dev_mode` too, which
        spends no credit), at no more pixels than the widest needs (as delivered when one of
        them is an original)."""
        if not self.variants:
            return self.options
        widths = [
            None if p.original else (p.long_edge or (p.box[0] if p.box else None))
            for p in self.variants
        ]
        max_width = None if None in widths else max(w for w in widths if w is not None)
        watermark = True if any(p.watermark for p in self.variants) else None
        return self.options.model_copy(
            update={
                "variants": None,
                "naming": "original",
                "manifest": False,
                "images": None,
                "preview": False,
                "max_width": max_width,
                "watermark": watermark,
            }
        )

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


def plan_batch(
    order: Order, options: DownloadOptions, *, presets: Mapping[str, Preset] | None = None
) -> BatchPlan:
    """Name every image of `order` and mark which can be downloaded now.

    With a selection (`options.images`) the plan holds just those images, in the order's own
    order. Entry names are given over the whole order first, so an image has the same name in
    a selection's archive as in the full one. `options.variants` are looked up in `presets`.

    Raises:
        UnknownImages: the selection names ids the order does not hold (before any fetch).
        Unprocessable: a variant is not one of `presets` (code `unknown_variant`).
        ValueError: variants without `presets` to look them up in.
    """
    variants: tuple[Preset, ...] = ()
    if options.variants:
        if presets is None:
            raise ValueError("variants need the presets they name")
        variants = parse_variants(",".join(options.variants), presets)
    extension = extension_for_format(options.format)
    items: list[tuple[str | None, str]]
    if options.naming == "original":
        items = [(img.image_name, img.image_id) for img in order.images]
    elif options.naming == "numbered":
        items = numbered_names([(img.image_name, img.image_id) for img in order.images])
    else:
        stem = address_stem(order.name, order.order_id)
        width = max(2, len(str(len(order.images))))
        items = [(f"{stem}-{n:0{width}d}", img.image_id) for n, img in enumerate(order.images, 1)]
    names = safe_entry_names(items, extension=extension, reserved=[REPORT_NAME, MANIFEST_NAME])
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
    return BatchPlan(order=order, options=options, images=planned, variants=variants)


def archive_entries(plan: BatchPlan, records: list[Record]) -> list[tuple[str, int]]:
    """(name, size) of every entry of the archive whose planned entries are `records`."""
    entries = [(r.name, r.size) for r in records if r.skipped is None]
    skipped = plan.not_ready + [
        Skipped(r.image_id, _image_name(plan, r.image_id), r.skipped)
        for r in records
        if r.skipped is not None
    ]
    if skipped:
        entries.append((REPORT_NAME, len(render_report(plan, skipped))))
    if plan.options.manifest:
        entries.append((MANIFEST_NAME, len(manifest_json(plan, records))))
    return entries


def manifest_json(plan: BatchPlan, records: list[Record]) -> bytes:
    """The text of `manifest.json` for an archive whose planned entries are `records`."""
    media_type = MEDIA_TYPES.get(plan.fetch_options.format, "application/octet-stream")
    files = [
        ListedFile(
            path=record.name,
            image_id=entry.image.image_id,
            image_name=entry.image.image_name,
            position=entry.position,
            variant=entry.variant.name if entry.variant else None,
            variant_label=entry.variant.label if entry.variant else None,
            media_type=media_type,
            size=record.size,
            width=record.width,
            height=record.height,
            sha256=record.sha256,
            skipped=record.skipped,
        )
        for entry, record in zip(plan.entries, records, strict=True)
    ]
    return render_listing(
        order_id=plan.order.order_id,
        order_name=plan.order.name,
        version=plan.order.version_marker[:16],  # as a pinned URL carries it
        files=files,
        not_ready=[(s.image_id, s.image_name, s.reason) for s in plan.not_ready],
    )


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
    if plan.variants:
        files = len(plan.images) * len(plan.variants)
        entry_skips = len(skipped) - len(plan.not_ready)
        counted = f"{len(plan.entries) - entry_skips} of {files} files are in this archive."
    else:
        counted = (
            f"{len(plan.images) - len(skipped)} of {len(plan.images)} images are in this archive."
        )
    lines = [
        f"Download report for order {order_id}"
        + (f" ({printable(order.name)})" if order.name else ""),
        "",
        counted,
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
