"""An archive without `variants`, `naming` or `manifest` is byte for byte the one this service
sent before those options existed, under the same ETag: caches, resumes and links in flight
keep working. The digests below were taken from the service before the options were added."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator

import httpx
import pytest

from app.main import create_app
from tests.conftest import SettingsFactory
from tests.integration.hostile_upstream import HostileUpstream, image_answer
from tests.support import UvicornThread

ORDER_ID = "3f0b8f4e-5a2c-4d1e-9b7a-6c5d4e3f2a10"
STAMP = "2025-07-05T09:30:00Z"
# A 32x24 JPEG, fixed here so that no encoder upgrade changes the upstream's bytes.
PHOTO = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAYEBQYFBAYGBQYHBwYIChAKCgkJChQODwwQFxQYGBcUFhYaHSUfGhsj"
    "HBYWICwgIyYnKSopGR8tMC0oMCUoKSj/2wBDAQcHBwoIChMKChMoGhYaKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgo"
    "KCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCj/wAARCAAYACADASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAA"
    "AAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAk"
    "M2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKT"
    "lJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QA"
    "HwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdh"
    "cRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hp"
    "anN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk"
    "5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwDiqKKK/SD5gKKKKACiiigAooooA//Z"
)

# Digests taken before `variants`, `naming` and `manifest` existed (see the module docstring).
# The ETags changed once since, on purpose and apart from those options: the order's
# `last_updated_at` left its version (buying an image moves it while no byte changes), so
# that the first full-quality download of an order can be resumed.
GOLDEN = {
    "": (
        "7fd68cbbfa26ebee47e9bc1982e0ec9881f9003d8c019bc72cd697905929e94e",
        '"5bdbf3a2a398135303e44f93e3e7c2c6cc7d6ec5"',
    ),
    "preview=false": (
        "7fd68cbbfa26ebee47e9bc1982e0ec9881f9003d8c019bc72cd697905929e94e",
        '"53c3027dd9a7ac9ebb20430407cfeec43e36eb5f"',
    ),
    "images=img-b,img-a": (
        "ce2e25f85cccca1529656520431d44f65cd487a13becd01a44fdc0a91bf60636",
        '"09e61ca411b6385a2dd3e7def379cec5968ad717"',
    ),
}


@pytest.fixture
def upstream() -> Iterator[HostileUpstream]:
    with HostileUpstream() as hostile:
        hostile.orders[ORDER_ID] = {
            "order_id": ORDER_ID,
            "name": "12 Harbour View",
            "created_at": STAMP,
            "last_updated_at": STAMP,
            "images": [
                {"image_id": "img-a", "image_name": "Kitchen.jpg", "status": "processed"},
                {"image_id": "img-b", "image_name": "Living room", "status": "processed"},
                {"image_id": "img-c", "image_name": "Garden.png", "status": "processing"},
            ],
        }
        for image_id in ("img-a", "img-b"):
            hostile.images[image_id] = image_answer(PHOTO)
        yield hostile


@pytest.mark.parametrize("query", list(GOLDEN))
def test_an_archive_without_the_new_options_is_the_one_sent_before(
    make_settings: SettingsFactory, upstream: HostileUpstream, query: str
) -> None:
    settings = make_settings(autoenhance_api_base=upstream.url, autoenhance_api_key="golden-key")
    with UvicornThread(create_app(settings)) as server:
        url = f"{server.url}/orders/{ORDER_ID}/images?{query}"
        response = httpx.get(url, timeout=30)
        head = httpx.head(url, timeout=30)
    assert response.status_code == 200
    digest = hashlib.sha256(response.content).hexdigest()
    assert (digest, response.headers["etag"]) == GOLDEN[query]
    assert head.headers["etag"] == response.headers["etag"]
