"""The decoding policy every image decode of the service runs under.

A picture from the upstream is not trusted, and decoding is where it can cost the most: a
progressive JPEG may repeat one tiny scan hundreds of thousands of times, each scan walking
every block of the image again, so 4 MiB of file and 4 megapixels can cost minutes of CPU.
Size and pixel checks do not see that, so every decode here is bounded three ways:

- **scans**: the SOS markers of a JPEG are counted before anything is decoded, and a file with
  more than `max_scans` is refused (libjpeg-turbo's own advice against this attack is a scan
  limit);
- **pixels**: the picture's size is read from its header and one past `max_pixels` is refused
  before decoding;
- **deadline and abandonment**: the decoder reads its input through a `Budget`, which checks,
  at every read, whether the decode's deadline has passed or its caller has stopped waiting,
  and stops it there. Pillow feeds its decoders 64 KiB at a time, so a decode stops at most one
  such block (or one step of the caller's own between its checks) after either.

The pool that runs decodes off the event loop is `app.imaging.pool.DecodePool`.

Exceptions: `DecodeRefused` (with a `reason`: `scans`, `pixels`, `deadline`, `unreadable`)
for a picture this policy will not decode; `DecodeAbandoned` when the caller left (nobody is
told: nobody is listening).
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from PIL import Image as PILImage

RefusalReason = Literal["scans", "pixels", "deadline", "unreadable"]

# Pillow's errors for input it cannot read; its messages may name objects in memory, so they
# are replaced by a sentence of ours.
PILLOW_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    PILImage.DecompressionBombError,
    PILImage.DecompressionBombWarning,
)

_SOI = b"\xff\xd8"
_SOS = 0xDA
_EOI = 0xD9


class DecodeRefused(ValueError):
    """The picture is not decoded: it breaks the decoding policy, or is no readable image."""

    def __init__(self, message: str, *, reason: RefusalReason) -> None:
        super().__init__(message)
        self.reason: RefusalReason = reason


class DecodeAbandoned(Exception):
    """The caller stopped waiting for this decode; it was stopped where it was."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DecodingPolicy:
    """The bounds every decode shares (`DECODE_MAX_SCANS`, `DECODE_DEADLINE`)."""

    max_scans: int = 100
    deadline: float = 10.0  # seconds of one decode, from when a worker starts it


class Budget:
    """What one decode may still spend: time until its deadline, and its caller's attention.

    Created unstarted (a decode waiting in the queue has spent nothing); `start` sets the
    deadline. Thread-safe: the caller abandons from its thread, the decode checks in its own.
    """

    def __init__(self, policy: DecodingPolicy) -> None:
        self.policy = policy
        self._deadline: float | None = None
        self._abandoned = threading.Event()

    def start(self) -> None:
        self._deadline = time.monotonic() + self.policy.deadline

    def abandon(self) -> None:
        self._abandoned.set()

    @property
    def abandoned(self) -> bool:
        return self._abandoned.is_set()

    def check(self) -> None:
        """Raise if this decode must stop now.

        Raises:
            DecodeAbandoned: the caller left.
            DecodeRefused: (reason `deadline`) the deadline passed.
        """
        if self._abandoned.is_set():
            raise DecodeAbandoned("the caller stopped waiting")
        if self._deadline is not None and time.monotonic() > self._deadline:
            raise DecodeRefused(
                f"decoding took longer than {self.policy.deadline:g} s", reason="deadline"
            )

    def reader(self, data: bytes) -> io.BytesIO:
        """`data` as a file whose every read first checks this budget."""
        return _MeteredBytes(data, self)


class _MeteredBytes(io.BytesIO):
    def __init__(self, data: bytes, budget: Budget) -> None:
        super().__init__(data)
        self._budget = budget

    def read(self, size: int | None = -1, /) -> bytes:
        self._budget.check()
        return super().read(size)


def jpeg_scans(data: bytes, *, stop_after: int) -> int:
    """How many scans (SOS markers) the JPEG `data` holds, counting no further than
    `stop_after + 1`; 0 for anything that is not a JPEG.

    Marker segments are skipped by their length; the entropy-coded data after an SOS is
    skipped to the next marker that is neither a stuffed byte (FF00), a restart marker
    (FFD0-FFD7) nor fill (FFFF). Malformed data ends the count where it stops making sense:
    the decoder refuses such files anyway. Costs one `bytes.find` per 0xFF byte in the data.
    """
    if not data.startswith(_SOI):
        return 0
    scans, pos, size = 0, 2, len(data)
    while pos + 1 < size:
        if data[pos] != 0xFF:
            pos = data.find(b"\xff", pos)
            if pos < 0:
                break
            continue
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker == _EOI:
            break
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if pos + 3 >= size:
            break
        pos += 2 + ((data[pos + 2] << 8) | data[pos + 3])
        if marker != _SOS:
            continue
        scans += 1
        if scans > stop_after:
            break
        pos = _end_of_entropy_data(data, pos)
    return scans


def _end_of_entropy_data(data: bytes, pos: int) -> int:
    size = len(data)
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= size:
            return size
        following = data[pos + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7:
            pos += 2
        elif following == 0xFF:
            pos += 1
        else:
            return pos


def open_image(data: bytes, *, budget: Budget, max_pixels: int) -> PILImage.Image:
    """`data` opened (its header read, nothing decoded) under the decoding policy.

    The returned image reads its pixels through `budget` when loaded; load it inside
    `refusing_unreadable` so that Pillow's own errors become a `DecodeRefused`.

    Raises:
        DecodeRefused: more scans than the policy allows, more than `max_pixels`, or no image
            Pillow can read; DecodeAbandoned / DecodeRefused (deadline) from `budget`.
    """
    cap = budget.policy.max_scans
    scans = jpeg_scans(data, stop_after=cap)
    if scans > cap:
        raise DecodeRefused(
            f"it has more than {cap} progressive scans (a normal JPEG has about ten)",
            reason="scans",
        )
    with refusing_unreadable():
        picture = PILImage.open(budget.reader(data))
    width, height = picture.size
    if width * height > max_pixels:
        picture.close()
        raise DecodeRefused(
            f"it is {width}x{height} px, more than {max_pixels:,} pixels", reason="pixels"
        )
    return picture


@contextlib.contextmanager
def refusing_unreadable() -> Iterator[None]:
    """Turn Pillow's errors into `DecodeRefused` (reason `unreadable`).

    Pillow's decompression-bomb warning is not switched to an error here: warning filters are
    process-wide, not per thread. The pixel bound is checked by `open_image` instead; Pillow
    warns (and logs) only for pictures far beyond any bound this service allows.
    """
    try:
        yield
    except DecodeRefused:
        raise
    except PILLOW_ERRORS as exc:
        raise DecodeRefused("it is not a readable image", reason="unreadable") from exc
