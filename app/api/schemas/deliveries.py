"""Request and answer bodies of the delivery routes, the delivery service dependency, and
the photographer's view of a stored delivery."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Depends, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from app.deliveries.models import DeliveryRecord, DeliveryStatus, EventKind
from app.deliveries.service import DeliveryService
from app.deliveries.variants import PRINT
from app.jobs.callbacks import iso

PIN_PATTERN = r"^[0-9]{4,8}$"
MAX_VARIANTS = 4
MAX_MESSAGE_CHARS = 2000
MAX_LABEL_CHARS = 200
MAX_DOWNLOADS = 10_000


def get_deliveries(request: Request) -> DeliveryService:
    deliveries: DeliveryService = request.state.deliveries
    return deliveries


DeliveriesDep = Annotated[DeliveryService, Depends(get_deliveries)]


class DeliveryCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recipient: str = Field(
        min_length=1,
        max_length=MAX_LABEL_CHARS,
        description='Who receives it, e.g. "Jane Doe, Harbour Realty"',
    )
    variants: list[str] = Field(
        default=[PRINT],
        min_length=1,
        max_length=MAX_VARIANTS,
        description="Presets the recipient may download, one archive each (see GET /presets: "
        "print, the full-quality images; mls, web and the operator's own)",
    )
    images: list[str] | None = Field(
        default=None, description="Only these image ids of the order (default: every image)"
    )
    expires_at: AwareDatetime | None = Field(
        default=None,
        description="When the link stops working (default DELIVERY_DEFAULT_TTL from now; at "
        "most DELIVERY_MAX_TTL)",
    )
    pin: str | None = Field(
        default=None, pattern=PIN_PATTERN, description="4 to 8 digits the page asks for"
    )
    max_downloads: int | None = Field(
        default=None,
        ge=1,
        le=MAX_DOWNLOADS,
        description="Whole-archive downloads allowed; resuming a broken one never counts",
    )
    locked: bool = Field(
        default=False,
        description="Watermarked previews only, no archive, until unlocked (pay before download)",
    )
    message: str | None = Field(
        default=None, max_length=MAX_MESSAGE_CHARS, description="Shown on the page"
    )
    photographer: str | None = Field(
        default=None, max_length=MAX_LABEL_CHARS, description="Your name, shown on the page"
    )
    callback_url: str | None = Field(
        default=None,
        description="POSTed signed delivery.opened and delivery.completed events",
    )


class DeliveryChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expires_at: AwareDatetime | None = Field(default=None, description="A new expiry")
    max_downloads: int | None = Field(
        default=None, ge=1, le=MAX_DOWNLOADS, description="A new limit; null removes it"
    )
    locked: bool | None = Field(default=None, description="false releases the full photos")


class DeliveryCreated(BaseModel):
    delivery_id: str
    url: str = Field(description="The link to send; shown once, only its hash is stored")
    status: DeliveryStatus
    expires_at: str
    status_url: str
    callback_secret: str | None = Field(
        default=None,
        description="With a callback_url: the key this delivery's callbacks are signed with "
        "(X-Signature, as for jobs), for its receiver",
    )


class EventView(BaseModel):
    kind: EventKind
    at: str
    variant: str | None = None
    bytes: int | None = None
    detail: str | None = None


class DeliveredView(BaseModel):
    at: str
    variant: str
    bytes: int
    etag: str


class ArchiveView(BaseModel):
    variant: str
    etag: str
    bytes_total: int | None
    bytes_served: int
    complete: bool


class DeliveryView(BaseModel):
    delivery_id: str
    order_id: str
    recipient: str
    photographer: str | None
    message: str | None
    variants: list[str]
    images: list[str] | None
    status: DeliveryStatus
    created_at: str
    expires_at: str
    opened_at: str | None
    revoked_at: str | None
    locked: bool
    pin: bool = Field(description="Whether the link asks for a PIN")
    max_downloads: int | None
    downloads_used: int
    delivered: DeliveredView | None
    archives: list[ArchiveView]
    events: list[EventView] = Field(description="Newest first")
    callback_url: str | None
    callback: str | None = Field(description="Outcome of the last callback")
    status_url: str


class DeliveryList(BaseModel):
    deliveries: list[DeliveryView]


class PinBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pin: str = Field(min_length=1, max_length=8)


class VariantOffer(BaseModel):
    name: str
    label: str
    images: int
    bytes: int | None = Field(description="The archive's size, once it has been served")
    url: str


class DeliveredImage(BaseModel):
    image_id: str
    name: str | None
    ready: bool
    preview_url: str
    large_url: str


class DeliveryPage(BaseModel):
    """What the recipient's page shows."""

    recipient: str
    photographer: str | None
    message: str | None
    order_name: str | None
    locked: bool
    expires_at: str
    downloads_left: int | None
    variants: list[VariantOffer]
    images: list[DeliveredImage]
    state: Literal["ready", "locked", "limit_reached"]


def delivery_view(record: DeliveryRecord, *, status_url: str) -> DeliveryView:
    completed = record.completed
    return DeliveryView(
        delivery_id=record.delivery_id,
        order_id=record.order_id,
        recipient=record.recipient,
        photographer=record.photographer,
        message=record.message,
        variants=record.variants,
        images=record.images,
        status=record.status(),
        created_at=iso(record.created_at) or "",
        expires_at=iso(record.expires_at) or "",
        opened_at=iso(record.opened_at),
        revoked_at=iso(record.revoked_at),
        locked=record.locked,
        pin=record.pin_hash is not None,
        max_downloads=record.max_downloads,
        downloads_used=record.downloads_used,
        delivered=None
        if completed is None
        else DeliveredView(
            at=iso(completed.at) or "",
            variant=completed.variant,
            bytes=completed.bytes,
            etag=completed.etag,
        ),
        archives=[
            ArchiveView(
                variant=a.variant,
                etag=a.etag,
                bytes_total=a.total,
                bytes_served=a.served_bytes,
                complete=a.complete,
            )
            for a in record.archives
        ],
        events=[
            EventView(
                kind=e.kind, at=iso(e.at) or "", variant=e.variant, bytes=e.bytes, detail=e.detail
            )
            for e in reversed(record.events)
        ],
        callback_url=record.callback_url,
        callback=record.callback_outcome,
        status_url=status_url,
    )
