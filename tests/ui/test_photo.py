"""GET /orders/{id}/images/{image_id} (one photo) and its signed link, against a real server."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest
from PIL import Image

from app.sandbox import DEMO_ORDER_ID
from tests.ui.conftest import ServiceFactory

GARDEN = "aa942c1f-56a8-576d-b8f2-4fea36c0bc8a"
SERVICE_KEY = "service-key-0123456789"
SAMPLE = Path(__file__).resolve().parents[2] / "sample_images" / "garden.jpg"


def _width(body: bytes) -> int:
    with Image.open(io.BytesIO(body)) as photo:
        return photo.width


def test_one_photo_in_preview_or_full_quality_named_as_in_the_zip(
    sandbox_service: ServiceFactory,
) -> None:
    with sandbox_service() as server, httpx.Client(base_url=server.url, timeout=30) as client:
        preview = client.get(f"/orders/{DEMO_ORDER_ID}/images/{GARDEN}")
        full = client.get(f"/orders/{DEMO_ORDER_ID}/images/{GARDEN}?preview=false")
        head = client.head(f"/orders/{DEMO_ORDER_ID}/images/{GARDEN}?preview=false")
    assert preview.status_code == full.status_code == head.status_code == 200
    assert preview.headers["content-type"] == "image/jpeg"
    assert "filename*=UTF-8''garden%20%28preview%29.jpg" in preview.headers["content-disposition"]
    assert full.headers["content-disposition"].endswith("''garden.jpg")
    assert int(full.headers["content-length"]) == len(full.content)
    assert _width(full.content) > _width(preview.content)
    # HEAD names the photo without fetching it, and claims no length it does not know.
    assert head.headers["content-disposition"] == full.headers["content-disposition"]
    assert "content-length" not in head.headers or head.headers["content-length"] != "0"


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        (f"/orders/{DEMO_ORDER_ID}/images/no-such-image", 404, "image_not_in_order"),
        (f"/orders/{DEMO_ORDER_ID}/images/bad%20id", 400, "invalid_image_id"),
        (f"/orders/not-a-uuid/images/{GARDEN}", 400, "invalid_order_id"),
        (f"/orders/{DEMO_ORDER_ID}/images/{GARDEN}?quality=500", 422, "validation_error"),
    ],
)
def test_bad_requests_get_the_one_error_shape(
    sandbox_service: ServiceFactory, path: str, status: int, code: str
) -> None:
    with sandbox_service() as server:
        response = httpx.get(server.url + path, timeout=30)
    assert response.status_code == status, response.text
    assert response.json()["error"] == code
    assert "detail" in response.json()


def test_a_photo_not_processed_yet_is_a_409(sandbox_service: ServiceFactory) -> None:
    with (
        sandbox_service(sandbox_processing_delay=30) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        with SAMPLE.open("rb") as image:
            created = client.post(
                "/api/create-order", files=[("files", ("garden.jpg", image, "image/jpeg"))]
            )
        assert created.status_code == 201, created.text
        body = created.json()
        image_id = body["images"][0]["image_id"]
        response = client.get(f"/orders/{body['order_id']}/images/{image_id}")
    assert response.status_code == 409
    assert response.json()["error"] == "image_not_ready"


def test_a_signed_link_to_one_photo_works_without_the_key_and_only_for_it(
    sandbox_service: ServiceFactory,
) -> None:
    with (
        sandbox_service(service_api_key=SERVICE_KEY) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        path = f"/orders/{DEMO_ORDER_ID}/images/{GARDEN}"
        assert client.get(path).status_code == 401
        link = client.post(
            f"{path}/download-link", json={"preview": False}, headers={"X-API-Key": SERVICE_KEY}
        )
        assert link.status_code == 200, link.text
        url = link.json()["url"]
        assert url.startswith(path + "?")
        photo = client.get(url)
        assert photo.status_code == 200
        assert photo.headers["content-disposition"].endswith("''garden.jpg")
        # The link names this photo with these options: another photo or option is refused.
        other = url.replace(GARDEN, "2366c1d6-5495-5c7c-9fad-1bc2bfd51125")
        assert client.get(other).status_code == 401
        assert client.get(url.replace("preview=false", "preview=true")).status_code == 401
        refused = client.post(
            f"{path}/download-link", json={}, headers={"X-Autoenhance-Key": "own-key-0123456789"}
        )
        assert refused.status_code == 403
        assert refused.json()["error"] == "own_key_not_linkable"
