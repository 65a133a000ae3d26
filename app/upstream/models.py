"""Typed views of the Autoenhance API's JSON.

The models ignore fields they do not know and accept every spelling the API has used
(`image_id` / `id`, `upload_url` / `s3PutObjectUrl`), so a new API version or an older
account pin does not break parsing.

Every string is repaired on the way in: JSON may carry a lone surrogate (`"\\udc80"`), which
Python keeps but UTF-8 cannot encode, so one such name would break every answer, header and
report that repeats it. Lone surrogates become U+FFFD, the replacement character.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    field_validator,
    model_validator,
)

# Image statuses the API documents; anything else is treated as "not ready".
READY_STATUS = "processed"


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


# Fields that never change an archive's bytes: billing ("already paid for"), the user's
# rating, URLs (pre-signed links may change on every read), and the order's
# `last_updated_at`, which buying an image (its first full-quality download) moves while
# nothing in the archive changes. Every other field of an image may (its settings echo,
# `ai_version`, `scene` and `finetune_settings` change when it is reprocessed), so all the
# others count. An order's images are digested one by one.
_INERT_FIELDS = frozenset({"downloaded", "rating", "images", "last_updated_at"})


def _inert(key: object) -> bool:
    return not isinstance(key, str) or key in _INERT_FIELDS or key.lower().endswith("url")


def _digest(raw: Any) -> str:
    """A stable digest of the API's JSON for one record, without its inert fields."""
    if not isinstance(raw, dict):
        return ""
    kept = {key: value for key, value in raw.items() if not _inert(key)}
    canonical = json.dumps(kept, sort_keys=True, ensure_ascii=True, default=str)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def repair_text(value: str) -> str:
    """`value` with every lone surrogate replaced by U+FFFD, so that it encodes as UTF-8."""
    return _LONE_SURROGATE.sub("\ufffd", value)


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    @field_validator("*", mode="before")
    @classmethod
    def _repaired(cls, value: Any) -> Any:
        return repair_text(value) if isinstance(value, str) else value


class _Revisioned(_Lenient):
    """A record that remembers a digest of the JSON it was read from (`revision`)."""

    _revision: str = PrivateAttr(default="")

    @model_validator(mode="wrap")
    @classmethod
    def _remember(cls, value: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        record = handler(value)
        if isinstance(record, _Revisioned) and isinstance(value, dict):
            record._revision = _digest(value)
        return record

    @property
    def revision(self) -> str:
        """Changes whenever any field of the record that may change its bytes changes."""
        return self._revision


class Image(_Revisioned):
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


class Order(_Revisioned):
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
        """A digest of everything in the order that changes an archive's bytes.

        Each image's id, name (entry names), status and reason (what is delivered, what the
        report says) and time (entry times); every other field the API shows for it (its
        settings echo and `ai_version` change when it is reprocessed: a new rendition under
        the same id), except billing and rating; and the order's own fields (name, times).
        `last_updated_at` is left out: it is not trusted to move on a rename or a
        reprocessing (the fields above do), and it does move when nothing in the archive
        changes — buying an image (its first full-quality download) touches it, so with it the
        first full-quality download of an order could never be resumed.
        """
        state = {
            "order": [self.order_id, self.name, _stamp(self.created_at), self.revision],
            "images": [
                [
                    image.image_id,
                    image.image_name,
                    image.status,
                    image.status_reason,
                    image.date_added,
                    image.revision,
                ]
                for image in self.images
            ],
        }
        canonical = json.dumps(state, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _stamp(value: datetime | None) -> str:
    return value.isoformat() if value else ""


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
