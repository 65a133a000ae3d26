"""The ordering service alone: partial failures are reported per file, never raised."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from app.services.ordering import ImageOutcome, ImageUpload, create_order_with_images
from app.upstream.client import AutoenhanceClient
from app.upstream.errors import UpstreamServerError

ORDER_ID = "0b7d6c2e-1111-4222-8333-444455556666"


def client_for(handler: httpx.MockTransport) -> AutoenhanceClient:
    http = httpx.AsyncClient(transport=handler)
    return AutoenhanceClient(http, base_url="https://api.test/v3", api_version="v", retries=0)


def upload(name: str) -> ImageUpload:
    return ImageUpload(name, "image/jpeg", lambda: b"\xff\xd8\xff" + name.encode())


async def test_reports_which_files_made_it_when_some_fail() -> None:
    active = 0
    peak = 0
    put: dict[str, bytes] = {}

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal active, peak
        if request.url.path == "/v3/orders/":
            assert request.headers["x-api-key"] == "caller-key"
            return httpx.Response(200, json={"order_id": ORDER_ID, "name": "N"})
        if request.url.path == "/v3/images/":
            name = json.loads(request.content)["image_name"]
            if name == "unregistrable.jpg":
                return httpx.Response(422, json={"message": "bad name"})
            return httpx.Response(
                200, json={"image_id": "id-" + name, "upload_url": f"https://s3.test/{name}"}
            )
        active += 1
        peak = max(peak, active)
        try:
            await asyncio.sleep(0.02)  # lets the other uploads start, to measure the bound
            name = request.url.path.lstrip("/")
            if name == "broken-upload.jpg":
                return httpx.Response(403, text="<Error/>")
            put[name] = request.content
            return httpx.Response(200)
        finally:
            active -= 1

    names = ["a.jpg", "unregistrable.jpg", "broken-upload.jpg", "b.jpg"]
    seen: list[ImageOutcome] = []
    created = await create_order_with_images(
        client_for(httpx.MockTransport(handler)),
        [upload(n) for n in names],
        api_key="caller-key",
        name="N",
        concurrency=2,
        on_done=seen.append,
    )
    assert created.order_id == ORDER_ID
    assert [(i.file, i.image_id, i.uploaded) for i in created.images] == [
        ("a.jpg", "id-a.jpg", True),
        ("unregistrable.jpg", None, False),
        ("broken-upload.jpg", "id-broken-upload.jpg", False),
        ("b.jpg", "id-b.jpg", True),
    ]
    assert "registering failed" in (created.images[1].error or "")
    assert "uploading failed" in (created.images[2].error or "")
    assert (created.uploaded, created.failed) == (2, 2)
    assert put == {"a.jpg": b"\xff\xd8\xffa.jpg", "b.jpg": b"\xff\xd8\xffb.jpg"}
    assert sorted(o.file for o in seen) == sorted(names)
    assert peak == 2  # concurrent, and bounded


async def test_a_failure_creating_the_order_propagates_and_nothing_is_uploaded() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(500)

    with pytest.raises(UpstreamServerError):
        await create_order_with_images(
            client_for(httpx.MockTransport(handler)),
            [upload("a.jpg")],
            api_key="k",
            name=None,
            concurrency=1,
        )
    assert calls == ["/v3/orders/"]
