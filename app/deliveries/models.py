"""The stored delivery: its rules, what its recipient has done, and the byte ranges served.

Everything about one delivery is one record, changed only through the store's atomic
`update` (see `app.deliveries.store`), so that two nodes counting downloads or adding served
bytes at once never lose each other's change.

Served bytes are kept per archive (its strong ETag names its bytes) as sorted, disjoint,
merged half-open intervals. At most `MAX_RANGES` intervals are kept per archive and
`MAX_ARCHIVES` archives per delivery; past those bounds the smallest interval (or the oldest
archive) is dropped, which can only make the proof stricter, never claim bytes not served.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Literal

from pydantic import BaseModel, Field

DeliveryStatus = Literal["sent", "opened", "downloading", "delivered", "expired", "revoked"]
EventKind = Literal[
    "opened",
    "archive_started",
    "archive_resumed",
    "archive_completed",
    "download_refused",
    "pin_failed",
    "pin_locked",
    "changed",
    "revoked",
]

# Intervals kept per archive: a download broken and resumed is one interval once merged; many
# disjoint ones only come from a client fetching scattered ranges.
MAX_RANGES = 64
# Archives (ETags) remembered per delivery: variants times selections times order versions.
MAX_ARCHIVES = 16
# Events kept per delivery, newest first; older ones are dropped.
MAX_EVENTS = 200
# Random bytes of a link's token: 192 bits, well above the 128 the link needs.
TOKEN_BYTES = 24

Span = tuple[int, int]


def new_token() -> str:
    """A fresh URL-safe link token."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    """What is stored of a token (and looked up by): its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def pin_hash(pin: str, salt: str) -> str:
    return hashlib.sha256(f"delivery-pin|{salt}|{pin}".encode()).hexdigest()


def merged(spans: list[Span], start: int, end: int, *, limit: int = MAX_RANGES) -> list[Span]:
    """`spans` (sorted, disjoint, half-open) with `[start, end)` added and merged; adjacent
    intervals join. Past `limit` intervals the smallest ones are dropped."""
    if end <= start:
        return list(spans)
    result: list[Span] = []
    for lo, hi in spans:
        if hi < start or lo > end:
            result.append((lo, hi))
        else:
            start, end = min(start, lo), max(end, hi)
    result.append((start, end))
    result.sort()
    while len(result) > limit:
        result.remove(min(result, key=lambda span: span[1] - span[0]))
    return result


def covers(spans: list[Span], total: int) -> bool:
    """True when `spans` cover `[0, total)` (merged spans: one interval from 0)."""
    return total > 0 and any(lo <= 0 and hi >= total for lo, hi in spans)


class DeliveryEvent(BaseModel):
    kind: EventKind
    at: float = Field(default_factory=time.time)
    variant: str | None = None
    bytes: int | None = None
    detail: str | None = None


class ServedArchive(BaseModel):
    """The byte ranges of one archive written to the recipient."""

    etag: str
    variant: str
    total: int | None = None  # bytes of the archive, once an answer said so
    spans: list[Span] = []
    started_at: float = Field(default_factory=time.time)

    @property
    def served_bytes(self) -> int:
        return sum(hi - lo for lo, hi in self.spans)

    @property
    def complete(self) -> bool:
        return self.total is not None and covers(self.spans, self.total)


class Completion(BaseModel):
    """The proof: when the whole of which archive had been served."""

    at: float
    variant: str
    bytes: int
    etag: str


class DeliveryRecord(BaseModel):
    delivery_id: str = Field(default_factory=lambda: "dlv_" + secrets.token_hex(12))
    token_hash: str
    owner: str
    order_id: str
    recipient: str
    photographer: str | None = None
    message: str | None = None
    variants: list[str]
    images: list[str] | None = None
    created_at: float = Field(default_factory=time.time)
    expires_at: float
    pin_salt: str | None = None
    pin_hash: str | None = None
    max_downloads: int | None = None
    downloads_used: int = 0
    locked: bool = False
    callback_url: str | None = None
    callback_outcome: str | None = None
    sealed_key: str | None = None  # the creator's own key, sealed (`app.jobs.keybox`)
    base_url: str
    revoked_at: float | None = None
    opened_at: float | None = None
    pin_failures: int = 0
    pin_locked_until: float | None = None
    archives: list[ServedArchive] = []
    completed: Completion | None = None
    events: list[DeliveryEvent] = []

    def is_expired(self, now: float | None = None) -> bool:
        return (now if now is not None else time.time()) >= self.expires_at

    def status(self, now: float | None = None) -> DeliveryStatus:
        """Revoked, then delivered (the proof outlives the link), expired, downloading,
        opened, sent."""
        if self.revoked_at is not None:
            return "revoked"
        if self.completed is not None:
            return "delivered"
        if self.is_expired(now):
            return "expired"
        if self.archives:
            return "downloading"
        return "opened" if self.opened_at is not None else "sent"

    def event(self, kind: EventKind, **fields: object) -> None:
        """Add an event; the oldest beyond `MAX_EVENTS` are dropped."""
        self.events.append(DeliveryEvent(kind=kind, **fields))
        del self.events[:-MAX_EVENTS]

    def archive(self, etag: str) -> ServedArchive | None:
        return next((a for a in self.archives if a.etag == etag), None)

    def started(self, etag: str, variant: str) -> ServedArchive:
        """The record of archive `etag`, made when it is new (the oldest beyond
        `MAX_ARCHIVES` forgotten)."""
        found = self.archive(etag)
        if found is None:
            found = ServedArchive(etag=etag, variant=variant)
            self.archives.append(found)
            del self.archives[:-MAX_ARCHIVES]
        return found

    @property
    def downloads_left(self) -> int | None:
        if self.max_downloads is None:
            return None
        return max(0, self.max_downloads - self.downloads_used)
