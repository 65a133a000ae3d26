"""Rendering an archive's entries for their variants, off the event loop, fairly.

`Renderer.output(data, variant)`, called inside `Renderer.slot(lane)`, turns one fetched
full-quality image into the bytes of one entry: rendered for a preset (`app.imaging.render`:
resize, sRGB, pad, byte cap), passed through for an original preset or a plain entry
(`variant` None), each with the pixels and SHA-256 that `manifest.json` lists. The work runs
in the process's one `DecodePool`, under its decoding policy (scan cap, deadline, abandoned
when the archive's client leaves); a `FairLimiter` of as many slots as the pool has workers
hands them round-robin to the archives asking (one lane each), so one large order cannot hold
every worker while a small one waits, and the pool's queue stays free for thumbnails. A
caller reads an image into memory only once it holds a slot, so the images waiting for one
stay in their spools.

A picture that cannot be rendered is an `EntrySkipped`, with the reason the download report
gives: it does not fit under the byte cap even at the lowest quality, the decoding policy
refused it, or the pool was too busy (transient, like an upstream failure: such an archive is
not cached).
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from app.archive.fairness import FairLimiter
from app.imaging.decoding import Budget, DecodeRefused, open_image, refusing_unreadable
from app.imaging.pool import DecodePool, DecoderBusy
from app.imaging.presets import Preset
from app.imaging.render import NO_PIXEL_BOUND, Skipped, render, upright_size


class EntrySkipped(Exception):
    """One entry of the archive cannot be made; `message` says why (for the report)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RendererBusy(EntrySkipped):
    """The decode pool was full: transient (an archive skips the entry and is not cached; a
    caller answering for one photo answers 503 with Retry-After)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Output:
    """One entry's bytes (None: the fetched image itself), pixels and SHA-256."""

    content: bytes | None
    width: int | None
    height: int | None
    sha256: str


class Renderer:
    """Renders entries in `pool`, at most `concurrency` at once, round-robin by lane."""

    def __init__(self, pool: DecodePool, *, concurrency: int, max_pixels: int) -> None:
        self._pool = pool
        self._slots = FairLimiter(concurrency)
        self._max_pixels = max_pixels

    def slot(self, lane: Hashable) -> AbstractAsyncContextManager[None]:
        """One of the renderer's slots, in `lane`'s turn: hold it around `output`."""
        return self._slots.slot(lane)

    async def output(self, data: bytes, variant: Preset | None) -> Output:
        """The entry `data` becomes for `variant` (None: as fetched, described only); the
        caller holds a `slot`.

        Raises:
            EntrySkipped: it cannot be rendered (see the module docstring).
            asyncio.CancelledError: the caller was cancelled (the render is abandoned).
        """
        label = f"{variant.label}: " if variant is not None else ""
        try:
            return await self._pool.run(lambda budget: self._work(data, variant, budget))
        except DecoderBusy:
            raise RendererBusy(
                f"{label}the service was too busy rendering it; download again"
            ) from None
        except DecodeRefused as exc:
            raise EntrySkipped(f"{label}it could not be rendered: {exc}") from None
        except _NotFitting as exc:
            raise EntrySkipped(f"{label}{exc}") from None

    def _work(self, data: bytes, variant: Preset | None, budget: Budget) -> Output:
        if variant is None:
            width, height = _described(data, budget)
            return Output(
                content=None, width=width, height=height, sha256=hashlib.sha256(data).hexdigest()
            )
        result = render(data, variant, budget=budget, max_pixels=self._max_pixels)
        if isinstance(result, Skipped):
            raise _NotFitting(result.reason)
        content = None if variant.original else result.content
        return Output(
            content=content,
            width=result.width,
            height=result.height,
            sha256=hashlib.sha256(result.content).hexdigest(),
        )


class _NotFitting(Exception):
    """A rendering that does not fit its preset's byte cap."""


def _described(data: bytes, budget: Budget) -> tuple[int | None, int | None]:
    """The pixels an image's header declares, or None for a format the decoder cannot read
    (the image is delivered as fetched all the same)."""
    try:
        with refusing_unreadable():
            with open_image(data, budget=budget, max_pixels=NO_PIXEL_BOUND) as picture:
                return upright_size(picture)
    except DecodeRefused:
        return None, None
