"""Create an Autoenhance order and put images in it: register and upload each, concurrently.

The order is created first (if that fails nothing exists upstream and the error propagates).
Then every image is registered (which answers with a pre-signed upload URL) and its bytes are
PUT there, at most `concurrency` images at a time. A failure of one image does not stop the
others: each outcome is reported (`ImageOutcome`), so the caller can say exactly which files
made it. Images are read into memory one upload at a time (the upstream client sends bytes, and
a retry must resend them), so memory is bounded by `concurrency` times the largest file.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from app.services.sniff import SNIFF_BYTES, sniff_image
from app.upstream.client import AutoenhanceClient
from app.upstream.errors import UpstreamError

logger = logging.getLogger("app.ordering")


@dataclass(frozen=True, slots=True)
class ImageUpload:
    """One image to put in the order: its name, declared type and a (blocking) reader."""

    filename: str
    content_type: str
    read: Callable[[], bytes]


@dataclass(frozen=True, slots=True)
class ImageOutcome:
    """What happened to one file: registered (`image_id`), uploaded, or why not."""

    file: str
    image_id: str | None
    uploaded: bool
    error: str | None


@dataclass(frozen=True, slots=True)
class CreatedOrder:
    order_id: str
    name: str | None
    images: list[ImageOutcome]

    @property
    def uploaded(self) -> int:
        return sum(1 for image in self.images if image.uploaded)

    @property
    def failed(self) -> int:
        return len(self.images) - self.uploaded


def uploads_from_paths(paths: Sequence[Path]) -> list[ImageUpload]:
    """Uploads for files on disk, typed by their content.

    Raises:
        OSError: a file cannot be read.
        ValueError: a file is not a supported image (the message names it).
    """
    uploads = []
    for path in paths:
        with path.open("rb") as handle:
            head = handle.read(SNIFF_BYTES)
        kind = sniff_image(head, filename=path.name)
        if kind is None:
            raise ValueError(f"{path.name} is not a supported image")
        uploads.append(ImageUpload(path.name, kind.content_type, path.read_bytes))
    return uploads


async def create_order_with_images(
    client: AutoenhanceClient,
    uploads: Sequence[ImageUpload],
    *,
    api_key: str | None,
    name: str | None,
    concurrency: int,
    on_done: Callable[[ImageOutcome], None] | None = None,
) -> CreatedOrder:
    """Create an order, then register and upload every image, `concurrency` at a time.

    Outcomes come back in the order of `uploads`. A failed image is reported, not raised.
    `on_done` is called with each outcome as it is known (for progress displays).

    Raises:
        UpstreamError: creating the order itself failed (nothing was created).
    """
    order = await client.create_order(api_key=api_key, name=name)
    semaphore = asyncio.Semaphore(concurrency)

    async def one(upload: ImageUpload) -> ImageOutcome:
        async with semaphore:
            outcome = await _put_image(client, upload, order_id=order.order_id, api_key=api_key)
        if on_done is not None:
            on_done(outcome)
        return outcome

    outcomes = await asyncio.gather(*(one(upload) for upload in uploads))
    created = CreatedOrder(order_id=order.order_id, name=order.name or name, images=outcomes)
    logger.info(
        "order created order=%s images=%d uploaded=%d failed=%d",
        created.order_id,
        len(outcomes),
        created.uploaded,
        created.failed,
        extra={
            "event": "order_created",
            "order_id": created.order_id,
            "uploaded": created.uploaded,
            "failed": created.failed,
        },
    )
    return created


async def _put_image(
    client: AutoenhanceClient, upload: ImageUpload, *, order_id: str, api_key: str | None
) -> ImageOutcome:
    try:
        registered = await client.register_image(
            api_key=api_key,
            order_id=order_id,
            image_name=upload.filename,
            content_type=upload.content_type,
        )
    except UpstreamError as exc:
        return ImageOutcome(upload.filename, None, False, f"registering failed: {exc.message}")
    try:
        content = await asyncio.to_thread(upload.read)
        await client.upload_image(registered.upload_url, content, content_type=upload.content_type)
    except UpstreamError as exc:
        error = f"uploading failed: {exc.message}"
        return ImageOutcome(upload.filename, registered.image_id, False, error)
    except OSError as exc:
        error = f"reading the file failed: {exc.strerror or type(exc).__name__}"
        return ImageOutcome(upload.filename, registered.image_id, False, error)
    return ImageOutcome(upload.filename, registered.image_id, True, None)
