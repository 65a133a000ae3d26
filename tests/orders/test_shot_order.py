"""An order created from uploads keeps the shot order, in the summary and in the ZIP."""

from __future__ import annotations

import io
import random
import time
import zipfile

import httpx
from PIL import Image

from tests.orders.conftest import ADMIN_TOKEN, ServiceFactory

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
FILES = 20


def photo(index: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (48, 32), (index * 12, 255 - index * 12, 90)).save(out, "JPEG")
    return out.getvalue()


def wait_ready(client: httpx.Client, order_id: str, *, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        summary: dict = client.get(f"/orders/{order_id}").raise_for_status().json()
        if summary["state"] == "ready":
            return summary
        assert time.monotonic() < deadline, f"order not ready in {timeout}s: {summary['state']}"
        time.sleep(0.05)


def test_twenty_uploaded_files_come_back_in_the_order_given(
    live_service: ServiceFactory, sandbox: httpx.Client, sandbox_url: str
) -> None:
    # Not alphabetical: the order given is what must be kept, not a sort of the names.
    shots = [f"room-{i:02d}" for i in range(FILES)]
    random.Random(13).shuffle(shots)
    # The first registration answers slowest: registered concurrently, it would land later.
    sandbox.post(
        "/_sandbox/faults", json={"kind": "latency", "ms": 400, "scope": "order", "count": 2}
    ).raise_for_status()
    files = [("files", (f"{name}.jpg", photo(i), "image/jpeg")) for i, name in enumerate(shots)]
    with (
        live_service(sandbox_url, admin_token=ADMIN_TOKEN) as server,
        httpx.Client(base_url=server.url, timeout=60) as client,
    ):
        created = client.post(
            "/api/create-order", files=files, data={"name": "12 Harbour View"}, headers=ADMIN
        )
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["name"] == "12 Harbour View"
        assert [image["file"] for image in body["images"]] == [f"{n}.jpg" for n in shots]
        assert body["uploaded"] == FILES

        summary = wait_ready(client, body["order_id"])
        assert summary["name"] == "12 Harbour View"
        assert [image["image_name"] for image in summary["images"]] == [f"{n}.jpg" for n in shots]

        archive = client.get(f"/orders/{body['order_id']}/images")
        assert archive.status_code == 200
        assert archive.headers["content-disposition"].startswith(
            'attachment; filename="12 Harbour View (preview).zip"'
        )
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zipped:
        assert zipped.testzip() is None
        assert zipped.namelist() == [f"{name}.jpg" for name in shots]
