"""`Downloads.answer` with a cached copy that vanishes between its lookup and its read: the
answer is decided in that one call (a fresh stream), so a route awaits nothing more.

One module under test (the downloads service) over a real local store; the upstream is a
stand-in that yields fixed bytes.
"""

from __future__ import annotations

import asyncio
import io
import zipfile
from pathlib import Path

from app.archive.downloads import Downloads
from app.archive.fairness import FairLimiter
from app.archive.http_rules import Conditions
from app.archive.outcomes import Streamed
from app.archive.plan import plan_batch
from app.archive.stream import ArchiveBuilder
from app.archive.validators import cache_key, identify
from app.storage import LocalArchiveStore, ObjectInfo, Quota
from app.upstream.models import Order
from app.upstream.options import DownloadOptions
from tests.support import settings_of
from tests.unit.fakes import ScriptedClient

IMAGES = {"img-0": b"first image", "img-1": b"second image"}


class EvictingStore(LocalArchiveStore):
    """Finds an object, then loses it before it can be read (an eviction in between)."""

    async def stat(self, key: str) -> ObjectInfo | None:
        info = await super().stat(key)
        if info is not None and key.startswith("cache/"):
            await self.delete(key)
        return info


async def answer_after_eviction(root: Path) -> tuple[bool, bytes]:
    settings = settings_of(archive_cache_max_bytes=10**9, archive_redirect=False)
    store = EvictingStore(
        root / "archives",
        quotas=(Quota(namespaces=("cache", "manifests"), max_bytes=10**9, evictable=True),),
    )
    order = Order.model_validate(
        {
            "order_id": "o",
            "last_updated_at": "2025-07-05T09:30:00Z",
            "images": [{"image_id": i, "status": "processed"} for i in IMAGES],
        }
    )
    plan = plan_batch(order, DownloadOptions())
    await store.put_bytes(cache_key(identify(plan, owner="me").key), b"a copy about to go")
    builder = ArchiveBuilder(
        settings=settings,
        upstream=ScriptedClient(IMAGES),  # type: ignore[arg-type]
        limiter=FairLimiter(2),
        spool_dir=root / "spool",
    )
    downloads = Downloads(settings=settings, builder=builder, store=store)
    download = await downloads.answer(plan, owner="me", api_key=None, conditions=Conditions())
    try:
        streamed = isinstance(download, Streamed)
        body = (
            b"".join([chunk async for chunk in download.body])
            if isinstance(download, Streamed)
            else b""
        )
    finally:
        await download.aclose()
        await store.settle()
        await store.aclose()
    return streamed, body


def test_a_cached_copy_that_vanished_is_answered_afresh_in_the_same_call(tmp_path: Path) -> None:
    streamed, body = asyncio.run(answer_after_eviction(tmp_path))
    assert streamed
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert [archive.read(name) for name in archive.namelist()] == list(IMAGES.values())
