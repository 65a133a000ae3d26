"""The page's sizes (GET /presets, one folder each) and file names, in a real Chromium.

At 1280 px a person ticks MLS and Print for the demo order and gets a ZIP with both folders,
every photo in each, numbered in shot order; at 390 px the choice fits the screen. The
page's teardown fails each test on any console error or CSP violation.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from app.sandbox import DEMO_ORDER_ID
from tests.browser.conftest import OpenPage, StartService, choose_quality, view_message

pytestmark = pytest.mark.browser


def test_a_person_downloads_an_order_in_mls_and_print_numbered_in_shot_order(
    start_service: StartService, open_page: OpenPage, tmp_path: Path
) -> None:
    server = start_service()
    order = httpx.get(f"{server.url}/orders/{DEMO_ORDER_ID}", timeout=10).json()
    names = [image["title"] for image in order["images"]]
    offered = httpx.get(f"{server.url}/presets", timeout=10).json()["presets"]
    page, _ = open_page(server, width=1280, path="/#download")
    sizes = page.locator("#panel-download fieldset.sizes")
    choice = page.locator("#panel-download fieldset.quality")
    closed = page.locator("#panel-download details.sizes-choice summary")
    expect(closed).to_have_text("Sizes and file names as delivered, original names")
    closed.click()
    # Every preset this service offers, by its folder's name.
    expect(sizes.locator(".size-list .choice-name")).to_have_text(
        [preset["label"] for preset in offered]
    )
    expect(page.locator("#summary .counts")).to_have_text("3 photos · 3 ready")
    # A size is made from the full-quality photo: ticking one chooses it.
    choose_quality(page, "Free preview", panel="#panel-download")
    sizes.get_by_label("MLS").check()
    expect(choice.get_by_label("Full quality")).to_be_checked()
    # ...and a free preview unticks the sizes again.
    choose_quality(page, "Free preview", panel="#panel-download")
    expect(sizes.get_by_label("MLS")).not_to_be_checked()
    sizes.get_by_label("MLS").check()
    sizes.get_by_label("Print").check()
    sizes.get_by_label("Numbered in shot order").check()
    expect(closed).to_have_text("Sizes and file names MLS and Print, numbered")
    # The same choice is shown on the other tabs.
    orders_sizes = page.locator("#panel-orders fieldset.sizes")
    expect(orders_sizes.get_by_label("Print")).to_be_checked()
    expect(orders_sizes.get_by_label("Numbered in shot order")).to_be_checked()

    with page.expect_download() as info:
        page.locator("#summary").get_by_role("button", name="Download ZIP").click()
    saved = tmp_path / "order.zip"
    info.value.save_as(saved)
    expect(view_message(page, "#summary")).to_contain_text("in MLS and Print, full quality")
    with zipfile.ZipFile(saved) as archive:
        assert archive.testzip() is None
        entries = [name for name in archive.namelist() if not name.startswith("_")]
    numbered = [f"{number:02d} - {name}.jpg" for number, name in enumerate(names, start=1)]
    assert sorted(e for e in entries if e.startswith("MLS/")) == [f"MLS/{n}" for n in numbered]
    assert sorted(e for e in entries if e.startswith("Print/")) == [f"Print/{n}" for n in numbered]
    assert len(entries) == 2 * len(names)


@pytest.mark.parametrize("panel", ["#panel-orders", "#panel-download"])
def test_the_sizes_fit_a_phone_screen(
    start_service: StartService, open_page: OpenPage, panel: str
) -> None:
    server = start_service()
    page, _ = open_page(server, width=390, height=844, path=f"/{panel.replace('panel-', '')}")
    page.locator(f"{panel} details.sizes-choice summary").click()
    sizes = page.locator(f"{panel} fieldset.sizes")
    expect(sizes).to_be_visible()
    sizes.get_by_label("MLS").check()
    sizes.get_by_label("Numbered in shot order").check()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    for part in [sizes, *sizes.locator("label").all()]:
        box = part.bounding_box()
        assert box is not None
        assert box["x"] >= 0, (part, box)
        assert box["x"] + box["width"] <= 390, (part, box)
