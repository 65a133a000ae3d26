"""What names an archive's bytes, and which part of them a request asks for.

`identify()` gives an archive its store key, strong ETag and Last-Modified before any byte is
produced; `wanted_range()` reads the single byte range of a request (RFC 9110: a header that
cannot be parsed, another unit or several ranges are ignored, and `If-Range` must match).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from app.services.plan import BatchPlan
from app.services.ranges import http_date, if_range_holds

# Bump whenever the bytes the writer produces for the same inputs change: it is part of the
# ETag and of every stored key, so old manifests and cached archives are never reused.
ARCHIVE_FORMAT = "zip-stored/1"
# A Range position longer than this is beyond any archive (and int() of a huge digit
# string is slow): the header is ignored as unparseable.
MAX_RANGE_DIGITS = 19


@dataclass(frozen=True, slots=True)
class ArchiveIdentity:
    """What names an archive's bytes: its store key, strong ETag and Last-Modified."""

    key: str
    etag: str
    last_modified: datetime

    @property
    def headers(self) -> dict[str, str]:
        return {
            "ETag": self.etag,
            "Last-Modified": http_date(self.last_modified),
            "Accept-Ranges": "bytes",
        }


def identify(plan: BatchPlan, *, owner: str) -> ArchiveIdentity:
    """The identity of `plan`'s archive for a credential `owner`: a hash of the archive format,
    the order id and version, the whole canonical form of the options and the owner."""
    material = json.dumps(
        {
            "format": ARCHIVE_FORMAT,
            "order": plan.order.order_id,
            "version": plan.order.version_marker,
            "options": plan.options.model_dump(mode="json"),
            "owner": owner,
        },
        sort_keys=True,
    )
    key = hashlib.sha256(material.encode()).hexdigest()
    # Second precision: that is all Last-Modified and If-Range dates can express.
    modified = plan.modified.replace(microsecond=0)
    return ArchiveIdentity(key=key, etag=f'"{key[:40]}"', last_modified=modified)


@dataclass(frozen=True, slots=True)
class Conditions:
    """The request's method and conditional/range headers."""

    method: Literal["GET", "HEAD"] = "GET"
    range: str | None = None
    if_range: str | None = None
    if_none_match: str | None = None


def sized_headers(
    headers: dict[str, str], start: int, last: int | None, total: int
) -> dict[str, str]:
    end = total - 1 if last is None else min(last, total - 1)
    sized = {**headers, "Content-Length": str(end - start + 1)}
    if start or end < total - 1:
        sized["Content-Range"] = f"bytes {start}-{end}/{total}"
    return sized


def wanted_range(
    conditions: Conditions, identity: ArchiveIdentity
) -> tuple[int, int | None] | None:
    """The single byte range asked for: (start, last or None); start < 0 means a suffix.

    None when there is no Range, it cannot be parsed, has another unit or several ranges
    (all of which RFC 9110 lets a server ignore), or `If-Range` does not match.
    """
    if not conditions.range:
        return None
    if not if_range_holds(
        conditions.if_range, etag=identity.etag, last_modified=identity.last_modified
    ):
        return None
    unit, _, spec = conditions.range.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    first, last = first.strip(), last.strip()
    if not dash or len(first) > MAX_RANGE_DIGITS or len(last) > MAX_RANGE_DIGITS:
        return None
    if not first:
        if not last.isdigit() or int(last) == 0:
            return None
        return -int(last), None
    if not first.isdigit() or (last and not last.isdigit()):
        return None
    if last and int(last) < int(first):
        return None
    return int(first), int(last) if last else None


def cache_key(key: str) -> str:
    """Where the complete archive `key` is kept in the store."""
    return f"cache/{key}.zip"
