"""`/enhanced`, `/original` and `/assets`: encoding, sizing, credits, redirects."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from PIL import ImageChops, ImageStat

from app.sandbox import DEMO_ORDER_ID
from tests.sandbox.helpers import InProcess, assert_http_error, open_image, synthetic

FULL_SIZE = (1600, 1067)


@pytest.fixture
def demo_image(api: httpx.Client) -> str:
    image_id: str = api.get(f"/orders/{DEMO_ORDER_ID}").json()["images"][0]["image_id"]
    return image_id


def enhanced(api: httpx.Client, image_id: str, **params: Any) -> httpx.Response:
    headers = {"x-dev-mode": "true"} if params.pop("dev", False) else {}
    return api.get(
        f"/images/{image_id}/enhanced", params=params, headers=headers, follow_redirects=True
    )


@pytest.mark.parametrize(
    ("fmt", "pil_format", "mime"),
    [("jpeg", "JPEG", "image/jpeg"), ("png", "PNG", "image/png"), ("webp", "WEBP", "image/webp")],
)
def test_format_is_really_applied(
    api: httpx.Client, demo_image: str, fmt: str, pil_format: str, mime: str
) -> None:
    response = enhanced(api, demo_image, format=fmt)
    assert response.status_code == 200
    assert response.headers["content-type"] == mime
    assert int(response.headers["content-length"]) == len(response.content)
    assert open_image(response.content).format == pil_format


def test_default_is_a_jpeg_preview(api: httpx.Client, demo_image: str) -> None:
    response = enhanced(api, demo_image)
    image = open_image(response.content)
    assert image.format == "JPEG"
    assert max(image.size) == 1024


@pytest.mark.parametrize(
    ("params", "size"),
    [
        ({"preview": "false"}, FULL_SIZE),
        ({"preview": "false", "max_width": 300}, (300, 200)),
        ({"preview": "false", "scale": 0.5}, (800, 534)),
        ({"preview": "false", "size": "small"}, (640, 427)),
        ({"preview": "true", "scale": 0.25}, (400, 267)),
    ],
)
def test_size_parameters_are_applied(
    api: httpx.Client, demo_image: str, params: dict[str, Any], size: tuple[int, int]
) -> None:
    response = enhanced(api, demo_image, dev=True, **params)
    assert response.status_code == 200
    assert open_image(response.content).size == size


def test_quality_changes_the_encoding(api: httpx.Client, demo_image: str) -> None:
    low = enhanced(api, demo_image, quality=5).content
    high = enhanced(api, demo_image, quality=90).content
    assert len(low) * 2 < len(high)


def test_enhancement_visibly_changes_the_photo(api: httpx.Client, demo_image: str) -> None:
    original = open_image(api.get(f"/images/{demo_image}/original", follow_redirects=True).content)
    better = open_image(enhanced(api, demo_image, dev=True, preview="false").content)
    assert original.size == better.size == FULL_SIZE
    spread = [hi - lo for lo, hi in ImageStat.Stat(original.convert("L")).extrema]
    improved = [hi - lo for lo, hi in ImageStat.Stat(better.convert("L")).extrema]
    assert improved[0] > spread[0] + 30


@pytest.mark.parametrize("fmt", ["avif", "jxl", "gif", "tiff"])
def test_unsupported_formats_cannot_be_encoded(
    api: httpx.Client, demo_image: str, fmt: str
) -> None:
    body = assert_http_error(enhanced(api, demo_image, format=fmt), 422)
    assert body["message"] == "Validation error"
    assert "Cannot encode" in body["detail"]["query"]["format"][0]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("quality", 0),
        ("quality", 91),
        ("scale", 0),
        ("scale", 1.5),
        ("max_width", 0),
        ("size", "huge"),
        ("preview", "maybe"),
        ("watermark", "2"),
    ],
)
def test_out_of_range_parameters_are_422(
    api: httpx.Client, demo_image: str, name: str, value: Any
) -> None:
    body = assert_http_error(enhanced(api, demo_image, **{name: value}), 422)
    assert name in body["detail"]["query"]


def test_redirects_to_an_asset_that_needs_no_key(
    api: httpx.Client, demo_image: str, sandbox_url: str
) -> None:
    response = api.get(f"/images/{demo_image}/enhanced", params={"format": "png"})
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith("/assets/")
    root = sandbox_url.removesuffix("/v3")
    asset = httpx.get(root + location)
    assert asset.status_code == 200
    assert asset.headers["content-type"] == "image/png"
    assert_http_error(httpx.get(root + "/assets/forged-token"), 404)


def test_watermark_and_dev_mode_mark_the_image(api: httpx.Client, demo_image: str) -> None:
    plain = open_image(enhanced(api, demo_image, format="png").content).convert("RGB")
    marked = open_image(enhanced(api, demo_image, format="png", watermark="true").content)
    dev = open_image(enhanced(api, demo_image, format="png", dev=True).content)
    assert ImageChops.difference(plain, marked.convert("RGB")).getbbox() is not None
    assert ImageChops.difference(marked, dev).getbbox() is None


def test_synthetic_downloads_are_exactly_the_requested_size(
    api: httpx.Client, sandbox: httpx.Client
) -> None:
    order = synthetic(sandbox, images=2, image_bytes=1_234_567)
    for image in order["images"]:
        response = enhanced(api, image["image_id"], preview="false", dev=True)
        assert len(response.content) == 1_234_567
        assert response.headers["content-length"] == "1234567"
        assert open_image(response.content).format == "JPEG"


def test_synthetic_size_below_a_jpeg_is_rejected(sandbox: httpx.Client) -> None:
    response = sandbox.post("/_sandbox/orders", json={"images": 1, "image_bytes": 10})
    assert_http_error(response, 422)


def test_original_download(api: httpx.Client, demo_image: str) -> None:
    response = api.get(f"/images/{demo_image}/original", params={"format": "webp"})
    assert response.status_code == 302
    image = open_image(httpx.get(response.url.join(response.headers["location"])).content)
    assert image.format == "WEBP"
    assert image.size == FULL_SIZE


async def test_redirects_off_serves_bytes_directly(inprocess: InProcess) -> None:
    async with inprocess(redirect_downloads=False) as client:
        order = (await client.get(f"/orders/{DEMO_ORDER_ID}")).json()
        response = await client.get(f"/images/{order['images'][0]['image_id']}/enhanced")
        assert response.status_code == 200
        assert open_image(response.content).format == "JPEG"


async def test_purchase_spends_one_credit_per_image_then_402(inprocess: InProcess) -> None:
    async with inprocess(credits=1, redirect_downloads=False) as client:
        first, second, *_ = (await client.get(f"/orders/{DEMO_ORDER_ID}")).json()["images"]
        buy = {"preview": "false"}
        assert (await client.get(f"/images/{first['image_id']}/enhanced", params=buy)).is_success
        # Downloading a bought image again is free.
        assert (await client.get(f"/images/{first['image_id']}/enhanced", params=buy)).is_success
        image = (await client.get(f"/images/{first['image_id']}")).json()
        assert image["downloaded"] is True

        refused = await client.get(f"/images/{second['image_id']}/enhanced", params=buy)
        assert assert_http_error(refused, 402)["detail"]["image_id"] == second["image_id"]
        # Previews and dev mode cost nothing.
        assert (await client.get(f"/images/{second['image_id']}/enhanced")).is_success
        dev = await client.get(
            f"/images/{second['image_id']}/enhanced", params=buy, headers={"x-dev-mode": "true"}
        )
        assert dev.is_success
        assert (await client.get("http://sandbox.internal/_sandbox/account")).json() == {
            "credits": 0
        }


async def test_not_ready_status_is_configurable(inprocess: InProcess) -> None:
    async with inprocess(not_ready_status=409) as client:
        created = (await client.post("/images/", json={"image_name": "a"})).json()
        response = await client.get(f"/images/{created['image_id']}/enhanced")
        assert assert_http_error(response, 409)["detail"]["status"] == "waiting"


async def test_repeated_downloads_are_served_from_the_render_cache(inprocess: InProcess) -> None:
    async with inprocess(redirect_downloads=False) as client:
        image_id = (await client.get(f"/orders/{DEMO_ORDER_ID}")).json()["images"][1]["image_id"]
        cache = client.app.state.sandbox.cache
        first = await client.get(f"/images/{image_id}/enhanced", params={"format": "png"})
        assert len(cache) == 1
        second = await client.get(f"/images/{image_id}/enhanced", params={"format": "png"})
        assert len(cache) == 1
        assert second.content == first.content
        await client.get(f"/images/{image_id}/enhanced", params={"format": "webp"})
        assert len(cache) == 2
