"""Conformance: the official `autoenhance` Python SDK drives the standalone sandbox unchanged."""

from __future__ import annotations

import time

import httpx
import pytest

from app.sandbox import DEMO_ORDER_ID
from tests.sandbox.helpers import jpeg_bytes, open_image

autoenhance = pytest.importorskip("autoenhance")


@pytest.fixture
def sdk(sandbox_url: str, api_key: str) -> object:
    client = autoenhance.Autoenhance(api_key, baseURL=sandbox_url.removesuffix("/v3"))
    yield client
    client.rest_client.pool_manager.clear()


def test_sdk_create_upload_retrieve_download(sdk: object) -> None:
    order = sdk.create_order(name="SDK order")  # type: ignore[attr-defined]
    assert order["status"] == "waiting"
    order_id = order["order_id"]

    created = sdk.create_image(  # type: ignore[attr-defined]
        order_id=order_id, image_name="sdk-kitchen", content_type="image/jpeg"
    )
    assert isinstance(created, autoenhance.ImageCreatedOut)
    assert created.order_id == order_id
    assert created.status == "waiting"
    assert created.upload_url == created.additional_properties["s3PutObjectUrl"]

    upload = httpx.put(
        created.upload_url, content=jpeg_bytes(640, 480), headers={"Content-Type": "image/jpeg"}
    )
    assert upload.status_code == 200

    deadline = time.monotonic() + 10
    while True:
        retrieved = sdk.retrieve_order(id=order_id)  # type: ignore[attr-defined]
        assert isinstance(retrieved, autoenhance.OrderOut)
        if not retrieved.is_processing and retrieved.status == "processed":
            break
        assert time.monotonic() < deadline, "order never finished processing"
        time.sleep(0.05)
    assert retrieved.name == "SDK order"
    assert retrieved.total_images == 1
    (image,) = retrieved.images
    assert image.image_id == created.image_id
    assert image.status == "processed"
    assert image.additional_properties["enhanced"] is True

    data = sdk.download_enhanced_image(  # type: ignore[attr-defined]
        id=created.image_id, format="png", preview=False, max_width=320
    )
    assert isinstance(data, bytes | bytearray)
    decoded = open_image(bytes(data))
    assert decoded.format == "PNG"
    assert decoded.size == (320, 240)
    assert sdk.retrieve_image(id=created.image_id).downloaded is True  # type: ignore[attr-defined]


def test_sdk_pages_through_orders_and_reads_the_demo(sdk: object) -> None:
    sdk.create_order(name="listed")  # type: ignore[attr-defined]
    names: list[str | None] = []
    offset = None
    for _ in range(1000):
        page = sdk.list_orders(per_page=15, offset=offset)  # type: ignore[attr-defined]
        assert isinstance(page, autoenhance.OrdersOut)
        names += [order.name for order in page.orders]
        offset = page.pagination.next_offset
        if offset is None:
            break
    assert names[0] == "listed"  # newest first
    assert "Demo order — 12 Harbour View" in names
    demo = sdk.retrieve_order(id=DEMO_ORDER_ID)  # type: ignore[attr-defined]
    assert demo.status == "processed"
    assert len(demo.images) >= 3


def test_sdk_surfaces_errors_as_api_exceptions(sdk: object) -> None:
    with pytest.raises(autoenhance.exceptions.NotFoundException):
        sdk.retrieve_order(id="no-such-order")  # type: ignore[attr-defined]
    with pytest.raises(autoenhance.exceptions.NotFoundException):
        sdk.download_enhanced_image(id="no-such-image")  # type: ignore[attr-defined]
    waiting = sdk.create_image(image_name="never-uploaded")  # type: ignore[attr-defined]
    with pytest.raises(autoenhance.exceptions.ApiException) as caught:
        sdk.download_enhanced_image(id=waiting.image_id)  # type: ignore[attr-defined]
    assert caught.value.status == 422
    assert "not ready" in caught.value.body
