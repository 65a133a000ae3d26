"""The sandbox's store is bounded: anyone may upload for ever without growing its memory.

Its own standalone sandbox (small bounds), so no other test's orders can be evicted.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from app.sandbox.store import DEMO_ORDER_ID
from testkit.processes import sandbox_process

MAX_ORDERS = 4
MAX_BYTES = 150_000
UPLOAD_BYTES = 40_000


@pytest.fixture
def small_sandbox() -> Iterator[str]:
    env = {"SANDBOX_MAX_ORDERS": str(MAX_ORDERS), "SANDBOX_MAX_STORED_BYTES": str(MAX_BYTES)}
    with sandbox_process("--processing-delay", "0", env=env) as root:
        yield root


def upload_order(client: httpx.Client, key: str) -> str:
    """One order with one uploaded image, the way a client of the real API makes it."""
    headers = {"x-api-key": key}
    order = client.post("/v3/orders/", json={"name": "upload"}, headers=headers)
    order.raise_for_status()
    order_id: str = order.json()["order_id"]
    image = client.post(
        "/v3/images/",
        json={"order_id": order_id, "image_name": "x", "contentType": "image/jpeg"},
        headers=headers,
    )
    image.raise_for_status()
    put = client.put(
        image.json()["upload_url"],
        content=b"\xff\xd8\xff" + bytes(UPLOAD_BYTES - 3),
        headers={"Content-Type": "image/jpeg"},
    )
    put.raise_for_status()
    return order_id


def test_old_orders_are_forgotten_past_the_bounds_and_the_demo_order_stays(
    small_sandbox: str,
) -> None:
    key = f"uploader-{uuid.uuid4().hex}"
    with httpx.Client(base_url=small_sandbox, timeout=30) as client:
        order_ids = []
        for _ in range(8):
            order_ids.append(upload_order(client, key))
            stats = client.get("/_sandbox/stats").json()
            assert stats["orders"] <= MAX_ORDERS
            assert stats["stored_bytes"] <= MAX_BYTES
        # 150 kB hold three 40 kB uploads: the newest three orders stay, with the demo order.
        seen = [
            client.get(f"/v3/orders/{oid}", headers={"x-api-key": key}).status_code
            for oid in order_ids
        ]
        assert seen == [404] * 5 + [200] * 3
        assert client.get(f"/v3/orders/{DEMO_ORDER_ID}").status_code == 200
        images = client.get(f"/v3/orders/{DEMO_ORDER_ID}").json()["images"]
        assert images, "the demo order keeps its images"


def test_order_count_is_bounded_without_uploads(small_sandbox: str) -> None:
    key = f"creator-{uuid.uuid4().hex}"
    with httpx.Client(base_url=small_sandbox, timeout=30) as client:
        created = [
            client.post("/v3/orders/", json={}, headers={"x-api-key": key}).json()["order_id"]
            for _ in range(10)
        ]
        stats = client.get("/_sandbox/stats").json()
        assert stats["orders"] == MAX_ORDERS  # the demo order and the three newest
        listed = client.get("/v3/orders/", params={"per_page": 15}, headers={"x-api-key": key})
        ids = {o["order_id"] for o in listed.json()["orders"]}
        assert ids == {DEMO_ORDER_ID, *created[-3:]}
