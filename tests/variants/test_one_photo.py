"""One photo in one size: `GET /orders/{id}/images/{image_id}?variants=<preset>` over real
sockets (the service on uvicorn, the standalone sandbox): the same bytes as that photo's entry
in the archive's folder, its name, and the answers for what one photo cannot be."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.main import create_app
from tests.conftest import SettingsFactory
from tests.support import UvicornThread
from tests.variants.support import buy, entries, photo, photo_order, unique_key


@pytest.fixture
def key() -> str:
    return unique_key("one-photo")


@pytest.fixture
def order(sandbox_url: str, key: str) -> dict[str, Any]:
    return photo_order(
        sandbox_url,
        key,
        [("Kitchen.jpg", photo(3000, 2000, seed=11)), ("Garden.jpg", photo(900, 600, seed=12))],
    )


@pytest.fixture
def service(make_settings: SettingsFactory) -> Iterator[UvicornThread]:
    with UvicornThread(create_app(make_settings())) as server:
        yield server


def test_one_photo_in_one_size_is_its_entry_of_the_archive(
    service: UvicornThread, order: dict[str, Any], key: str
) -> None:
    headers = {"X-Autoenhance-Key": key}
    buy(service.url, order["order_id"], key)
    kitchen = next(i for i in order["images"] if i["image_name"] == "Kitchen.jpg")
    photo_url = f"{service.url}/orders/{order['order_id']}/images/{kitchen['image_id']}"
    one = httpx.get(photo_url, params={"variants": "web", "preview": "false"}, headers=headers)
    assert one.status_code == 200, one.text
    assert one.headers["content-type"] == "image/jpeg"
    assert 'filename="Kitchen (Web).jpg"' in one.headers["content-disposition"]
    assert int(one.headers["content-length"]) == len(one.content)

    archive = httpx.get(
        f"{service.url}/orders/{order['order_id']}/images",
        params={"variants": "web", "preview": "false", "images": kitchen["image_id"]},
        headers=headers,
        timeout=120,
    )
    assert archive.status_code == 200, archive.text
    assert entries(archive.content)["Web/Kitchen.jpg"] == one.content

    head = httpx.head(photo_url, params={"variants": "web", "preview": "false"}, headers=headers)
    assert head.status_code == 200
    assert head.headers["content-disposition"] == one.headers["content-disposition"]


def test_what_one_photo_cannot_be_is_a_422_before_the_upstream(
    service: UvicornThread, order: dict[str, Any], key: str
) -> None:
    headers = {"X-Autoenhance-Key": key}
    image_id = order["images"][0]["image_id"]
    photo_url = f"{service.url}/orders/{order['order_id']}/images/{image_id}"
    several = httpx.get(
        photo_url, params={"variants": "mls,print", "preview": "false"}, headers=headers
    )
    assert several.status_code == 422
    assert several.json()["error"] == "one_variant_per_photo"
    assert f"images={image_id}&variants=mls,print" in several.json()["detail"]
    unknown = httpx.get(photo_url, params={"variants": "nope", "preview": "false"}, headers=headers)
    assert unknown.status_code == 422
    assert unknown.json()["error"] == "unknown_variant"
    free = httpx.get(photo_url, params={"variants": "mls"}, headers=headers)
    assert free.status_code == 422
    assert free.json()["error"] == "variants_not_allowed"
