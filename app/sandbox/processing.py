"""The "enhancement" pipeline: waiting -> processing -> processed (or error), plus webhooks.

After an upload the image is `processing` for `processing_delay` seconds, then its bytes are
checked: undecodable uploads end in `error` with a `status_reason`, like a failed enhancement
upstream. `stuck` faults can hold an image in `processing` or force `error` instead.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import anyio.to_thread
import httpx

from app.sandbox.faults import FaultBook, StuckFault
from app.sandbox.imaging import UnreadableImage, probe
from app.sandbox.records import ImageRecord
from app.sandbox.store import Store

logger = logging.getLogger("app.sandbox")

# How often a held image re-checks whether its stuck fault was cleared.
HOLD_POLL_SECONDS = 0.05
WEBHOOK_TIMEOUT = httpx.Timeout(5.0)
INJECTED_ERROR_REASON = "Enhancement failed"


class WebhookSender:
    """POSTs upstream-shaped webhook events; failures are logged, never raised."""

    def __init__(self, url: str, auth: str | None) -> None:
        self._url = url
        self._headers = {"Authorization": auth} if auth else {}
        self._client: httpx.AsyncClient | None = None

    async def send(self, event: dict[str, Any]) -> None:
        if self._client is None:
            # Created lazily: in-process use (ASGITransport) may never run the lifespan.
            self._client = httpx.AsyncClient(
                timeout=WEBHOOK_TIMEOUT, headers={"User-Agent": "autoenhance-sandbox"}
            )
        try:
            response = await self._client.post(self._url, json=event, headers=self._headers)
            if response.status_code >= 400:
                logger.warning("webhook answered %s", response.status_code)
        except httpx.HTTPError as exc:
            logger.warning("webhook delivery failed: %r", exc)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class Processor:
    """Runs each uploaded image through processing on the event loop."""

    def __init__(
        self,
        *,
        store: Store,
        faults: FaultBook,
        delay: float,
        webhooks: WebhookSender | None,
    ) -> None:
        self.store = store
        self.faults = faults
        self.delay = delay
        self.webhooks = webhooks
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, image: ImageRecord) -> None:
        """Mark `image` processing and schedule its completion.

        With no delay the outcome is settled before returning, so a client that uploads
        and then reads the order sees the final status.
        """
        image.revision += 1
        self.store.set_status(image, "processing")
        if self.delay <= 0:
            await self._settle(image.image_id, image.revision)
        else:
            self._spawn(self._after_delay(image.image_id, image.revision))

    def hold(self, image: ImageRecord, fault_id: int, fault: StuckFault) -> None:
        """Apply a freshly posted `stuck` fault to an image that already exists."""
        image.revision += 1
        if fault.status == "error":
            self._finish(image, "error", fault.status_reason or INJECTED_ERROR_REASON)
            return
        self.store.set_status(image, "processing", fault.status_reason)
        self._spawn(self._held(image.image_id, image.revision, fault_id))

    async def aclose(self) -> None:
        """Cancel pending work and close the webhook client."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.webhooks is not None:
            await self.webhooks.aclose()

    def cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    def _spawn(self, coroutine: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _current(self, image_id: str, revision: int) -> ImageRecord | None:
        image = self.store.images.get(image_id)
        if image is None or image.revision != revision:
            return None  # deleted, re-uploaded or reprocessed meanwhile
        return image

    async def _after_delay(self, image_id: str, revision: int) -> None:
        await asyncio.sleep(self.delay)
        await self._settle(image_id, revision)

    async def _settle(self, image_id: str, revision: int) -> None:
        image = self._current(image_id, revision)
        if image is None:
            return
        if image.original is not None and image.fixed_payload is None:
            try:
                await anyio.to_thread.run_sync(probe, image.original)
            except UnreadableImage as exc:
                self._finish(image, "error", str(exc))
                return
        stuck = self.faults.take_stuck(image_id)
        if stuck is None:
            self._finish(image, "processed", None)
        else:
            self.hold(image, *stuck)

    async def _held(self, image_id: str, revision: int, fault_id: int) -> None:
        # The fault book signals nothing when a fault leaves it: the hold polls for that.
        while self.faults.is_active(fault_id):  # noqa: ASYNC110
            await asyncio.sleep(HOLD_POLL_SECONDS)
        image = self._current(image_id, revision)
        if image is not None:
            self._finish(image, "processed", None)

    def _finish(self, image: ImageRecord, status: str, reason: str | None) -> None:
        self.store.set_status(image, "error" if status == "error" else "processed", reason)
        if self.webhooks is None:
            return
        order = self.store.orders.get(image.order_id)
        images = self.store.order_images(order) if order else []
        event = {
            "event": "image_processed",
            "image_id": image.image_id,
            "error": image.status == "error",
            "order_id": image.order_id,
            "order_is_processing": any(i.status == "processing" for i in images),
        }
        self._spawn(self.webhooks.send(event))
