"""The web page in a real Chromium: download, test orders, errors, Ask, phone width."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import zipfile
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from app.sandbox import DEMO_ORDER_ID
from testkit.processes import wait_for
from tests.browser.conftest import (
    FAKE_SAVE_PICKER,
    OpenPage,
    Server,
    StartService,
    choose_quality,
    live_overrides,
    view_message,
    zip_entries,
)
from tests.conftest import SettingsFactory, create_order

pytestmark = pytest.mark.browser

DEMO_ENTRIES = ["garden.jpg", "house-front.jpg", "living-room.jpg"]
SAMPLE_DIR = Path(__file__).resolve().parents[2] / "sample_images"


def test_download_demo_order_through_the_browser(
    start_service: StartService, open_page: OpenPage, tmp_path: Path
) -> None:
    server = start_service()
    page, _ = open_page(server, path="/#download")
    page.get_by_label("Order id").fill(DEMO_ORDER_ID)
    expect(page.locator("#summary .counts")).to_have_text("3 photos · 3 ready")
    expect(page.locator("#summary-title")).to_have_text("Demo order — 12 Harbour View")
    with page.expect_download() as info:
        page.get_by_role("button", name="Download ZIP").click()
    download = info.value
    assert download.suggested_filename == "Demo order — 12 Harbour View.zip"
    saved = tmp_path / "demo.zip"
    download.save_as(saved)
    assert sorted(zip_entries(saved)) == DEMO_ENTRIES
    message = view_message(page, "#summary")
    expect(message).to_contain_text("Your browser is saving “Demo order — 12 Harbour View.zip”")
    expect(message).to_contain_text("3 photos, full quality")


def test_sandbox_banner_and_demo_order_prefilled(
    start_service: StartService, open_page: OpenPage, tmp_path: Path
) -> None:
    server = start_service()
    page, _ = open_page(server, path="/#download")
    expect(page.locator("#sandbox-banner")).to_be_visible()
    expect(page.get_by_label("Order id")).to_have_value(DEMO_ORDER_ID)
    # Nothing typed: one click downloads the demo order.
    with page.expect_download() as info:
        page.get_by_role("button", name="Download ZIP").click()
    saved = tmp_path / "demo.zip"
    info.value.save_as(saved)
    assert sorted(zip_entries(saved)) == DEMO_ENTRIES


def test_stuck_image_is_shown_and_reported(
    start_service: StartService,
    open_page: OpenPage,
    make_settings: SettingsFactory,
    sandbox: httpx.Client,
    tmp_path: Path,
) -> None:
    order = create_order(
        sandbox, images=4, image_bytes=30_000, statuses={"2": "processing"}, name="Stuck order"
    )
    server = start_service(**live_overrides(make_settings))
    page, _ = open_page(server, path="/#download")
    page.get_by_label("Order id").fill(order["order_id"])
    expect(page.locator("#summary .counts")).to_have_text("4 photos · 3 ready · 1 still processing")
    expect(page.locator("#summary-images li.busy")).to_contain_text("still processing")
    expect(page.locator("#summary > .message")).to_contain_text("_download_report.txt")
    choose_quality(page, "Free preview", panel="#panel-download")
    with page.expect_download() as info:
        page.get_by_role("button", name="Download ZIP").click()
    saved = tmp_path / "stuck.zip"
    info.value.save_as(saved)
    names = zip_entries(saved)
    assert len(names) == 4
    assert names[-1] == "_download_report.txt"
    with zipfile.ZipFile(saved) as archive:
        report = archive.read("_download_report.txt").decode()
    assert "image-0003" in report


def test_progress_on_the_page_while_streaming_to_a_file(
    start_service: StartService,
    open_page: OpenPage,
    make_settings: SettingsFactory,
    sandbox: httpx.Client,
) -> None:
    order = create_order(sandbox, images=8, image_bytes=250_000, name="Progress order")
    server = start_service(**live_overrides(make_settings))
    page, _ = open_page(server, path="/#download", save_picker=FAKE_SAVE_PICKER)
    page.get_by_label("Order id").fill(order["order_id"])
    expect(page.locator("#summary .counts")).to_have_text("8 photos · 8 ready")
    page.locator("#advanced summary").click()
    page.get_by_label("Choose where to save and show progress on this page").check()
    choose_quality(page, "Free preview", panel="#panel-download")
    page.get_by_role("button", name="Download ZIP").click()
    message = view_message(page, "#summary")
    expect(message).to_contain_text("Saved Progress order (preview).zip: 8 of 8 images")
    saved = base64.b64decode(
        page.evaluate(
            """() => {
              let text = '';
              for (let i = 0; i < window.__saved.length; i += 0x8000) {
                text += String.fromCharCode(...window.__saved.subarray(i, i + 0x8000));
              }
              return btoa(text);
            }"""
        )
    )
    # The archive is deterministic: what the page saved is what the API serves.
    direct = httpx.get(f"{server.url}/orders/{order['order_id']}/images", timeout=30)
    assert hashlib.sha256(saved).hexdigest() == hashlib.sha256(direct.content).hexdigest()
    assert len(saved) > 8 * 250_000


def test_bad_and_unknown_ids_are_explained(
    start_service: StartService, open_page: OpenPage
) -> None:
    server = start_service()
    page, _ = open_page(server, path="/#download", allow_statuses=(404,))
    field = page.get_by_label("Order id")
    field.fill("not-an-order")
    expect(page.locator("#order-id-feedback")).to_contain_text("Not an order id yet")
    expect(field).to_have_attribute("aria-invalid", "true")
    page.get_by_role("button", name="Check order").click()
    expect(page.locator("#download-message")).to_contain_text("Enter an order id first")
    expect(page.locator("#summary")).to_be_hidden()

    field.fill("00000000-0000-4000-8000-000000000000")
    expect(page.locator("#download-message")).to_contain_text("No order with this id is visible")
    expect(page.locator("#summary")).to_be_hidden()


def test_create_order_from_the_samples_then_download_it_where_it_is(
    start_service: StartService, open_page: OpenPage, tmp_path: Path
) -> None:
    server = start_service()
    page, _ = open_page(server, path="/#download")
    page.get_by_role("tab", name="New order").click()
    page.get_by_role("button", name="Use the sample images").click()
    status = page.locator("#created-status")
    expect(status).to_contain_text("Processed: 3 of 3 photos ready", timeout=30_000)
    card = page.locator("#created-order")
    with page.expect_download() as info:
        card.get_by_role("button", name="Download ZIP").click()
    saved = tmp_path / "created.zip"
    info.value.save_as(saved)
    samples = sorted(p.name for p in SAMPLE_DIR.glob("*.jpg"))
    assert sorted(zip_entries(saved)) == samples
    # It downloaded where the button is: no other tab, and the message is on the card.
    expect(page.get_by_role("tab", name="New order")).to_have_attribute("aria-selected", "true")
    expect(view_message(page, "#created-order")).to_contain_text("Your browser is saving")


def test_ask_answers_from_the_docs(start_service: StartService, open_page: OpenPage) -> None:
    server = start_service()
    page, _ = open_page(server, path="/#download")
    page.get_by_role("tab", name="Ask").click()
    page.get_by_label("Your question").fill("How do I resume a download?")
    page.get_by_role("button", name="Ask", exact=True).click()
    answer = page.locator("#ask-answer")
    expect(answer).to_contain_text("curl -C -")
    # The photographers' answer or the integrators': both say how, curl included.
    expect(answer.locator("h3")).to_have_text(
        re.compile(r"^How do I resume a (broken )?download\?$")
    )
    expect(answer).to_contain_text("docs/faq.md")


def test_tabs_work_from_the_keyboard(start_service: StartService, open_page: OpenPage) -> None:
    server = start_service()
    page, _ = open_page(server, path="/#download")
    page.get_by_role("tab", name="Download").focus()
    page.keyboard.press("ArrowRight")
    create = page.get_by_role("tab", name="New order")
    expect(create).to_be_focused()
    expect(create).to_have_attribute("aria-selected", "true")
    expect(page.locator("#panel-create")).to_be_visible()
    page.keyboard.press("End")
    expect(page.get_by_role("tab", name="Ask")).to_be_focused()
    expect(page.locator("#panel-download")).to_be_hidden()


def test_phone_width_has_no_horizontal_scroll(
    start_service: StartService, open_page: OpenPage
) -> None:
    server = start_service()
    page, _ = open_page(server, width=390, height=844, path="/#download")
    page.get_by_label("Order id").fill(DEMO_ORDER_ID)
    expect(page.locator("#summary")).to_be_visible()
    page.locator("#advanced summary").click()
    for tab in ["Your orders", "Download", "New order", "Ask"]:
        page.get_by_role("tab", name=tab).click()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{tab}: scrollWidth {width}"
    developers, _ = open_page(server, width=390, height=844, path="/developers")
    assert developers.evaluate("document.documentElement.scrollWidth") <= 390


def test_screenshot(start_service: StartService, open_page: OpenPage) -> None:
    """The README's pictures of the page (saved when SCREENSHOT names a file).

    SCREENSHOT gets an order's thumbnails with two ticked; the same name with `-orders` gets
    the "Your orders" view.
    """
    target = os.environ.get("SCREENSHOT")
    server = start_service()
    created = httpx.post(f"{server.url}/api/create-sample-order", timeout=30)
    created.raise_for_status()
    _wait_until_processed(server, created.json()["order_id"])
    page, _ = open_page(server, width=1200, height=860)
    rows = page.locator("#orders-list li.order-row")
    expect(rows).to_have_count(2)
    _wait_for_pictures(page, "#orders-list img", 2)
    if target:
        orders_shot = Path(target).with_name(f"{Path(target).stem}-orders{Path(target).suffix}")
        page.screenshot(path=orders_shot)
        assert orders_shot.stat().st_size > 10_000
    page.get_by_role("button", name="Show images of Demo order — 12 Harbour View").click()
    photos = f"#orders-list li[data-order-id='{DEMO_ORDER_ID}'] .order-photos"
    expect(page.locator(f"{photos} .counts")).to_have_text("3 photos · 3 ready")
    _wait_for_pictures(page, f"{photos} img", 3)
    page.locator(photos).get_by_label("Select garden").check()
    page.locator(photos).get_by_label("Select living-room").check()
    expect(page.get_by_role("button", name="Download 2 of 3")).to_be_visible()
    page.locator(photos).get_by_label("Select living-room").blur()
    if target:
        page.screenshot(path=target, full_page=True)
        assert Path(target).stat().st_size > 10_000


def _wait_until_processed(server: Server, order_id: str) -> None:
    """Poll the summary until every image of the order is ready (bounded)."""

    def processed() -> bool:
        summary = httpx.get(f"{server.url}/orders/{order_id}", timeout=10).json()
        return bool(summary["image_count"]) and summary["ready_count"] == summary["image_count"]

    wait_for(processed, timeout=30, interval=0.1)


def _wait_for_pictures(page: Page, selector: str, count: int) -> None:
    """Poll until `count` images under `selector` are decoded (none broken)."""
    images = page.locator(selector)
    expect(images).to_have_count(count)
    page.wait_for_function(
        """(selector) => [...document.querySelectorAll(selector)]
              .every((img) => img.complete && img.naturalWidth > 0)""",
        arg=selector,
    )
