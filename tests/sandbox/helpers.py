"""Assertions and shortcuts shared by the sandbox tests."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import httpx
from PIL import Image

INTERNAL_BASE = "http://sandbox.internal/v3"
# `async with inprocess(**config) as client` (see the fixture in conftest.py).
InProcess = Callable[..., Any]


def synthetic(control: httpx.Client, **body: Any) -> dict[str, Any]:
    """Create a synthetic order through the control API and return its OrderOut."""
    response = control.post("/_sandbox/orders", json={"images": 1, "image_bytes": 5000, **body})
    assert response.status_code == 200, response.text
    payload: dict[str, Any] = response.json()
    return payload


def assert_http_error(response: httpx.Response, status: int) -> dict[str, Any]:
    """Check the upstream HTTPError shape and return the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert isinstance(body["message"], str)
    assert body["message"]
    assert isinstance(body["detail"], dict)
    return body


def open_image(data: bytes) -> Image.Image:
    """Decode downloaded bytes fully (a truncated file fails here)."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def jpeg_bytes(width: int = 320, height: int = 200) -> bytes:
    """A small real JPEG with some structure, for uploads."""
    image = Image.new("RGB", (width, height))
    for x in range(width):
        for y in range(0, height, 4):
            image.putpixel((x, y), (x % 256, y % 256, 90))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80)
    return out.getvalue()
