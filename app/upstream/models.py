"""Typed views of the Autoenhance API's JSON.

The models ignore fields they do not know and accept every spelling the API has used
(`image_id` / `id`, `upload_url` / `s3PutObjectUrl`), so a new API version or an older
account pin does not break parsing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

# Image statuses the API documents; anything else is treated as "not ready".
READY_STATUS = "processed"


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Image(_Lenient):
    image_id: str = Field(validation_alias=AliasChoices("image_id", "id"))
    image_name: str | None = None
    order_id: str | None = None
    status: str | None = None
    status_reason: str | None = None
    # Legacy booleans some API versions still emit alongside `status`.
    enhanced: bool | None = None
    error: bool | str | None = None
    date_added: int | float | None = None  # epoch milliseconds
    downloaded: bool | None = None

    @property
    def is_ready(self) -> bool:
        """Whether the enhanced image can be downloaded now.

        `status` is authoritative when present; older versions only say `enhanced`/`error`.
        """
        if self.status is not None:
            return self.status == READY_STATUS
        return bool(self.enhanced) and not self.error

    @property
    def not_ready_reason(self) -> str:
        if self.status == "error" or (self.status is None and self.error):
            reason = self.status_reason or (self.error if isinstance(self.error, str) else None)
            return f"enhancement failed upstream: {reason}" if reason else "enhancement failed"
        if self.status == "expired":
            return "image expired upstream"
        return f"not processed yet (status: {self.status or 'unknown'})"

    @property
    def added_at(self) -> datetime | None:
        if self.date_added is None:
            return None
        try:
            return datetime.fromtimestamp(float(self.date_added) / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None


class Order(_Lenient):
    order_id: str
    name: str | None = None
    created_at: datetime | None = None
    last_updated_at: datetime | None = None
    status: str | None = None
    is_processing: bool | None = None
    is_merging: bool | None = None
    is_deleted: bool | None = None
    total_images: float | None = None  # a float in the 2025 spec
    images: list[Image] = Field(default_factory=list)

    @field_validator("images", mode="before")
    @classmethod
    def _images_list(cls, value: Any) -> Any:
        return [] if value is None else value

    @property
    def version_marker(self) -> str:
        """A string that changes whenever the order or one of its images changes."""
        stamp = self.last_updated_at.isoformat() if self.last_updated_at else ""
        return f"{stamp}|" + ",".join(f"{i.image_id}:{i.status}" for i in self.images)


class OrderPage(_Lenient):
    orders: list[Order] = Field(default_factory=list)
    next_offset: str | None = None

    @classmethod
    def from_api(cls, payload: dict[str, Any]) -> OrderPage:
        pagination = payload.get("pagination") or {}
        return cls(orders=payload.get("orders") or [], next_offset=pagination.get("next_offset"))


class RegisteredImage(_Lenient):
    image_id: str = Field(validation_alias=AliasChoices("image_id", "id"))
    order_id: str | None = None
    upload_url: str = Field(validation_alias=AliasChoices("upload_url", "s3PutObjectUrl"))
