"""Happy paths and documented errors of every `/v3` route, over a real socket."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from app.sandbox import DEMO_ORDER_ID
from testkit.processes import wait_for
from tests.sandbox.helpers import assert_http_error, jpeg_bytes, synthetic

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
IMAGE_FIELDS = {
    "image_id",
    "id",
    "image_name",
    "order_id",
    "user_id",
    "status",
    "status_reason",
    "downloaded",
    "date_added",
    "enhance",
    "ai_version",
    "enhance_type",
    "enhanced",
    "error",
}
ORDER_FIELDS = {
    "order_id",
    "name",
    "created_at",
    "last_updated_at",
    "status",
    "is_processing",
    "is_merging",
    "is_deleted",
    "total_images",
    "images",
}


def register(api: httpx.Client, **body: Any) -> dict[str, Any]:
    response = api.post("/images/", json={"image_name": "kitchen", **body})
    assert response.status_code == 200, response.text
    payload: dict[str, Any] = response.json()
    return payload


def upload(url: str, data: bytes, content_type: str = "image/jpeg") -> httpx.Response:
    return httpx.put(url, content=data, headers={"Content-Type": content_type}, timeout=30)


def test_health(sandbox: httpx.Client) -> None:
    response = sandbox.get("/_sandbox/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize("key", [None, "any-key-at-all"])
def test_demo_order_is_processed_and_readable_by_anyone(sandbox_url: str, key: str | None) -> None:
    headers = {"x-api-key": key} if key else {}
    response = httpx.get(f"{sandbox_url}/orders/{DEMO_ORDER_ID}", headers=headers)
    assert response.status_code == 200
    order = response.json()
    assert set(order) >= ORDER_FIELDS
    assert order["name"] == "Demo order — 12 Harbour View"
    assert order["status"] == "processed"
    assert order["is_processing"] is False
    assert order["total_images"] == len(order["images"]) >= 3
    assert ISO.match(order["created_at"])
    assert ISO.match(order["last_updated_at"])
    for image in order["images"]:
        assert set(image) >= IMAGE_FIELDS
        assert image["image_id"] == image["id"]
        assert image["status"] == "processed"
        assert image["enhanced"] is True
        assert image["error"] is False
        assert isinstance(image["date_added"], int)
        assert image["date_added"] > 1_600_000_000_000


@pytest.mark.parametrize("path", ["/orders", "/orders/"])
def test_create_order_with_and_without_slash(api: httpx.Client, path: str) -> None:
    response = api.post(path, json={"name": "Flat 4"})
    assert response.status_code == 200
    order = response.json()
    assert order["name"] == "Flat 4"
    assert order["status"] == "waiting"
    assert order["images"] == []
    assert order["total_images"] == 0
    assert order["is_processing"] is False
    assert order["is_merging"] is False


def test_create_order_with_custom_id_and_duplicate(api: httpx.Client) -> None:
    order_id = f"custom-{api.headers['x-api-key']}"
    assert api.post("/orders/", json={"order_id": order_id}).json()["order_id"] == order_id
    assert_http_error(api.post("/orders/", json={"order_id": order_id}), 409)


def test_create_order_accepts_an_empty_body(api: httpx.Client) -> None:
    response = api.post("/orders/")
    assert response.status_code == 200
    assert len(response.json()["order_id"]) == 36


@pytest.mark.parametrize("path", ["/images", "/images/"])
@pytest.mark.parametrize("type_key", ["contentType", "content_type"])
def test_register_image_creates_order_and_returns_both_upload_keys(
    api: httpx.Client, path: str, type_key: str
) -> None:
    response = api.post(path, json={"image_name": "front", type_key: "image/png"})
    assert response.status_code == 200
    image = response.json()
    assert image["status"] == "waiting"
    assert image["upload_url"] == image["s3PutObjectUrl"]
    assert image["upload_url"].startswith("http://127.0.0.1:")
    order = api.get(f"/orders/{image['order_id']}").json()
    assert [i["image_id"] for i in order["images"]] == [image["image_id"]]


def test_register_image_echoes_settings(api: httpx.Client) -> None:
    image = register(api, ai_version="4.x", enhance_type="warm", sky_replacement=True, rating=4)
    assert image["ai_version"] == "4.x"
    assert image["enhance_type"] == "warm"
    assert image["sky_replacement"] is True
    assert image["rating"] == 4


def test_upload_then_processing_then_processed(api: httpx.Client) -> None:
    order_id = api.post("/orders/", json={"name": "Lifecycle"}).json()["order_id"]
    image = register(api, order_id=order_id)
    before = api.get(f"/orders/{order_id}").json()["last_updated_at"]

    response = upload(image["upload_url"], jpeg_bytes())
    assert response.status_code == 200
    assert response.content == b""

    during = api.get(f"/orders/{order_id}").json()
    assert during["status"] == "processing"
    assert during["is_processing"] is True
    assert during["images"][0]["status"] == "processing"
    assert during["last_updated_at"] > before

    def done() -> dict[str, Any] | None:
        order: dict[str, Any] = api.get(f"/orders/{order_id}").json()
        return order if order["status"] == "processed" else None

    after = wait_for(done)
    assert after["is_processing"] is False
    assert after["images"][0]["enhanced"] is True
    assert after["last_updated_at"] > during["last_updated_at"]


def test_upload_of_garbage_bytes_ends_in_error_with_reason(api: httpx.Client) -> None:
    image = register(api)
    assert upload(image["upload_url"], b"this is not an image").status_code == 200

    def failed() -> dict[str, Any] | None:
        current: dict[str, Any] = api.get(f"/images/{image['image_id']}").json()
        return current if current["status"] == "error" else None

    current = wait_for(failed)
    assert current["error"] is True
    assert "decode" in current["status_reason"]


def test_upload_to_unknown_url_is_404(sandbox_url: str) -> None:
    root = sandbox_url.removesuffix("/v3")
    assert_http_error(upload(f"{root}/uploads/not-a-token", b"x"), 404)


def test_retrieve_and_delete_image(api: httpx.Client) -> None:
    image = register(api)
    got = api.get(f"/images/{image['image_id']}")
    assert got.status_code == 200
    assert got.json()["image_name"] == "kitchen"
    assert api.delete(f"/images/{image['image_id']}").status_code == 204
    assert_http_error(api.get(f"/images/{image['image_id']}"), 404)
    assert api.get(f"/orders/{image['order_id']}").json()["total_images"] == 0


def test_rename_and_delete_order(api: httpx.Client) -> None:
    order_id = api.post("/orders/", json={"name": "Old"}).json()["order_id"]
    renamed = api.patch(f"/orders/{order_id}", json={"name": "New"})
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "New"
    response = api.delete(f"/orders/{order_id}")
    assert response.status_code == 204
    assert response.content == b""
    assert_http_error(api.get(f"/orders/{order_id}"), 404)


def test_reprocess_restarts_processing_with_new_settings(api: httpx.Client) -> None:
    image = register(api)
    upload(image["upload_url"], jpeg_bytes())
    image_id = image["image_id"]
    wait_for(lambda: api.get(f"/images/{image_id}").json()["status"] == "processed")
    response = api.post(f"/images/{image_id}/process", json={"enhance_type": "warm"})
    assert response.status_code == 200
    assert response.json()["status"] == "processing"
    assert response.json()["enhance_type"] == "warm"
    wait_for(lambda: api.get(f"/images/{image_id}").json()["status"] == "processed")


def test_order_listing_paginates_with_offset_tokens(api: httpx.Client) -> None:
    created = [api.post("/orders/", json={"name": f"o{i}"}).json()["order_id"] for i in range(7)]
    seen: list[str] = []
    offset: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"per_page": 3, **({"offset": offset} if offset else {})}
        body = api.get("/orders", params=params).json()
        assert len(body["orders"]) <= 3
        assert body["pagination"]["per_page"] == 3
        seen += [order["order_id"] for order in body["orders"]]
        pages += 1
        offset = body["pagination"]["next_offset"]
        if offset is None:
            break
    mine = [order_id for order_id in seen if order_id in created]
    assert mine == list(reversed(created))  # newest first, each once
    assert len(seen) == len(set(seen))
    assert pages >= 3


def test_order_listing_caps_per_page_at_15(api: httpx.Client) -> None:
    for _ in range(16):
        api.post("/orders/")
    body = api.get("/orders", params={"per_page": 100}).json()
    assert len(body["orders"]) == 15
    assert body["pagination"]["per_page"] == 15
    assert body["pagination"]["next_offset"] is not None


def test_order_listing_rejects_a_forged_offset(api: httpx.Client) -> None:
    body = assert_http_error(api.get("/orders/", params={"offset": "garbage!"}), 422)
    assert body == {
        "message": "Validation error",
        "detail": {"query": {"offset": ["Invalid offset token."]}},
    }


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/orders/"), ("GET", "/orders"), ("POST", "/images/"), ("DELETE", "/orders/x")],
)
def test_missing_key_is_401(sandbox_url: str, method: str, path: str) -> None:
    response = httpx.request(method, sandbox_url + path, json={"image_name": "a"})
    assert_http_error(response, 401)


def test_other_keys_cannot_see_an_order_or_its_downloads(
    api: httpx.Client, sandbox_url: str
) -> None:
    image = register(api)
    upload(image["upload_url"], jpeg_bytes())
    image_id, order_id = image["image_id"], image["order_id"]
    wait_for(lambda: api.get(f"/images/{image_id}").json()["status"] == "processed")
    assert api.get(f"/images/{image_id}/enhanced", follow_redirects=True).status_code == 200

    other = {"x-api-key": "somebody-else"}
    assert_http_error(httpx.get(f"{sandbox_url}/orders/{order_id}", headers=other), 404)
    assert_http_error(httpx.get(f"{sandbox_url}/images/{image_id}/enhanced", headers=other), 404)
    assert_http_error(httpx.delete(f"{sandbox_url}/orders/{order_id}", headers=other), 404)
    # The real API serves order metadata without a key; so does the sandbox.
    assert httpx.get(f"{sandbox_url}/orders/{order_id}").status_code == 200


def test_shared_orders_are_read_only(api: httpx.Client) -> None:
    assert_http_error(api.delete(f"/orders/{DEMO_ORDER_ID}"), 403)
    assert_http_error(
        api.post("/images/", json={"image_name": "a", "order_id": DEMO_ORDER_ID}), 403
    )


def test_not_ready_images_answer_422_with_status(api: httpx.Client, sandbox: httpx.Client) -> None:
    waiting = register(api)
    body = assert_http_error(api.get(f"/images/{waiting['image_id']}/enhanced"), 422)
    assert body["detail"]["status"] == "waiting"

    order = synthetic(
        sandbox,
        images=3,
        statuses={"1": "processing", "2": "error"},
        status_reasons={"2": "Duplicate file name limit"},
    )
    ok, busy, broken = (image["image_id"] for image in order["images"])
    assert api.get(f"/images/{ok}/enhanced").status_code == 302
    assert assert_http_error(api.get(f"/images/{busy}/enhanced"), 422)["detail"]["status"] == (
        "processing"
    )
    detail = assert_http_error(api.get(f"/images/{broken}/enhanced"), 422)["detail"]
    assert detail["status"] == "error"
    assert detail["status_reason"] == "Duplicate file name limit"
    assert order["status"] == "processing"
    assert order["is_processing"] is True


def test_synthetic_order_with_odd_names(sandbox: httpx.Client) -> None:
    names = ["../../etc/passwd", "CON", "café ☕", "a" * 300]
    order = synthetic(sandbox, images=5, names=names, name="Odd names")
    assert [image["image_name"] for image in order["images"]] == [*names, "image-0005"]


@pytest.mark.parametrize("value", ["False", "FALSE", "false", "0"])
def test_boolean_query_values_are_case_insensitive(api: httpx.Client, value: str) -> None:
    order = api.get(f"/orders/{DEMO_ORDER_ID}").json()
    image_id = order["images"][0]["image_id"]
    response = api.get(
        f"/images/{image_id}/enhanced",
        params={"preview": value, "max_width": 200},
        headers={"x-dev-mode": "true"},
        follow_redirects=True,
    )
    assert response.status_code == 200
    # preview=false means full size; only max_width then limits it.
    assert response.headers["content-type"] == "image/jpeg"
