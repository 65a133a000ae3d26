"""The photographer's "Deliver" on the main page, in Chromium: a link made from an order's
row, copied, opened by the recipient in a page of their own, downloaded, and seen turning
`delivered` on the photographer's page; on a 390 px phone, the form with a PIN and a lock.

Each test runs its own service in sandbox mode, so the deliveries listed are its own."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from app.sandbox import DEMO_ORDER_ID
from tests.browser.conftest import OpenPage, StartService, zip_entries

pytestmark = pytest.mark.browser

DEMO_NAME = "Demo order — 12 Harbour View"
# The page refreshes the deliveries every few seconds; a status change is awaited that long.
STATUS_WAIT_MS = 20_000


def test_a_delivery_made_on_the_page_is_copied_opened_downloaded_and_shown_delivered(
    start_service: StartService, open_page: OpenPage, tmp_path: Path
) -> None:
    server = start_service()
    page, _ = open_page(server)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    row = page.locator(f"#orders-list li[data-order-id='{DEMO_ORDER_ID}']")
    page.get_by_role("button", name=f"Deliver {DEMO_NAME}").click()
    panel = row.locator(".deliver-panel")
    expect(panel.get_by_role("checkbox", name="Print")).to_be_checked()
    panel.get_by_label("Recipient").fill("Jane Doe, Harbour Realty")
    panel.get_by_label("Link expires").select_option(label="in 7 days")
    panel.get_by_role("button", name="Create link").click()

    link = panel.get_by_label("Link for Jane Doe, Harbour Realty")
    expect(link).to_be_visible()
    url = link.input_value()
    assert url.startswith(f"{server.url}/d/")
    panel.get_by_role("button", name="Copy link").click()
    expect(panel.get_by_text("Copied.")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == url
    delivery = panel.locator("li.delivery-row")
    expect(delivery).to_have_count(1)
    expect(delivery).to_have_attribute("data-status", "sent")
    expect(delivery).to_contain_text("Jane Doe, Harbour Realty")
    expect(delivery).to_contain_text("print")
    # Something typed for the next delivery survives the refreshes to come.
    panel.get_by_label("Recipient").fill("Sam Agent")

    recipient, _ = open_page(server, path=url.removeprefix(server.url))
    with recipient.expect_download() as info:
        recipient.get_by_role("link", name="Download all — Print (full quality) (3 photos)").click()
    saved = tmp_path / "delivered.zip"
    info.value.save_as(saved)
    assert sorted(zip_entries(saved)) == ["garden.jpg", "house-front.jpg", "living-room.jpg"]

    expect(delivery).to_have_attribute("data-status", "delivered", timeout=STATUS_WAIT_MS)
    expect(delivery).to_contain_text("Delivered")
    expect(delivery).to_contain_text("every byte received")
    expect(panel.get_by_label("Recipient")).to_have_value("Sam Agent")


def test_on_a_phone_a_delivery_with_a_pin_and_a_lock_from_the_order_looked_up_by_id(
    start_service: StartService, open_page: OpenPage
) -> None:
    server = start_service()
    page, _ = open_page(server, width=390, height=844, path="/#download")
    page.get_by_label("Order id").fill(DEMO_ORDER_ID)
    page.get_by_role("button", name="Check order").click()
    view = page.locator("#summary")
    view.locator(".order-view-actions").get_by_role("button", name="Deliver").click()
    panel = view.locator(".deliver-panel")
    panel.get_by_label("Recipient").fill("Jane Doe")
    panel.get_by_label("PIN (optional)").fill("12")
    panel.get_by_role("button", name="Create link").click()
    expect(panel.get_by_role("alert")).to_contain_text("A PIN is 4 to 8 digits.")
    panel.get_by_label("PIN (optional)").fill("2468")
    panel.get_by_label("Locked").check()
    panel.get_by_role("button", name="Create link").click()

    expect(panel.get_by_label("Link for Jane Doe")).to_be_visible()
    delivery = panel.locator("li.delivery-row")
    expect(delivery).to_have_count(1)
    expect(delivery).to_contain_text("PIN")
    expect(delivery).to_contain_text("locked (previews only)")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    button = panel.get_by_role("button", name="Copy link")
    box = button.bounding_box()
    assert box is not None
    assert box["x"] + box["width"] <= 390
