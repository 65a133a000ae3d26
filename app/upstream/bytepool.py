"""A per-process pool of reusable byte buffers that image bodies are received into.

A body read into a buffer of this pool crosses the process once (kernel to buffer) and leaves
as views of that buffer; a spool costs a write, a read and their copies for every byte. The
pool bounds what that costs in memory:

* `BytePool(max_bytes=...)` never holds more than `max_bytes` of buffers, granted or idle. A
  buffer comes back when its image is written (`PooledImage.close`) and is reused, or freed to
  make room for a larger one, only once no view of it is alive any more (a view may sit in a
  socket's send queue after the writer has moved on).
* `BytePool.share()` is one request's claim: at most `request_bytes` granted to it at once, so
  a slow client cannot hold the pool, and grants in archive order (`ShareTurns`): image k is
  considered only once every earlier image of the request got a buffer or went without, so
  the buffers granted are always a leading run of the images the writer has yet to write, and
  the writer frees them in order. A grant that cannot be made within `wait` seconds is
  refused; the caller then uses its spool. Nothing waits for ever.
* An image waits for room only when its request's own share is full and its writer is
  writing: the writer frees the share's buffers in order, while the image it needs next may
  be this one. Not when the pool is full of other requests' images (they come back at their
  writers' pace: `make bench`, (h), four 50 x 10 MB downloads, 471 MB/s waiting against 594
  without the pool), not before any image of the request was written (a resumed archive
  fetches every image before its first byte: (e), 3.0 s to its first byte against 1.5 s),
  and not again after an image waited in vain with nothing given back since.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import cast

# Buffers are allocated in whole granules so that images of slightly different sizes reuse
# them; small, so that a 100 kB image does not hold a MiB (`make load`: 20-image orders of
# 100 kB, 50 clients).
GRANULE = 64 * 1024
# While a grant waits for room, how often views of returned buffers are looked at again
# (nothing signals that a socket released the last view of a buffer).
POLL_SECONDS = 0.002


def _rounded(size: int) -> int:
    return max(GRANULE, -(-size // GRANULE) * GRANULE)


def _unviewed(buffer: bytearray) -> bool:
    """Whether no view of `buffer` is alive: a bytearray refuses to resize while exported."""
    try:
        buffer.append(0)
    except BufferError:
        return False
    del buffer[-1]
    return True


class PooledImage:
    """One image's bytes in a pooled buffer, read like a spool: `seek`, `read`, `close`.

    `read(n)` hands out views of the buffer typed as `bytes`: the archive writer's consumers
    (the response, the archive stores) take only their length, slices of them and the buffer
    protocol, and no copy is made. `read()` of the rest returns a `bytes` copy: its reader is
    the image decoder of a variant, which uses `bytes`' own methods and costs far more than
    the copy. `close` returns the buffer to the pool (idempotent).
    """

    def __init__(self, share: PoolShare, buffer: bytearray, size: int) -> None:
        self._share = share
        self._buffer: bytearray | None = buffer
        self._view = memoryview(buffer)[:size]
        self.size = size
        self._position = 0

    @property
    def view(self) -> memoryview:
        """The whole body."""
        return self._view

    def seek(self, offset: int, whence: int = 0, /) -> int:
        if whence != 0:
            raise ValueError("a pooled image seeks from its start only")
        self._position = offset
        return offset

    def read(self, size: int = -1, /) -> bytes:
        end = self.size if size < 0 else min(self.size, self._position + size)
        chunk = self._view[self._position : end]
        self._position = end
        return bytes(chunk) if size < 0 else cast(bytes, chunk)

    def close(self) -> None:
        if self._buffer is not None:
            buffer, self._buffer = self._buffer, None
            self._view.release()
            self._share.give_back(buffer)


class BytePool:
    """The process's buffers: at most `max_bytes`, at most `request_bytes` to one request, for
    bodies of at most `max_image_bytes`; a grant waits at most `wait` seconds."""

    def __init__(
        self, *, max_bytes: int, request_bytes: int, max_image_bytes: int, wait: float
    ) -> None:
        self.max_bytes = max_bytes
        self.max_image_bytes = max_image_bytes
        self.request_bytes = min(request_bytes, max_bytes)
        self.wait = wait
        self.held = 0  # bytes of every buffer the pool has allocated and not freed
        self.peak = 0  # the most `held` has been
        self.lent = 0  # bytes of buffers granted and not given back
        self._idle: list[bytearray] = []  # returned; maybe still viewed

    def share(self) -> PoolShare:
        """A new request's claim on the pool."""
        return PoolShare(self)

    def image_buffer(self, share: PoolShare, index: int) -> ImageBuffer:
        """The buffer source of image `index` of the request holding `share`."""
        return ImageBuffer(share, index, max_image_bytes=self.max_image_bytes)

    def _take(self, size: int) -> bytearray | None:
        """A buffer of at least `size` bytes, or None when the pool has no room now."""
        need = _rounded(size)
        # At most twice the size: a small image does not take (and hold) a large buffer.
        fitting = [b for b in self._idle if need <= len(b) <= 2 * need and _unviewed(b)]
        if fitting:
            buffer = min(fitting, key=len)
            self._idle.remove(buffer)
            return buffer
        for idle in sorted(self._idle, key=len, reverse=True):
            if self.held + need <= self.max_bytes:
                break
            if _unviewed(idle):
                self._idle.remove(idle)
                self.held -= len(idle)
        if self.held + need > self.max_bytes:
            return None
        self.held += need
        self.peak = max(self.peak, self.held)
        return bytearray(need)

    def _put(self, buffer: bytearray) -> None:
        self._idle.append(buffer)


class PoolShare:
    """One request's buffers, granted in archive order (`turns`)."""

    def __init__(self, pool: BytePool) -> None:
        self._pool = pool
        self.granted = 0  # bytes of this request's buffers not yet given back
        self._given_back = 0  # this request's buffers given back (its writer wrote them)
        self._starved_at = -1  # `_given_back` when an image last waited for room in vain
        self._order: list[int] = []  # the request's images, in archive order
        self._decided: set[int] = set()
        self._changed = asyncio.Event()

    def expect(self, index: int) -> None:
        """Image `index` is the next to be fetched (call in archive order)."""
        self._order.append(index)

    def decided(self, index: int) -> None:
        """Image `index` will ask for no buffer (any more): later images may go ahead."""
        if index not in self._decided:
            self._decided.add(index)
            self._wake()

    def _my_turn(self, index: int) -> bool:
        for earlier in self._order:
            if earlier == index:
                return True
            if earlier not in self._decided:
                return False
        return True

    async def grant(self, index: int, size: int) -> PooledImage | None:
        """A buffer for image `index` of `size` bytes, or None after the pool's `wait`."""
        pool = self._pool
        if size > pool.request_bytes:
            self.decided(index)
            return None
        deadline = time.monotonic() + pool.wait
        waits_for_room = False
        try:
            while True:
                if self._my_turn(index):
                    share_full = self.granted + _rounded(size) > pool.request_bytes
                    buffer = None if share_full else pool._take(size)
                    if buffer is not None:
                        self.granted += len(buffer)
                        pool.lent += len(buffer)
                        return PooledImage(self, buffer, size)
                    if not self._room_may_come(share_full):
                        return None
                    waits_for_room = True
                left = deadline - time.monotonic()
                if left <= 0:
                    if waits_for_room:
                        self._starved_at = self._given_back
                    return None
                self._changed.clear()
                # Not wait_for, which on Python 3.11 can swallow a cancellation.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(left, POLL_SECONDS)):
                        await self._changed.wait()
        finally:
            self.decided(index)

    def _room_may_come(self, share_full: bool) -> bool:
        """Whether it is worth waiting for room (see the module docstring)."""
        return share_full and self._given_back > 0 and self._starved_at != self._given_back

    def give_back(self, buffer: bytearray) -> None:
        self.granted -= len(buffer)
        self._given_back += 1
        self._pool.lent -= len(buffer)
        self._pool._put(buffer)
        self._wake()

    def _wake(self) -> None:
        self._changed.set()


class ImageBuffer:
    """The buffer of one image of a request, kept across the attempts of its download."""

    def __init__(self, share: PoolShare, index: int, *, max_image_bytes: int) -> None:
        self._share = share
        self._index = index
        self._max = max_image_bytes
        self.image: PooledImage | None = None

    async def take(self, size: int) -> PooledImage | None:
        """A buffer for a body of `size` bytes (the same one on a retry), or None: spool it."""
        if self.image is not None and self.image.size == size:
            return self.image
        self.close()
        if size > self._max:
            self.settle()
            return None
        self.image = await self._share.grant(self._index, size)
        return self.image

    def settle(self) -> None:
        """This image asks for no buffer now: later images need not wait for it."""
        self._share.decided(self._index)

    def close(self) -> None:
        """Give the buffer back (a failed or abandoned download)."""
        if self.image is not None:
            self.image.close()
            self.image = None
