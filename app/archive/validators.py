"""What names an archive's bytes.

`identify()` gives an archive its store key, strong ETag, Last-Modified and version before any
byte is produced. The version is what a version-pinned URL carries (`?version=`): the order's
version, so a pinned URL names the bytes of one archive for as long as the order stays as it
was, and the service can refuse it (410) once the order changed. The writer's own version,
`ARCHIVE_FORMAT`, lives beside the bytes it versions (`app.archive.zipformat`). The HTTP rules
that read a request's Range and validators against this identity are in
`app.archive.http_rules`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from app.archive.http_rules import http_date
from app.archive.listing import LISTING_FORMAT
from app.archive.plan import BatchPlan
from app.archive.zipformat import ARCHIVE_FORMAT
from app.imaging.render import RENDERER_VERSION

# An archive with variants is also named by the renderer that made its bytes (the imaging
# library and its codecs: an upgrade may change every rendered byte) and by each variant's
# resolved preset (an operator's change of PRESETS_FILE changes the bytes); one with a
# manifest.json by that file's layout. So neither can ever splice across such a change.
VARIANTS_FORMAT = f"{ARCHIVE_FORMAT}+variants/1+{RENDERER_VERSION}"
# Hex digits of the order's version a pinned URL carries: 64 bits, so two versions of one
# order never share it by chance.
VERSION_CHARS = 16
VERSION_PATTERN = f"[0-9a-f]{{{VERSION_CHARS}}}"


@dataclass(frozen=True, slots=True)
class ArchiveIdentity:
    """What names an archive's bytes: its store key, strong ETag, Last-Modified (not a strong
    validator: see `app.archive.http_rules`) and the order version a pinned URL carries."""

    key: str
    etag: str
    last_modified: datetime
    version: str

    @property
    def headers(self) -> dict[str, str]:
        return {
            "ETag": self.etag,
            "Last-Modified": http_date(self.last_modified),
            "Accept-Ranges": "bytes",
        }


def identify(plan: BatchPlan, *, owner: str) -> ArchiveIdentity:
    """The identity of `plan`'s archive for a credential `owner`: a hash of the archive format,
    the order id and version, the whole canonical form of the options and the owner; with
    variants, the renderer's version and the presets as resolved; with a manifest.json, its
    layout (see `VARIANTS_FORMAT`)."""
    named: dict[str, object] = {
        "format": ARCHIVE_FORMAT,
        "order": plan.order.order_id,
        "version": plan.order.version_marker,
        "options": plan.options.canonical(),
        "owner": owner,
    }
    if plan.variants:
        named["format"] = VARIANTS_FORMAT
        named["presets"] = [preset.model_dump(mode="json") for preset in plan.variants]
    if plan.options.manifest:
        named["listing"] = LISTING_FORMAT
    material = json.dumps(named, sort_keys=True)
    key = hashlib.sha256(material.encode()).hexdigest()
    # Second precision: that is all Last-Modified and If-Range dates can express.
    modified = plan.modified.replace(microsecond=0)
    return ArchiveIdentity(
        key=key, etag=f'"{key[:40]}"', last_modified=modified, version=archive_version(plan)
    )


def archive_version(plan: BatchPlan) -> str:
    """The version a pinned URL of `plan`'s archive carries: the order's version (which changes
    with any image, name or content revision), `VERSION_CHARS` hex digits."""
    return plan.order.version_marker[:VERSION_CHARS]


def cache_key(key: str) -> str:
    """Where the complete archive `key` is kept in the store."""
    return f"cache/{key}.zip"
