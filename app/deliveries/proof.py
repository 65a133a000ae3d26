"""Counting the bytes of an archive answer that were written to the recipient.

`ServedBody` wraps a response's body iterator. A chunk counts once the server asks for the
next one — the ASGI `send` of the chunk has returned, so the bytes were handed to the
connection — or when the iterator ends. A client that leaves mid-way has the chunk in
flight not counted: the record can only fall short of what arrived, never exceed it.

What was counted is reported to `on_served(start, end, total)` every `FLUSH_BYTES` and when
the body ends or is closed; `total` is the archive's size when known (a `Content-Length`, a
`Content-Range`, or a body that ran to its end from byte 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterable, Awaitable, Callable

import anyio

logger = logging.getLogger("app.deliveries")

# Bytes served between two writes of the record: a broken download loses at most this much of
# its proof if the process dies, and a large archive costs one write per this many bytes.
FLUSH_BYTES = 8 * 1024 * 1024

# Reports still being written after their request's task was cancelled (kept referenced).
_IN_FLIGHT: set[asyncio.Future[None]] = set()

OnServed = Callable[[int, int, int | None], Awaitable[None]]


class ServedBody:
    """An async iterator over `inner` that reports which bytes went out (see the module)."""

    def __init__(
        self,
        inner: AsyncIterable[bytes | str | memoryview],
        *,
        start: int,
        total: int | None,
        on_served: OnServed,
        flush_bytes: int = FLUSH_BYTES,
    ) -> None:
        self._inner = aiter(inner)
        self._first = start
        self._start = start  # first byte not yet reported
        self._position = start  # first byte not yet counted as sent
        self._pending = 0  # bytes handed out, not yet known to be sent
        self._total = total
        self._on_served = on_served
        self._flush_bytes = flush_bytes
        self._closed = False
        self._size_learned = False  # the size became known and is not reported yet

    def __aiter__(self) -> ServedBody:
        return self

    async def __anext__(self) -> bytes:
        self._position += self._pending  # asked again: the last chunk was sent
        self._pending = 0
        if self._position - self._start >= self._flush_bytes:
            await self._report()
        try:
            piece = await anext(self._inner)
        except StopAsyncIteration:
            if self._total is None and self._first == 0:
                self._total = self._position  # a whole archive ran to its end
                self._size_learned = True
            await self.aclose()
            raise
        chunk = piece.encode() if isinstance(piece, str) else bytes(piece)
        self._pending = len(chunk)
        return chunk

    async def _report(self) -> None:
        start, end = self._start, self._position
        if end <= start and not self._size_learned:
            return
        self._start = end
        self._size_learned = False
        # The write runs as a task of its own: a client that leaves cancels the request's task
        # (natively, or through a cancel scope of the server), and the proof must still be
        # written. Writes merge into the stored intervals, so their order does not matter.
        write = asyncio.ensure_future(self._write(start, end, self._total))
        _IN_FLIGHT.add(write)
        write.add_done_callback(_IN_FLIGHT.discard)
        await asyncio.shield(write)

    async def _write(self, start: int, end: int, total: int | None) -> None:
        try:
            await self._on_served(start, end, total)
        except Exception as exc:  # the store is down: the download itself goes on
            logger.warning("served bytes not recorded: %r", exc)

    async def aclose(self) -> None:
        """Report what was sent and close `inner` (idempotent); the chunk in flight, if any,
        is not counted."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._report()
        finally:
            aclose = getattr(self._inner, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                    await aclose()
