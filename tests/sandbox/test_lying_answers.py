"""The sandbox can lie like a misbehaving upstream: statuses that are not the image, an HTML
page, names UTF-8 cannot encode; and its synthetic images are whole images of the format
asked for. Observed over a real socket."""

from __future__ import annotations

import io
from typing import Any

import httpx
import pytest
from PIL import Image

from app.upstream.sniff import DeliveredImage
from tests.sandbox.helpers import synthetic

SIZE = 20_000


def inject(sandbox: httpx.Client, **fault: Any) -> None:
    response = sandbox.post("/_sandbox/faults", json=fault)
    assert response.status_code == 200, response.text


@pytest.fixture
def image_id(sandbox: httpx.Client) -> str:
    value: str = synthetic(sandbox, image_bytes=SIZE)["images"][0]["image_id"]
    return value


@pytest.mark.parametrize("status", [202, 204, 206, 300, 304])
def test_wrong_status_replaces_the_image_answer(
    sandbox: httpx.Client, api: httpx.Client, image_id: str, status: int
) -> None:
    whole = api.get(f"/images/{image_id}/enhanced", follow_redirects=True).content
    inject(sandbox, kind="wrong_status", status=status, image_ids=[image_id], count=1)
    response = api.get(f"/images/{image_id}/enhanced", follow_redirects=True)
    assert response.status_code == status
    assert "location" not in response.headers
    expected = {204: b"", 304: b"", 206: whole[: SIZE // 2]}.get(status, whole)
    assert response.content == expected
    if status == 206:
        assert response.headers["content-range"] == f"bytes 0-{SIZE // 2 - 1}/{SIZE}"
    again = api.get(f"/images/{image_id}/enhanced", follow_redirects=True)
    assert again.status_code == 200
    assert again.content == whole


def test_html_page_can_even_claim_to_be_an_image(
    sandbox: httpx.Client, api: httpx.Client, image_id: str
) -> None:
    inject(sandbox, kind="html_page", content_type="image/jpeg", image_ids=[image_id])
    response = api.get(f"/images/{image_id}/enhanced", follow_redirects=True)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert response.content.startswith(b"<!DOCTYPE html>")
    assert int(response.headers["content-length"]) == len(response.content)


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp"])
def test_synthetic_images_are_whole_images_of_the_format_asked(
    api: httpx.Client, image_id: str, fmt: str
) -> None:
    response = api.get(
        f"/images/{image_id}/enhanced", params={"format": fmt}, follow_redirects=True
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == f"image/{fmt}"
    assert len(response.content) == SIZE
    check = DeliveredImage(fmt)
    check.feed(response.content)
    assert check.problem() is None
    with Image.open(io.BytesIO(response.content)) as decoded:
        decoded.load()
        assert decoded.format == fmt.upper()


def test_names_with_lone_surrogates_travel_as_json_escapes(
    sandbox: httpx.Client, api: httpx.Client
) -> None:
    body = b'{"images": 2, "image_bytes": 1000, "name": "Order \\udc80", "names": ["a\\ud800b"]}'
    created = sandbox.post(
        "/_sandbox/orders", content=body, headers={"Content-Type": "application/json"}
    )
    assert created.status_code == 200, created.text
    order = api.get(f"/orders/{created.json()['order_id']}")
    assert order.status_code == 200
    assert b'"name":"Order \\udc80"' in order.content
    assert b'"image_name":"a\\ud800b"' in order.content
    assert order.json()["images"][1]["image_name"] == "image-0002"
