"""Create an Autoenhance order and put images in it: register each in turn, upload concurrently.

The order is created first (if that fails nothing exists upstream and the error propagates).
Then the images are registered one after another, in the order the files were given: the API
lists an order's images in the order they were registered, so this is what keeps a shoot's
order (room-00, room-01, …) in the summary and in the ZIP. Registration answers with a
pre-signed upload URL; each image's bytes are PUT there as soon as it is registered, at most
`concurrency` uploads at a time, while the next images are being registered. Registering is a
small JSON call, so doing it in turn costs one round trip per image; the uploads, which move
the bytes, stay concurrent.

A failure of one image does not stop the others: each outcome is reported (`ImageOutcome`), so
the caller can say exactly which files made it. Images are read into memory one upload at a
time (the upstream client sends bytes, and a retry must resend them), so memory is bounded by
`concurrency` times the largest file.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from app.core.logging import log_event
from app.upstream.client import AutoenhanceClient
from app.upstream.errors import UpstreamError
from app.upstream.models import RegisteredImage
from app.upstream.sniff import SNIFF_BYTES, sniff_image

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
    """Create an order, register every image in the order given, upload `concurrency` at a time.

    The order lists its images in the order of `uploads`, and outcomes come back in that
    order. A failed image is reported, not raised. `on_done` is called with each outcome as
    it is known (for progress displays).

    Raises:
        UpstreamError: creating the order itself failed (nothing was created).
    """
    order = await client.create_order(api_key=api_key, name=name)
    semaphore = asyncio.Semaphore(concurrency)

    def report(outcome: ImageOutcome) -> ImageOutcome:
        if on_done is not None:
            on_done(outcome)
        return outcome

    async def upload_one(upload: ImageUpload, registered: RegisteredImage) -> ImageOutcome:
        async with semaphore:
            return report(await _upload(client, upload, registered))

    results: list[ImageOutcome | asyncio.Task[ImageOutcome]] = []
    async with asyncio.TaskGroup() as uploading:
        for upload in uploads:
            registered = await _register(client, upload, order_id=order.order_id, api_key=api_key)
            if isinstance(registered, ImageOutcome):
                results.append(report(registered))
            else:
                results.append(uploading.create_task(upload_one(upload, registered)))
    outcomes = [r.result() if isinstance(r, asyncio.Task) else r for r in results]
    created = CreatedOrder(order_id=order.order_id, name=order.name or name, images=outcomes)
    log_event(
        logger,
        "order_created",
        "order created order={order_id} images={images} uploaded={uploaded} failed={failed}",
        order_id=created.order_id,
        images=len(outcomes),
        uploaded=created.uploaded,
        failed=created.failed,
    )
    return created


async def _register(
    client: AutoenhanceClient, upload: ImageUpload, *, order_id: str, api_key: str | None
) -> RegisteredImage | ImageOutcome:
    """The registered image, or the outcome saying why it could not be registered."""
    try:
        return await client.register_image(
            api_key=api_key,
            order_id=order_id,
            image_name=upload.filename,
            content_type=upload.content_type,
        )
    except UpstreamError as exc:
        return ImageOutcome(upload.filename, None, False, f"registering failed: {exc.message}")


async def _upload(
    client: AutoenhanceClient, upload: ImageUpload, registered: RegisteredImage
) -> ImageOutcome:
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
