"""Helpers of the variants suite: photos of real sizes, orders of them, reading archives."""

from __future__ import annotations

import io
import random
import uuid
import zipfile
from typing import Any

import httpx
from PIL import Image

from tests.orders.conftest import uploaded_order


def photo(width: int, height: int, *, seed: int, noise: float = 0.3) -> bytes:
    """A JPEG of `width` x `height`: a colour gradient with `noise` of random grain, so that
    its bytes, like a real photo's, depend on the quality it is encoded at."""
    gradient = Image.linear_gradient("L").resize((width, height))
    base = Image.merge(
        "RGB",
        (gradient, gradient.transpose(Image.Transpose.ROTATE_90).resize((width, height)), gradient),
    )
    grain = Image.frombytes(
        "RGB", (width, height), random.Random(seed).randbytes(width * height * 3)
    )
    out = io.BytesIO()
    Image.blend(base, grain, noise).save(out, "JPEG", quality=92)
    return out.getvalue()


def unique_key(label: str) -> str:
    """An Autoenhance key of this test alone: its orders and request log are its own."""
    return f"{label}-{uuid.uuid4().hex}"


def photo_order(sandbox_url: str, key: str, photos: list[tuple[str, bytes]]) -> dict[str, Any]:
    """A processed order of `photos` made with `key` through the sandbox's API."""
    return uploaded_order(sandbox_url, key, photos, timeout=120)


def buy(service_url: str, order_id: str, key: str) -> None:
    """Download the order in full quality once: the first such download flips each image's
    `downloaded` flag, which changes the order's version (and every archive's ETag)."""
    response = httpx.get(
        f"{service_url}/orders/{order_id}/images?preview=false",
        headers={"X-Autoenhance-Key": key},
        timeout=120,
    )
    assert response.status_code == 200, response.text


def entries(archive: bytes) -> dict[str, bytes]:
    """Every entry of `archive`, in archive order, checked by its CRC."""
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        assert zf.testzip() is None
        return {info.filename: zf.read(info) for info in zf.infolist()}


def enhanced(sandbox_url: str, key: str, image_id: str) -> bytes:
    """The full-quality image as the upstream delivers it."""
    response = httpx.get(
        f"{sandbox_url}/images/{image_id}/enhanced",
        params={"format": "jpeg", "preview": "false"},
        headers={"x-api-key": key},
        timeout=60,
        follow_redirects=True,
    )
    response.raise_for_status()
    return response.content
