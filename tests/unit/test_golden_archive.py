"""The archive's bytes are pinned: a fixed plan gives one SHA-256, whatever else changes.

Every stored key and ETag carries `ARCHIVE_FORMAT` (`app.archive.zipformat`), so cached
archives and manifests of another format are never reused or spliced into. That only holds if
the format is bumped whenever the bytes for the same inputs change; this test is what notices.
The plan exercises what shapes the bytes: ASCII and non-ASCII names (the UTF-8 flag), names
that collide on a case-insensitive disk, an empty image, entry times from the order, and a
download report for an image still processing and one whose fetch failed.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import zipfile
from pathlib import Path

from app.archive.fairness import FairLimiter
from app.archive.plan import REPORT_NAME, plan_batch
from app.archive.stream import BatchArchive
from app.archive.zipformat import ARCHIVE_FORMAT
from app.upstream.models import Order
from app.upstream.options import DownloadOptions
from tests.unit.fakes import ScriptedClient

# The format these bytes are, and their digest. Change both together, never one alone.
GOLDEN_FORMAT = "zip-stored/1"
GOLDEN_SHA256 = "9e6ab5c52b358afe0c452d295c567bc22082ea8b38881ec6eeba925268e9d1db"

IMAGES = [
    ("img-0", "Living room.jpg", "processed", b"\xff\xd8\xff\xe0" + bytes(range(256)) * 3),
    ("img-1", "Küche — Süd.jpg", "processed", b"\x89PNG\r\n\x1a\n" + b"k" * 700),
    ("img-2", "living ROOM.jpg", "processed", b"RIFF" + b"w" * 333),
    ("img-3", "empty.jpg", "processed", b""),
    ("img-4", "Garden.jpg", "processing", b"never fetched"),
    ("img-5", "Attic.jpg", "processed", None),
]


def fixed_order() -> Order:
    return Order.model_validate(
        {
            "order_id": "golden-order",
            "name": "Golden order",
            "last_updated_at": "2025-07-05T09:30:00Z",
            "images": [
                {"image_id": image_id, "image_name": name, "status": status}
                for image_id, name, status, _ in IMAGES
            ],
        }
    )


async def archive_bytes(spool_dir: Path) -> bytes:
    archive = BatchArchive(
        plan_batch(fixed_order(), DownloadOptions()),
        client=ScriptedClient({id_: data for id_, _, _, data in IMAGES}),  # type: ignore[arg-type]
        api_key=None,
        limiter=FairLimiter(3),
        concurrency=2,
        spool_dir=spool_dir,
        spool_memory_bytes=512,
    )
    try:
        await archive.start()
        return b"".join([chunk async for chunk in archive])
    finally:
        await archive.aclose()


def test_a_fixed_plan_gives_the_pinned_bytes(tmp_path: Path) -> None:
    data = asyncio.run(archive_bytes(tmp_path))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:  # still a ZIP every reader opens
        assert archive.testzip() is None
        names = archive.namelist()
    assert names == [
        "Living room.jpg",
        "Küche — Süd.jpg",
        "living ROOM (1).jpg",
        "empty.jpg",
        REPORT_NAME,
    ]
    digest = hashlib.sha256(data).hexdigest()
    assert (ARCHIVE_FORMAT, digest) == (GOLDEN_FORMAT, GOLDEN_SHA256), (
        f"The archive's bytes changed (SHA-256 now {digest}). Archives of the old bytes may be "
        "cached or half-downloaded under the same ETag: bump ARCHIVE_FORMAT in "
        "app/archive/zipformat.py, then set GOLDEN_FORMAT and GOLDEN_SHA256 here to the new "
        "format and digest."
    )
