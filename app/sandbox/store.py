"""The sandbox's in-memory account: orders, images, credits, upload and asset tokens.

Ownership: a record created with API key K belongs to K. Reads with another key answer 404 as
if the record did not exist (so ids cannot be probed); reads with no key at all are allowed on
order/image metadata because the real API documents those two routes as unauthenticated.
Records owned by nobody (the demo order, synthetic orders created without a key) are readable
with any key and cannot be changed through the API.

Bounded: past `max_orders` orders, or `max_bytes` of image bytes held (uploads and synthetic
payloads; the demo order's photos are not counted), the oldest orders are forgotten with their
images. The demo order and the order just written are never evicted, so anyone may upload to
a public sandbox for ever without growing its memory.

Not thread-safe: mutated from the event loop only.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import secrets
import uuid
from collections import OrderedDict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.sandbox.errors import Conflict, Forbidden, InvalidInput, NotFound, PaymentRequired
from app.sandbox.imaging import RenderSpec
from app.sandbox.records import ImageRecord, ImageStatus, OrderRecord

DEMO_ORDER_ID = "8f5c2a4e-3b1d-4e7a-9c6f-0a1b2c3d4e5f"
DEMO_ORDER_NAME = "Demo order — 12 Harbour View"
# The demo order's clock is fixed, so its archive is byte-identical across restarts too.
DEMO_ORDER_TIME = datetime(2025, 7, 5, 9, 30, tzinfo=UTC)
# The spec caps per_page at 15; larger requests get a shorter page, not an error.
MAX_PER_PAGE = 15
# Asset URLs are short-lived on the real API; keep only this many outstanding.
MAX_ASSET_TOKENS = 10_000
_SCENES = {"house": "exterior", "front": "exterior", "garden": "garden", "living": "living_room"}


def _visible(owner: str | None, key: str | None) -> bool:
    return owner is None or key is None or owner == key


class Store:
    """All state a sandbox instance serves; `Store(credits=n)` is an empty account.

    `max_orders` and `max_bytes` bound it (see the module docstring); `None` = unbounded.
    """

    def __init__(
        self, *, credits: int, max_orders: int | None = None, max_bytes: int | None = None
    ) -> None:
        self.credits = credits
        self.max_orders = max_orders
        self.max_bytes = max_bytes
        self.orders: dict[str, OrderRecord] = {}
        self.images: dict[str, ImageRecord] = {}
        self._uploads: dict[str, str] = {}
        self._assets: OrderedDict[str, tuple[str, RenderSpec]] = OrderedDict()
        self._sequence = itertools.count()

    # Orders

    def create_order(
        self, *, owner: str | None, name: str | None = None, order_id: str | None = None
    ) -> OrderRecord:
        """Create an empty order.

        Raises:
            Conflict: `order_id` is already taken.
        """
        order_id = order_id or str(uuid.uuid4())
        if order_id in self.orders:
            raise Conflict("Order ID already exists", detail={"order_id": order_id})
        order = OrderRecord(
            order_id=order_id, name=name or "", owner=owner, sequence=next(self._sequence)
        )
        self.orders[order_id] = order
        self.enforce_bounds(keep=order_id)
        return order

    def stored_bytes(self) -> int:
        """Bytes of image content callers added (a payload shared by several images counts
        once; the demo order's sample photos are not counted)."""
        held: dict[int, int] = {}
        for image in self.images.values():
            if image.order_id == DEMO_ORDER_ID:
                continue
            for blob in (image.original, image.fixed_payload):
                if blob is not None:
                    held[id(blob)] = len(blob)
        return sum(held.values())

    def enforce_bounds(self, *, keep: str | None = None) -> list[str]:
        """Forget the oldest orders until the store is within its bounds; their ids.

        The demo order and `keep` (the order just written) always stay.
        """
        evicted: list[str] = []
        while self._over_bounds():
            victim = next((oid for oid in self.orders if oid not in {DEMO_ORDER_ID, keep}), None)
            if victim is None:
                break
            self.delete_order(self.orders[victim])
            evicted.append(victim)
        return evicted

    def _over_bounds(self) -> bool:
        if self.max_orders is not None and len(self.orders) > self.max_orders:
            return True
        return self.max_bytes is not None and self.stored_bytes() > self.max_bytes

    def order(self, order_id: str, key: str | None) -> OrderRecord:
        """The order as `key` may see it (None = unauthenticated read).

        Raises:
            NotFound: no such order, or it belongs to another key.
        """
        order = self.orders.get(order_id)
        if order is None or not _visible(order.owner, key):
            raise NotFound("Order not found", detail={"order_id": order_id})
        return order

    def order_for_change(self, order_id: str, key: str) -> OrderRecord:
        """The order, if `key` may modify it.

        Raises:
            NotFound: no such order, or it belongs to another key.
            Forbidden: the order is shared (owned by nobody) and read-only.
        """
        order = self.order(order_id, key)
        if order.owner is None:
            raise Forbidden("Shared orders are read-only", detail={"order_id": order_id})
        return order

    def order_images(self, order: OrderRecord) -> list[ImageRecord]:
        return [self.images[image_id] for image_id in order.image_ids]

    def order_out(self, order: OrderRecord) -> dict[str, Any]:
        return order.out(self.order_images(order))

    def delete_order(self, order: OrderRecord) -> None:
        for image_id in list(order.image_ids):
            self._forget_image(image_id)
        del self.orders[order.order_id]

    def list_orders(
        self, key: str, *, per_page: int, offset: str | None
    ) -> tuple[list[OrderRecord], str | None]:
        """A page of the orders `key` can see, newest first, and the next page's token.

        Raises:
            InvalidInput: `offset` is not a token this sandbox issued.
        """
        start = _decode_offset(offset) if offset else 0
        visible = sorted(
            (o for o in self.orders.values() if o.owner in {None, key}),
            key=lambda o: o.sequence,
            reverse=True,
        )
        page = visible[start : start + min(per_page, MAX_PER_PAGE)]
        end = start + len(page)
        return page, (_encode_offset(end) if end < len(visible) else None)

    # Images

    def register_image(
        self,
        *,
        owner: str,
        image_name: str,
        order_id: str | None,
        image_id: str | None,
        content_type: str,
        settings: dict[str, Any],
    ) -> ImageRecord:
        """Register an image, creating its order when it does not exist yet.

        Raises:
            Conflict: `image_id` is already taken.
            NotFound: `order_id` belongs to another key.
            Forbidden: `order_id` names a shared, read-only order.
        """
        image_id = image_id or str(uuid.uuid4())
        if image_id in self.images:
            raise Conflict("Image ID already exists", detail={"image_id": image_id})
        if order_id is not None and order_id in self.orders:
            order = self.order_for_change(order_id, owner)
        else:
            order = self.create_order(owner=owner, order_id=order_id)
        image = ImageRecord(
            image_id=image_id,
            order_id=order.order_id,
            image_name=image_name,
            owner=owner,
            content_type=content_type,
            settings=settings,
            upload_token=secrets.token_urlsafe(24),
        )
        self.images[image_id] = image
        self._uploads[image.upload_token] = image_id
        order.image_ids.append(image_id)
        order.touch()
        return image

    def image(self, image_id: str, key: str | None) -> ImageRecord:
        """The image as `key` may see it (None = unauthenticated read).

        Raises:
            NotFound: no such image, or it belongs to another key.
        """
        image = self.images.get(image_id)
        if image is None or not _visible(image.owner, key):
            raise NotFound("Image not found", detail={"image_id": image_id})
        return image

    def image_for_change(self, image_id: str, key: str) -> ImageRecord:
        """The image, if `key` may modify it.

        Raises:
            NotFound: no such image, or it belongs to another key.
            Forbidden: the image is shared and read-only.
        """
        image = self.image(image_id, key)
        if image.owner is None:
            raise Forbidden("Shared images are read-only", detail={"image_id": image_id})
        return image

    def image_by_upload_token(self, token: str) -> ImageRecord | None:
        image_id = self._uploads.get(token)
        return self.images.get(image_id) if image_id else None

    def delete_image(self, image: ImageRecord) -> None:
        order = self.orders[image.order_id]
        self._forget_image(image.image_id)
        order.touch()

    def _forget_image(self, image_id: str) -> None:
        image = self.images.pop(image_id)
        self._uploads.pop(image.upload_token, None)
        order = self.orders.get(image.order_id)
        if order is not None and image_id in order.image_ids:
            order.image_ids.remove(image_id)

    def set_status(
        self, image: ImageRecord, status: ImageStatus, reason: str | None = None
    ) -> None:
        """Change an image's status and bump its order's `last_updated_at`."""
        image.status = status
        image.status_reason = reason
        order = self.orders.get(image.order_id)
        if order is not None:
            order.touch()

    # Credits and downloads

    def purchase(self, image: ImageRecord) -> None:
        """Charge one credit for the first full-size download of `image`; repeats are free.

        Raises:
            PaymentRequired: no credits left.
        """
        if image.downloaded:
            return
        if self.credits <= 0:
            raise PaymentRequired(
                "Not enough credits to download this image",
                detail={"image_id": image.image_id, "credits": 0},
            )
        self.credits -= 1
        image.downloaded = True
        order = self.orders.get(image.order_id)
        if order is not None:
            order.touch()

    def issue_asset(self, image_id: str, spec: RenderSpec) -> str:
        """Mint an opaque token under which `/assets/<token>` serves this rendering."""
        token = secrets.token_urlsafe(24)
        self._assets[token] = (image_id, spec)
        while len(self._assets) > MAX_ASSET_TOKENS:
            self._assets.popitem(last=False)
        return token

    def asset(self, token: str) -> tuple[ImageRecord, RenderSpec] | None:
        entry = self._assets.get(token)
        if entry is None or entry[0] not in self.images:
            return None
        return self.images[entry[0]], entry[1]

    # Seeding

    def add_processed_image(
        self, order: OrderRecord, *, name: str, image_id: str | None = None, **fields: Any
    ) -> ImageRecord:
        """Attach an already-processed image (demo or synthetic) to `order`."""
        image = ImageRecord(
            image_id=image_id or str(uuid.uuid4()),
            order_id=order.order_id,
            image_name=name,
            owner=order.owner,
            status="processed",
            upload_token=secrets.token_urlsafe(24),
            **fields,
        )
        self.images[image.image_id] = image
        order.image_ids.append(image.image_id)
        order.touch()
        return image

    def seed_demo(self, sample_dir: Path) -> OrderRecord:
        """Create the shared demo order from the JPEGs in `sample_dir` (sorted by name)."""
        self.orders.pop(DEMO_ORDER_ID, None)
        order = self.create_order(owner=None, name=DEMO_ORDER_NAME, order_id=DEMO_ORDER_ID)
        namespace = uuid.UUID(DEMO_ORDER_ID)
        paths = sorted(p for p in sample_dir.glob("*") if p.suffix.lower() in {".jpg", ".jpeg"})
        for path in paths:
            scene = next((s for word, s in _SCENES.items() if word in path.stem), None)
            self.add_processed_image(
                order,
                name=path.stem,
                image_id=str(uuid.uuid5(namespace, path.name)),
                original=path.read_bytes(),
                scene=scene,
            )
        for image_id in order.image_ids:
            self.images[image_id].date_added = int(DEMO_ORDER_TIME.timestamp() * 1000)
        order.created_at = order.last_updated_at = DEMO_ORDER_TIME
        return order

    def lookup_asset_image_id(self, token: str) -> str | None:
        entry = self._assets.get(token)
        return entry[0] if entry else None


def _encode_offset(index: int) -> str:
    raw = json.dumps({"i": index}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_offset(token: str) -> int:
    try:
        padded = token + "=" * (-len(token) % 4)
        index = json.loads(base64.urlsafe_b64decode(padded.encode()))["i"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeError) as exc:
        raise InvalidInput.of("query", "offset", "Invalid offset token.") from exc
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise InvalidInput.of("query", "offset", "Invalid offset token.")
    return index
