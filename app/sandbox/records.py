"""Orders and images as the sandbox keeps them, and their upstream JSON shapes.

`OrderOut`/`ImageOut` field names follow the v3 spec. Images also carry `id` (the official
Web-SDK sample reads it) and the legacy booleans `enhanced`/`error`, which older API versions
emit and some clients still poll.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

ImageStatus = Literal["waiting", "processing", "processed", "error", "expired"]

# Echoed back for settings the client did not send. ai_version/enhance_type use values the
# official SDK's enums accept, so its response models validate.
SETTING_DEFAULTS: dict[str, Any] = {
    "ai_version": "4.x",
    "enhance": True,
    "enhance_type": "neutral",
    "cloud_type": None,
    "sky_replacement": False,
    "vertical_correction": True,
    "lens_correction": True,
    "privacy": False,
    "upscale": False,
    "window_pull": None,
    "finetune_settings": None,
    "threesixty": False,
    "hdr": False,
    "rating": None,
    "metadata": {},
}


def user_id_for(key: str | None) -> str | None:
    """A stable, non-reversible user id for an API key (None for shared records)."""
    if key is None:
        return None
    return "user_" + hashlib.sha256(key.encode()).hexdigest()[:16]


def iso(moment: datetime) -> str:
    """`2025-07-05T02:27:21.305Z`, the upstream timestamp format."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(kw_only=True)
class ImageRecord:
    """One image: its settings, status and bytes."""

    image_id: str
    order_id: str
    image_name: str
    owner: str | None
    content_type: str = "image/jpeg"
    settings: dict[str, Any] = field(default_factory=lambda: dict(SETTING_DEFAULTS))
    status: ImageStatus = "waiting"
    status_reason: str | None = None
    downloaded: bool = False
    date_added: int = field(default_factory=now_ms)
    scene: str | None = None
    original: bytes | None = None
    # Served verbatim for every download (synthetic benchmark images); skips rendering.
    fixed_payload: bytes | None = None
    # Bumped whenever the bytes or settings change, so stale renders are never served.
    revision: int = 0
    upload_token: str = ""

    def out(self) -> dict[str, Any]:
        """The ImageOut JSON object."""
        settings = {k: v for k, v in self.settings.items() if k not in {"threesixty", "hdr"}}
        return {
            "image_id": self.image_id,
            "id": self.image_id,
            "image_name": self.image_name,
            "order_id": self.order_id,
            "user_id": user_id_for(self.owner),
            "status": self.status,
            "status_reason": self.status_reason,
            "downloaded": self.downloaded,
            "date_added": self.date_added,
            "scene": self.scene,
            "is_threesixty": bool(self.settings.get("threesixty")),
            "enhanced": self.status == "processed",
            "error": self.status == "error",
            **settings,
        }


@dataclass(kw_only=True)
class OrderRecord:
    """One order and the ids of its images, oldest first."""

    order_id: str
    name: str
    owner: str | None
    sequence: int
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    last_updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    image_ids: list[str] = field(default_factory=list)

    def touch(self) -> None:
        """Move `last_updated_at` forward, by at least one millisecond so every change shows."""
        now = datetime.now(UTC)
        floor = self.last_updated_at + timedelta(milliseconds=1)
        self.last_updated_at = max(now, floor)

    def out(self, images: list[ImageRecord]) -> dict[str, Any]:
        """The OrderOut JSON object, given this order's images."""
        return {
            "order_id": self.order_id,
            "name": self.name,
            "created_at": iso(self.created_at),
            "last_updated_at": iso(self.last_updated_at),
            "status": order_status(images),
            "is_processing": any(image.status == "processing" for image in images),
            "is_merging": False,
            "is_deleted": False,
            "total_images": len(images),
            "images": [image.out() for image in images],
        }


def order_status(images: list[ImageRecord]) -> ImageStatus:
    """Order status from its images: any processing wins, then waiting, then all-error."""
    statuses = {image.status for image in images}
    if not statuses:
        return "waiting"
    if "processing" in statuses:
        return "processing"
    if "waiting" in statuses:
        return "waiting"
    if statuses == {"error"}:
        return "error"
    return "processed"
