"""What a busy photographer trips over, each checked in a real Chromium at 1280 and 390 px.

Full quality or free preview chosen on purpose and remembered, a typed order id that nothing
in the background replaces, buttons that act where they are, developer tools off the
photographer's tab bar, names a person understands, and a larger view of a photo. The page's
teardown fails each test on any console error or CSP violation.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from app.sandbox import DEMO_ORDER_ID
from tests.browser.conftest import (
    OpenPage,
    Server,
    StartService,
    choose_quality,
    live_overrides,
    view_message,
)
from tests.conftest import SettingsFactory, create_order

pytestmark = pytest.mark.browser

DEMO_NAME = "Demo order — 12 Harbour View"
SAMPLES = sorted((Path(__file__).resolve().parents[2] / "sample_images").glob("*.jpg"))
WIDTHS = [1280, 390]


def _open(open_page: OpenPage, server: Server, width: int, path: str = "/", **more: object) -> Page:
    height = 900 if width > 500 else 844
    page, _ = open_page(server, width=width, height=height, path=path, **more)
    return page


def _widths(path: Path) -> list[int]:
    """The pixel width of every photo in a ZIP."""
    with zipfile.ZipFile(path) as archive:
        widths = []
        for name in archive.namelist():
            if not name.startswith("_"):
                with Image.open(io.BytesIO(archive.read(name))) as photo:
                    widths.append(photo.width)
        return widths


def _demo_row(page: Page) -> str:
    return f"#orders-list li[data-order-id='{DEMO_ORDER_ID}']"


@pytest.mark.parametrize("width", WIDTHS)
def test_full_quality_or_free_preview_is_chosen_and_remembered_and_names_the_zip(
    start_service: StartService, open_page: OpenPage, tmp_path: Path, width: int
) -> None:
    server = start_service()
    page = _open(open_page, server, width)
    choice = page.locator("#panel-orders fieldset.quality")
    # Sandbox mode: full quality costs nothing, so it is the choice, and the page says so.
    expect(choice.get_by_label("Full quality")).to_be_checked()
    expect(choice).to_contain_text("free here (sandbox mode)")
    choose_quality(page, "Free preview", panel="#panel-orders")
    with page.expect_download() as info:
        page.get_by_role("button", name=f"Download ZIP of {DEMO_NAME}").click()
    assert info.value.suggested_filename == f"{DEMO_NAME} (preview).zip"
    info.value.save_as(tmp_path / "preview.zip")
    expect(page.locator(f"{_demo_row(page)} .order-place .message")).to_contain_text("free preview")

    # Remembered on the other tab, where it can be changed back.
    page.get_by_role("tab", name="Download").click()
    download_choice = page.locator("#panel-download fieldset.quality")
    expect(download_choice.get_by_label("Free preview")).to_be_checked()
    choose_quality(page, "Full quality", panel="#panel-download")
    expect(page.locator("#summary .counts")).to_have_text("3 photos · 3 ready")
    with page.expect_download() as info:
        page.locator("#summary").get_by_role("button", name="Download ZIP").click()
    assert info.value.suggested_filename == f"{DEMO_NAME}.zip"
    info.value.save_as(tmp_path / "full.zip")
    assert all(
        full > preview
        for full, preview in zip(
            _widths(tmp_path / "full.zip"), _widths(tmp_path / "preview.zip"), strict=True
        )
    )
    page.get_by_role("tab", name="Your orders").click()
    expect(choice.get_by_label("Full quality")).to_be_checked()


@pytest.mark.parametrize("width", WIDTHS)
def test_with_a_real_account_the_page_asks_before_the_first_download(
    start_service: StartService,
    open_page: OpenPage,
    make_settings: SettingsFactory,
    sandbox: httpx.Client,
    width: int,
) -> None:
    order = create_order(sandbox, images=2, name="Asked first")
    server = start_service(**live_overrides(make_settings))
    page = _open(open_page, server, width, path="/#download")
    choice = page.locator("#panel-download fieldset.quality")
    expect(choice).to_contain_text("1 credit per photo")
    expect(choice.get_by_label("Full quality")).not_to_be_checked()
    expect(choice.get_by_label("Free preview")).not_to_be_checked()
    page.get_by_label("Order id").fill(order["order_id"])
    expect(page.locator("#summary .counts")).to_have_text("2 photos · 2 ready")
    downloads: list[object] = []
    page.on("download", lambda download: downloads.append(download))
    page.locator("#summary").get_by_role("button", name="Download ZIP").click()
    expect(view_message(page, "#summary")).to_contain_text(
        "Choose “Full quality” or “Free preview” first"
    )
    expect(choice).to_have_class("quality asking")
    expect(choice.get_by_label("Full quality")).to_be_focused()
    assert downloads == []
    choose_quality(page, "Free preview", panel="#panel-download")
    with page.expect_download() as info:
        page.locator("#summary").get_by_role("button", name="Download ZIP").click()
    assert info.value.suggested_filename == "Asked first (preview).zip"


@pytest.mark.parametrize("width", WIDTHS)
def test_a_typed_order_id_is_not_replaced_when_a_new_order_finishes(
    start_service: StartService, open_page: OpenPage, width: int
) -> None:
    server = start_service(sandbox_processing_delay=1.5)
    page = _open(open_page, server, width, path="/#create", allow_statuses=(404,))
    page.get_by_role("button", name="Use the sample images").click()
    expect(page.locator("#created-status")).to_contain_text("Processing")
    page.get_by_role("tab", name="Download").click()
    typed = "00000000-0000-4000-8000-000000000000"
    field = page.get_by_label("Order id")
    field.fill(typed)
    page.get_by_role("button", name="Check order").click()
    expect(page.locator("#download-message")).to_contain_text("No order with this id is visible")
    # The new order finishes in the background, on its own tab...
    expect(page.locator("#created-status")).to_contain_text("Processed: 3 of 3", timeout=30_000)
    # ...and what the person typed, and what it answered, stay.
    expect(field).to_have_value(typed)
    expect(page.locator("#download-message")).to_contain_text("No order with this id is visible")
    expect(page.locator("#summary")).to_be_hidden()


@pytest.mark.parametrize("width", WIDTHS)
def test_buttons_act_where_they_are(
    start_service: StartService, open_page: OpenPage, width: int
) -> None:
    server = start_service()
    page = _open(open_page, server, width)
    row = page.locator(_demo_row(page))
    orders_tab = page.get_by_role("tab", name="Your orders")
    # "Download ZIP" downloads from the list; the list stays, and says so under the order.
    with page.expect_download():
        page.get_by_role("button", name=f"Download ZIP of {DEMO_NAME}").click()
    expect(orders_tab).to_have_attribute("aria-selected", "true")
    expect(row.locator(".order-place .message")).to_contain_text("Your browser is saving")
    # "Show images" shows them: under the order, scrolled into view.
    page.get_by_role("button", name=f"Show images of {DEMO_NAME}").click()
    expect(orders_tab).to_have_attribute("aria-selected", "true")
    first = row.locator(".order-photos li.thumb").first
    expect(first).to_be_in_viewport()
    expect(page.get_by_role("button", name=f"Show images of {DEMO_NAME}")).to_have_count(0)
    expect(row.get_by_role("button", name=f"Hide images of {DEMO_NAME}")).to_have_attribute(
        "aria-expanded", "true"
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_the_photographers_tabs_are_one_row_and_developer_tools_have_their_own_page(
    start_service: StartService, open_page: OpenPage, width: int
) -> None:
    server = start_service()
    page = _open(open_page, server, width)
    tabs = page.get_by_role("tab")
    expect(tabs).to_have_text(["Your orders", "Download", "New order", "Ask"])
    tops = {round(box["y"]) for box in (tabs.nth(i).bounding_box() for i in range(4)) if box}
    assert len(tops) == 1, tops
    assert page.locator("#counters, #admin-token, #curl-download").count() == 0
    page.get_by_role("link", name="API reference, status and sign-in").click()
    page.wait_for_selector("body[data-ready='true']", state="attached")
    assert page.url == f"{server.url}/developers"
    expect(page.get_by_role("heading", name="API reference")).to_be_visible()
    expect(page.locator("#counters")).to_contain_text("Up for")
    expect(page.get_by_label("Admin token")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= width


@pytest.mark.parametrize("width", WIDTHS)
def test_an_unnamed_order_is_named_from_its_date_and_first_photo(
    start_service: StartService, open_page: OpenPage, width: int
) -> None:
    server = start_service()
    with SAMPLES[1].open("rb") as first, SAMPLES[0].open("rb") as second:
        created = httpx.post(
            f"{server.url}/api/create-order",
            files=[
                ("files", ("house-front.jpg", first, "image/jpeg")),
                ("files", ("garden.jpg", second, "image/jpeg")),
            ],
            timeout=30,
        )
    created.raise_for_status()
    order_id = created.json()["order_id"]
    summary = httpx.get(f"{server.url}/orders/{order_id}", timeout=10).json()
    title = f"{summary['created_at'][:10]} house-front"
    assert summary["title"] == title
    page = _open(open_page, server, width)
    row = page.locator(f"#orders-list li[data-order-id='{order_id}']")
    expect(row.locator(".order-name")).to_have_text(title)
    assert order_id not in row.inner_text()
    # Found by a part of its name.
    page.get_by_label("Find an order by name").fill("HOUSE-front")
    expect(page.locator("#orders-list li.order-row:visible")).to_have_count(1)
    expect(page.locator("#orders-found")).to_contain_text("1 of 2 orders match")
    with page.expect_download() as info:
        page.get_by_role("button", name=f"Download ZIP of {title}").click()
    assert info.value.suggested_filename == f"{title}.zip"
    # Its tiles show each photo's name, not its file name.
    page.get_by_role("button", name=f"Show images of {title}").click()
    expect(row.locator(".order-photos li.thumb .image-name")).to_have_text(
        ["house-front", "garden"], timeout=30_000
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_what_a_download_did_is_said_in_words_and_goes_at_the_next_action(
    start_service: StartService, open_page: OpenPage, width: int
) -> None:
    server = start_service()
    page = _open(open_page, server, width)
    message = page.locator(f"{_demo_row(page)} .order-place .message")
    with page.expect_download():
        page.get_by_role("button", name=f"Download ZIP of {DEMO_NAME}").click()
    expect(message).to_have_text(
        f"Your browser is saving “{DEMO_NAME}.zip”: 3 photos, full quality. "
        "Follow it in your browser's downloads."
    )
    assert "valid" not in (message.text_content() or "")
    page.get_by_role("button", name=f"Show images of {DEMO_NAME}").click()
    expect(message).to_be_hidden()


def _garden_larger(open_page: OpenPage, server: Server, width: int) -> Page:
    """The page with the demo order's photos shown and its garden photo open larger."""
    page = _open(open_page, server, width)
    row = page.locator(_demo_row(page))
    page.get_by_role("button", name=f"Show images of {DEMO_NAME}").click()
    row.get_by_role("button", name="View garden larger").click()
    expect(page.get_by_role("dialog", name="garden")).to_be_visible()
    return page


@pytest.mark.parametrize("width", WIDTHS)
def test_a_photo_opens_larger_the_next_comes_by_arrow_or_swipe_and_one_downloads(
    start_service: StartService, open_page: OpenPage, tmp_path: Path, width: int
) -> None:
    page = _garden_larger(open_page, start_service(), width)
    viewer = page.get_by_role("dialog", name="garden")
    picture = page.locator("dialog.viewer img.viewer-image")
    expect(picture).to_have_js_property("complete", True)
    # Larger than the 320 px thumbnail: the free preview.
    assert picture.evaluate("img => img.naturalWidth") > 320
    expect(viewer).to_contain_text("Photo 1 of 3")
    page.keyboard.press("ArrowRight")
    expect(page.get_by_role("dialog", name="house-front")).to_be_visible()
    # A swipe to the left shows the next one, on a picture that has loaded (a loaded picture
    # is what a mouse could start dragging away instead).
    expect(picture).to_have_js_property("complete", True)
    box = picture.bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.8, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.2, y, steps=5)
    page.mouse.up()
    expect(page.get_by_role("dialog", name="living-room")).to_be_visible()
    with page.expect_download() as info:
        page.get_by_role("button", name="Download this photo").click()
    assert info.value.suggested_filename == "living-room.jpg"
    saved = tmp_path / "living-room.jpg"
    info.value.save_as(saved)
    with Image.open(saved) as photo:
        assert photo.width > picture.evaluate("img => img.naturalWidth")
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)


@pytest.mark.parametrize("width", WIDTHS)
def test_a_photo_downloads_in_a_size_the_service_offers(
    start_service: StartService, open_page: OpenPage, tmp_path: Path, width: int
) -> None:
    page = _garden_larger(open_page, start_service(), width)
    size = page.get_by_role("combobox", name="Size of the photo")
    expect(size).to_have_value("")  # as delivered, until a size is chosen
    size.select_option(label="Web")
    with page.expect_download() as info:
        page.get_by_role("button", name="Download this photo").click()
    assert info.value.suggested_filename == "garden (Web).jpg"
    saved = tmp_path / "garden (Web).jpg"
    info.value.save_as(saved)
    assert saved.stat().st_size <= 500_000
    with Image.open(saved) as photo:
        assert photo.format == "JPEG"
        assert max(photo.size) <= 1600
        assert photo.info.get("icc_profile")  # sRGB, embedded
    expect(page.locator("dialog.viewer .message")).to_contain_text("“garden (Web).jpg” (Web)")
