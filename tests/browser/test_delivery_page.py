"""The recipient's delivery page in Chromium: on a 390 px phone (PIN, grid, larger view,
ticking photos) and on a desktop (locked previews; a download of the ticked photos)."""

from __future__ import annotations

import uuid
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import OpenPage, StartService, live_overrides
from tests.conftest import SettingsFactory, create_order
from tests.support import SandboxControl

pytestmark = pytest.mark.browser


def deliver(url: str, key: str, order_id: str, **body: Any) -> str:
    answer = httpx.post(
        f"{url}/orders/{order_id}/deliveries",
        json={"recipient": "Jane Doe, Harbour Realty", **body},
        headers={"X-Autoenhance-Key": key},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    link: str = answer.json()["url"]
    return link.removeprefix(url)


@pytest.fixture
def setup(
    start_service: StartService, make_settings: SettingsFactory, sandbox: SandboxControl
) -> tuple[Any, str, dict[str, Any]]:
    server = start_service(**live_overrides(make_settings))
    key = f"photographer-{uuid.uuid4().hex[:12]}"
    order = create_order(sandbox, images=3, image_bytes=20_000, api_key=key, name="12 Harbour View")
    return server, key, order


def test_on_a_phone_the_pin_opens_the_photos(
    setup: tuple[Any, str, dict[str, Any]], open_page: OpenPage
) -> None:
    server, key, order = setup
    path = deliver(
        server.url,
        key,
        order["order_id"],
        pin="2468",
        message="Enjoy the photos!",
        photographer="Sam Lens",
    )
    page, _ = open_page(server, width=390, height=844, path=path, allow_statuses=(401,))

    page.get_by_label("Enter the PIN").fill("2468")
    page.get_by_role("button", name="Open").click()

    page.get_by_role("heading", name="12 Harbour View").wait_for()
    assert page.get_by_text("Enjoy the photos!").is_visible()
    assert page.get_by_text("From Sam Lens").is_visible()
    button = page.get_by_role("link", name="Download all — Print (full quality) (3 photos)")
    assert button.is_visible()
    pictures = page.locator("#grid img")
    for index in range(3):
        expect(pictures.nth(index)).to_have_js_property("complete", True)
        assert pictures.nth(index).evaluate("img => img.naturalWidth") > 0
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.get_by_role("button", name="View image-0002 larger").click()
    expect(page.locator("#viewer")).to_have_js_property("open", True)
    expect(page.locator("#viewer-image")).to_have_js_property("complete", True)
    assert page.locator("#viewer-image").evaluate("img => img.naturalWidth") > 0
    page.get_by_role("button", name="Close").click()
    page.get_by_role("checkbox").nth(1).check()
    assert page.get_by_role(
        "link", name="Download 1 selected — Print (full quality) (1 photo)"
    ).is_visible()


def test_on_a_desktop_locked_previews_then_a_download_of_the_ticked_photos(
    setup: tuple[Any, str, dict[str, Any]], open_page: OpenPage, tmp_path: Path
) -> None:
    server, key, order = setup
    locked_path = deliver(server.url, key, order["order_id"], locked=True)
    page, _ = open_page(server, width=1280, height=900, path=locked_path)
    page.get_by_text("These are previews").wait_for()
    assert page.get_by_role("link").count() == 0  # no download while locked

    path = deliver(server.url, key, order["order_id"])
    page, _ = open_page(server, width=1280, height=900, path=path)
    page.get_by_role("checkbox").nth(0).check()
    page.get_by_role("checkbox").nth(2).check()
    with page.expect_download() as info:
        page.get_by_role(
            "link", name="Download 2 selected — Print (full quality) (2 photos)"
        ).click()
    saved = tmp_path / "two.zip"
    info.value.save_as(saved)
    with zipfile.ZipFile(saved) as archive:
        assert archive.testzip() is None
        photos = sorted(n for n in archive.namelist() if n.endswith(".jpg"))
    assert len(photos) == 2
