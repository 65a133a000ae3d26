"""Stand-ins for one module's collaborators in unit tests of the archive pipeline."""

from __future__ import annotations

import asyncio
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import IO

from app.upstream.client import Downloaded
from app.upstream.errors import UpstreamServerError
from app.upstream.options import DownloadOptions


class ScriptedClient:
    """Stands in for `AutoenhanceClient.download_enhanced`: each image yields its bytes from
    `payloads`, or a 500 when its payload is None (always) or its id is in `failing` (once).
    `fetches` counts the downloads of each image."""

    byte_pool = None  # images spool, as with IMAGE_POOL_BYTES=0

    def __init__(self, payloads: Mapping[str, bytes | None], failing: Iterable[str] = ()) -> None:
        self.payloads = payloads
        self.failing = set(failing)
        self.fetches: Counter[str] = Counter()

    async def download_enhanced(
        self,
        image_id: str,
        sink: IO[bytes],
        *,
        options: DownloadOptions,
        api_key: str | None,
        buffers: object = None,
    ) -> Downloaded:
        await asyncio.sleep(0)
        self.fetches[image_id] += 1
        payload = self.payloads[image_id]
        if payload is None or image_id in self.failing:
            self.failing.discard(image_id)
            raise UpstreamServerError("upstream answered 500", status_code=500)
        sink.write(payload)
        return Downloaded(size=len(payload), crc32=zlib.crc32(payload), content_type=None)
