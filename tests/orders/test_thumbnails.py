"""GET /orders/{id}/images/{image_id}/thumbnail over real sockets: size, caching, access, bounds."""

from __future__ import annotations

import io
import time

import httpx
import pytest
from PIL import Image

from app.services.thumbnails import THUMBNAIL_MAX_WIDTH
from testkit.processes import ROOT
from tests.orders.conftest import ServiceFactory, synthetic_order, unique_key, uploaded_order
from tests.support import SandboxControl, UvicornThread

PHOTO = (ROOT / "sample_images" / "garden.jpg").read_bytes()


def thumb_path(order: dict, index: int = 0) -> str:
    return f"/orders/{order['order_id']}/images/{order['images'][index]['image_id']}/thumbnail"


def upstream_requests(sandbox: SandboxControl, image_id: str, key: str) -> list[dict]:
    """Picture requests about `image_id` that reached the sandbox with `key` or the operator's."""
    entries = sandbox.log(key) + sandbox.log()
    return [e for e in entries if e["image_id"] == image_id and e["route"] != "order"]


def logged_fetch(
    sandbox: SandboxControl, image_id: str, key: str, *, timeout: float = 10
) -> list[dict]:
    """The sandbox's log of one picture fetch, once complete: it logs a request after
    answering it, so the last entry may land just after the service has its bytes."""
    deadline = time.monotonic() + timeout
    while True:
        entries = upstream_requests(sandbox, image_id, key)
        enhanced = [e for e in entries if e["route"] == "enhanced"]
        redirected = bool(enhanced) and enhanced[0]["status"] == 302
        if enhanced and (not redirected or any(e["route"] == "asset" for e in entries)):
            return entries
        assert time.monotonic() < deadline, f"no complete fetch logged: {entries}"
        time.sleep(0.01)


def test_a_thumbnail_is_a_small_free_preview_with_a_validator(
    service: UvicornThread, sandbox: SandboxControl, sandbox_url: str
) -> None:
    key = unique_key("thumbs")
    order = uploaded_order(sandbox_url, key, [("garden", PHOTO)])
    image_id = order["images"][0]["image_id"]
    with httpx.Client(base_url=service.url, headers={"X-Autoenhance-Key": key}) as client:
        first = client.get(thumb_path(order))
        assert first.status_code == 200, first.text
        assert first.headers["content-type"] == "image/jpeg"
        picture = Image.open(io.BytesIO(first.content))
        picture.load()
        assert picture.width <= THUMBNAIL_MAX_WIDTH
        assert Image.open(io.BytesIO(PHOTO)).width > THUMBNAIL_MAX_WIDTH  # it was made smaller
        etag = first.headers["etag"]
        assert etag.startswith('"')
        assert etag.endswith('"')
        assert first.headers["cache-control"] == "private, max-age=300"
        assert "X-Autoenhance-Key" in first.headers["vary"]

        fetched = logged_fetch(sandbox, image_id, key)
        assert [e["path"] for e in fetched if e["route"] == "enhanced"] == [
            f"/v3/images/{image_id}/enhanced"
        ]
        query = next(e["query"] for e in fetched if e["route"] == "enhanced")
        assert "preview=true" in query
        assert f"max_width={THUMBNAIL_MAX_WIDTH}" in query

        again = client.get(thumb_path(order), headers={"If-None-Match": etag})
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["etag"] == etag
        # The 304 was decided from the order alone: the picture was not fetched again.
        assert upstream_requests(sandbox, image_id, key) == fetched
        assert (
            client.get(thumb_path(order), headers={"If-None-Match": '"other"'}).status_code == 200
        )

    # Nothing was bought: previews cost no credits.
    image = httpx.get(f"{sandbox_url}/images/{image_id}", headers={"x-api-key": key}).json()
    assert image["downloaded"] is False


def test_the_validator_changes_when_the_image_changes(
    service: UvicornThread, sandbox: SandboxControl
) -> None:
    order = synthetic_order(sandbox, api_key=(key := unique_key("etag")))
    image_id = order["images"][0]["image_id"]
    with httpx.Client(base_url=service.url, headers={"X-Autoenhance-Key": key}) as client:
        before = client.get(thumb_path(order)).headers["etag"]
        sandbox.post(f"/_sandbox/images/{image_id}/status", json={"status": "processing"})
        sandbox.post(f"/_sandbox/images/{image_id}/status", json={"status": "processed"})
        after = client.get(thumb_path(order), headers={"If-None-Match": before})
    assert after.status_code == 200
    assert after.headers["etag"] != before


def test_an_image_of_another_order_is_refused_before_any_fetch(
    service: UvicornThread, sandbox: SandboxControl
) -> None:
    key = unique_key("foreign")
    mine = synthetic_order(sandbox, api_key=key)
    elsewhere = synthetic_order(sandbox, api_key=key)
    foreign_image = elsewhere["images"][0]["image_id"]
    path = f"/orders/{mine['order_id']}/images/{foreign_image}/thumbnail"
    response = httpx.get(service.url + path, headers={"X-Autoenhance-Key": key})
    assert response.status_code == 404
    assert response.json()["error"] == "image_not_in_order"
    assert upstream_requests(sandbox, foreign_image, key) == []


def test_another_keys_order_is_not_found(service: UvicornThread, sandbox: SandboxControl) -> None:
    order = synthetic_order(sandbox, api_key=unique_key("owner"))
    intruder = unique_key("intruder")
    response = httpx.get(service.url + thumb_path(order), headers={"X-Autoenhance-Key": intruder})
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert upstream_requests(sandbox, order["images"][0]["image_id"], intruder) == []


def test_the_service_key_guards_thumbnails_like_downloads(
    live_service: ServiceFactory, sandbox: SandboxControl, sandbox_url: str
) -> None:
    order = synthetic_order(sandbox)
    with live_service(sandbox_url, service_api_key="service-key-0123456789") as server:
        assert httpx.get(server.url + thumb_path(order)).status_code == 401
        keyed = httpx.get(
            server.url + thumb_path(order), headers={"X-API-Key": "service-key-0123456789"}
        )
        assert keyed.status_code == 200


def test_an_image_that_is_not_ready_has_no_thumbnail(
    service: UvicornThread, sandbox: SandboxControl
) -> None:
    order = synthetic_order(sandbox, statuses={0: "processing", 1: "error"})
    for index, state in ((0, "processing"), (1, "error")):
        response = httpx.get(service.url + thumb_path(order, index))
        assert response.status_code == 409
        assert response.json()["error"] == "image_not_ready"
        assert response.json()["detail"]["state"] == state


@pytest.mark.parametrize(
    ("image_id", "status", "code"),
    [
        ("-leading-dash", 400, "invalid_image_id"),
        ("%C3%A9t%C3%A9", 400, "invalid_image_id"),
        ("a" * 101, 400, "invalid_image_id"),
        ("sp ace", 400, "invalid_image_id"),
    ],
)
def test_malformed_ids_are_refused(
    service: UvicornThread, sandbox: SandboxControl, image_id: str, status: int, code: str
) -> None:
    order = synthetic_order(sandbox)
    response = httpx.get(f"{service.url}/orders/{order['order_id']}/images/{image_id}/thumbnail")
    assert response.status_code == status, response.text
    assert response.json()["error"] == code
    bad_order = httpx.get(f"{service.url}/orders/not-a-uuid/images/abc/thumbnail")
    assert bad_order.status_code == 400
    assert bad_order.json()["error"] == "invalid_order_id"


def test_an_oversized_preview_from_the_upstream_is_refused(
    service: UvicornThread, sandbox: SandboxControl
) -> None:
    # A lying upstream: a "preview" of 5 MiB. The download stops at the bound.
    order = synthetic_order(sandbox, images=1, image_bytes=5 * 1024 * 1024)
    response = httpx.get(service.url + thumb_path(order), timeout=30)
    assert response.status_code == 502
    assert response.json()["error"] == "bad_preview"
    assert "larger than" in response.json()["detail"]


def test_thumbnails_are_rate_limited(
    live_service: ServiceFactory, sandbox: SandboxControl, sandbox_url: str
) -> None:
    order = synthetic_order(sandbox)
    with live_service(sandbox_url, rate_limit_thumbnails="2/minute") as server:
        statuses = [httpx.get(server.url + thumb_path(order)).status_code for _ in range(3)]
        limited = httpx.get(server.url + thumb_path(order))
    assert statuses == [200, 200, 429]
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
