"""A lying upstream on a real socket: an order too large to read, and an image reprocessed
without its order's date moving. The service runs under a real uvicorn server."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from app.main import create_app
from tests.conftest import SettingsFactory
from tests.integration.hostile_upstream import Answer, HostileUpstream, image_answer, jpeg
from tests.support import UvicornThread

STAMP = "2025-07-05T09:30:00Z"
JSON_BOUND = 256 * 1024


@pytest.fixture
def hostile() -> Iterator[HostileUpstream]:
    with HostileUpstream() as upstream:
        yield upstream


@pytest.fixture
def service(make_settings: SettingsFactory, hostile: HostileUpstream) -> Iterator[UvicornThread]:
    settings = make_settings(
        autoenhance_api_base=hostile.url, upstream_retries=0, upstream_max_json_bytes=JSON_BOUND
    )
    with UvicornThread(create_app(settings)) as server:
        yield server


def order_json(order_id: str, images: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "name": "Harbour View",
        "created_at": STAMP,
        "last_updated_at": STAMP,
        "images": images,
        **extra,
    }


@pytest.mark.parametrize("length", [True, False], ids=["with a length", "close-delimited"])
def test_an_order_larger_than_the_bound_is_a_502_read_no_further(
    service: UvicornThread, hostile: HostileUpstream, length: bool
) -> None:
    # A valid order whose JSON is 32 times the bound: an unknown field carries the padding.
    order_id = str(uuid.uuid4())
    padded = order_json(
        order_id,
        [{"image_id": "front", "image_name": "front", "status": "processed"}],
        padding="x" * (32 * JSON_BOUND),
    )
    body = json.dumps(padded).encode()
    hostile.orders[order_id] = Answer(
        body=body, headers={"Content-Type": "application/json"}, length=length
    )
    hostile.images["front"] = image_answer(jpeg())
    for path in (f"/orders/{order_id}/images", f"/orders/{order_id}"):
        response = httpx.get(service.url + path, timeout=60)
        assert response.status_code == 502, response.text
        assert response.headers["content-type"] == "application/json"
        assert set(response.json()) >= {"error", "detail"}
    # The picture was never asked for: the order was refused before anything else.
    assert not [target for target in hostile.requests() if "/images/" in target]


def test_an_order_within_the_bound_is_served(
    service: UvicornThread, hostile: HostileUpstream
) -> None:
    order_id = str(uuid.uuid4())
    hostile.orders[order_id] = order_json(
        order_id,
        [{"image_id": "front", "image_name": "front", "status": "processed"}],
        padding="x" * (JSON_BOUND // 2),
    )
    response = httpx.get(f"{service.url}/orders/{order_id}", timeout=60)
    assert response.status_code == 200, response.text


def picture(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(out, "JPEG", quality=90)
    return out.getvalue()


def test_a_reprocessed_image_never_gets_a_stale_thumbnail(
    service: UvicornThread, hostile: HostileUpstream
) -> None:
    """Reprocessing (here with another AI version) ends in the same status, and the order's
    `last_updated_at` is not trusted to move: the image's own record must change the ETag."""
    order_id = str(uuid.uuid4())
    before = {
        "image_id": "kitchen",
        "image_name": "kitchen",
        "status": "processed",
        "date_added": 1_751_700_000_000,
        "ai_version": "4.x",
    }
    hostile.orders[order_id] = order_json(order_id, [before])
    hostile.images["kitchen"] = image_answer(picture((200, 40, 40)))
    path = f"{service.url}/orders/{order_id}/images/kitchen/thumbnail"
    first = httpx.get(path, timeout=30)
    assert first.status_code == 200, first.text
    assert httpx.get(path, headers={"If-None-Match": first.headers["etag"]}).status_code == 304

    hostile.orders[order_id] = order_json(order_id, [{**before, "ai_version": "5.0"}])
    hostile.images["kitchen"] = image_answer(picture((40, 200, 40)))
    again = httpx.get(path, headers={"If-None-Match": first.headers["etag"]}, timeout=30)
    assert again.status_code == 200
    assert again.headers["etag"] != first.headers["etag"]
    assert again.content != first.content
