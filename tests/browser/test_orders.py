"""Your orders, thumbnails, ticked images and shot order, in a real Chromium.

Each test runs its own service; in sandbox mode that service holds its own emulator, so the
orders a test lists are only the demo order and the ones it created itself.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from playwright.sync_api import Request, Route, expect

from app.sandbox import DEMO_ORDER_ID
from tests.browser.conftest import (
    FAKE_SAVE_PICKER,
    OpenPage,
    Server,
    StartService,
    live_overrides,
    zip_entries,
)
from tests.conftest import SettingsFactory, create_order

pytestmark = pytest.mark.browser

SAMPLE = Path(__file__).resolve().parents[2] / "sample_images" / "garden.jpg"
DEMO_NAME = "Demo order — 12 Harbour View"


def _name_order(server: Server, name: str) -> str:
    """Create an order of one image named `name` through the service; its id."""
    with SAMPLE.open("rb") as image:
        response = httpx.post(
            f"{server.url}/api/create-order",
            files=[("files", ("photo.jpg", image, "image/jpeg"))],
            data={"name": name},
            timeout=30,
        )
    response.raise_for_status()
    order_id: str = response.json()["order_id"]
    return order_id


def test_your_orders_then_two_ticked_thumbnails_give_a_zip_of_exactly_those(
    start_service: StartService, open_page: OpenPage, tmp_path: Path
) -> None:
    server = start_service()
    page, _ = open_page(server)
    # Sandbox mode: "Your orders" opens first; no id to paste.
    expect(page.get_by_role("tab", name="Your orders")).to_have_attribute("aria-selected", "true")
    row = page.locator(f"#orders-list li[data-order-id='{DEMO_ORDER_ID}']")
    expect(row).to_contain_text(DEMO_NAME)
    expect(row).to_contain_text("3 photos · ready")
    page.get_by_role("button", name=f"Show images of {DEMO_NAME}").click()

    # The photos open under the order's row: the list stays where it was.
    expect(page.get_by_role("tab", name="Your orders")).to_have_attribute("aria-selected", "true")
    tiles = row.locator(".order-photos li.thumb")
    expect(tiles).to_have_count(3)
    # Every ready tile shows its picture (the thumbnail answered and decoded).
    for index in range(3):
        expect(tiles.nth(index).locator("img")).to_have_js_property("complete", True)
        assert tiles.nth(index).locator("img").evaluate("img => img.naturalWidth") > 0
    expect(tiles.nth(0)).to_contain_text("ready")
    row.get_by_label("Select garden").check()
    row.get_by_label("Select living-room").check()
    selected = page.get_by_role("button", name="Download 2 of 3")
    expect(selected).to_be_visible()
    with page.expect_download() as info:
        selected.click()
    saved = tmp_path / "two.zip"
    info.value.save_as(saved)
    assert zip_entries(saved) == ["garden.jpg", "living-room.jpg"]
    expect(row.locator(".order-photos .download-place .message")).to_contain_text("2 photos")
    # The order's own button still takes them all.
    with page.expect_download() as info:
        page.get_by_role("button", name=f"Download ZIP of {DEMO_NAME}").click()
    info.value.save_as(tmp_path / "all.zip")
    assert zip_entries(tmp_path / "all.zip") == ["garden.jpg", "house-front.jpg", "living-room.jpg"]


def test_your_orders_downloads_in_one_click_newest_first_and_loads_more(
    start_service: StartService, open_page: OpenPage, tmp_path: Path
) -> None:
    server = start_service(rate_limit_create_orders="100/minute")
    names = [f"Shoot {n:02d}" for n in range(1, 22)]
    for name in names:
        _name_order(server, name)
    page, _ = open_page(server)
    rows = page.locator("#orders-list li.order-row")
    expect(rows).to_have_count(20)
    # Newest first: the last order created heads the list.
    expect(rows.locator(".order-name")).to_have_text(list(reversed(names))[:20])
    more = page.get_by_role("button", name="Load more")
    more.click()
    expect(rows).to_have_count(22)
    expect(rows.nth(20)).to_contain_text("Shoot 01")
    expect(rows.nth(21)).to_contain_text(DEMO_NAME)
    expect(more).to_be_hidden()
    # Focus moves to the first order of the new page, for keyboard users.
    expect(rows.nth(20).get_by_role("button", name="Show images of Shoot 01")).to_be_focused()

    with page.expect_download() as info:
        page.get_by_role("button", name=f"Download ZIP of {DEMO_NAME}").click()
    saved = tmp_path / "demo.zip"
    info.value.save_as(saved)
    assert sorted(zip_entries(saved)) == ["garden.jpg", "house-front.jpg", "living-room.jpg"]


def test_phone_width_your_orders_has_its_download_on_the_first_screen(
    start_service: StartService, open_page: OpenPage
) -> None:
    server = start_service()
    page, _ = open_page(server, width=390, height=844)
    button = page.get_by_role("button", name=f"Download ZIP of {DEMO_NAME}")
    expect(button).to_be_visible()
    box = button.bounding_box()
    assert box is not None
    assert box["y"] + box["height"] <= 844, box
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_own_key_opens_your_orders_with_only_that_keys_orders(
    start_service: StartService,
    open_page: OpenPage,
    make_settings: SettingsFactory,
    sandbox: httpx.Client,
) -> None:
    key = f"own-key-{uuid4()}"
    mine = create_order(sandbox, images=2, api_key=key, name=f"Mine {key[-6:]}")
    theirs = create_order(sandbox, images=1, api_key=f"other-{uuid4()}", name="Not mine")
    server = start_service(**live_overrides(make_settings))
    page, _ = open_page(server)
    # Live mode, no key: nothing to list, so no "Your orders" tab.
    expect(page.get_by_role("tab", name="Download")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_role("tab", name="Your orders")).to_be_hidden()

    page.locator("#access summary").click()
    page.get_by_label("Key type").select_option("own")
    page.get_by_label("Key", exact=True).fill(key)
    page.get_by_label("Key", exact=True).blur()
    tab = page.get_by_role("tab", name="Your orders")
    expect(tab).to_be_visible()
    assert page.evaluate("localStorage.length") == 0
    assert key in (page.evaluate("JSON.stringify(sessionStorage)") or "")

    # The next visit in this tab opens on the key's orders.
    keyed: list[str] = []

    def note(request: Request) -> None:
        if key in (request.headers.get("x-autoenhance-key") or ""):
            keyed.append(request.url)

    page.on("request", note)
    page.reload()
    page.wait_for_selector("body[data-ready='true']", state="attached")
    expect(tab).to_have_attribute("aria-selected", "true")
    row = page.locator(f"#orders-list li[data-order-id='{mine['order_id']}']")
    expect(row).to_contain_text("2 photos")
    expect(page.locator(f"#orders-list li[data-order-id='{theirs['order_id']}']")).to_have_count(0)
    # The thumbnail needs the key: fetched with its header, shown from a blob: URL.
    expect(row.locator("img")).to_have_attribute("src", re.compile(r"^blob:"))
    assert keyed
    assert all(url.startswith(server.url + "/") for url in keyed), keyed


def test_summary_shows_each_images_state_and_only_ready_ones_can_be_ticked(
    start_service: StartService,
    open_page: OpenPage,
    make_settings: SettingsFactory,
    sandbox: httpx.Client,
) -> None:
    order = create_order(
        sandbox, images=3, statuses={"1": "processing", "2": "error"}, name="Mixed states"
    )
    server = start_service(**live_overrides(make_settings))
    page, _ = open_page(server, path="/#download")
    page.get_by_label("Order id").fill(order["order_id"])
    tiles = page.locator("#summary-images li.thumb")
    expect(tiles).to_have_count(3)
    expect(tiles.nth(0)).to_have_class("image thumb ready selectable")
    expect(tiles.nth(1)).to_have_class("image thumb busy selectable")
    expect(tiles.nth(1)).to_contain_text("still processing")
    expect(tiles.nth(2)).to_have_class("image thumb failed selectable")
    expect(tiles.nth(2)).to_contain_text("failed")
    expect(tiles.nth(0).locator("input")).to_be_enabled()
    expect(tiles.nth(1).locator("input")).to_be_disabled()
    expect(tiles.nth(2).locator("input")).to_be_disabled()
    # Keyboard: the ready tile's checkbox takes focus and Space ticks it.
    tiles.nth(0).locator("input").focus()
    page.keyboard.press("Space")
    expect(page.get_by_role("button", name="Download 1 of 3")).to_be_visible()
    page.get_by_role("button", name="Clear selection").click()
    expect(page.locator("#summary .download-selected")).to_be_hidden()


def test_twenty_named_files_come_back_in_shot_order(
    start_service: StartService, open_page: OpenPage, tmp_path: Path
) -> None:
    server = start_service()
    page, _ = open_page(server, path="/#create", save_picker=FAKE_SAVE_PICKER)
    # Shot order is not name order: a photographer's sequence, listed as given.
    shots = [
        f"room-{n:02d}.jpg"
        for n in [7, 2, 19, 0, 11, 4, 16, 9, 1, 13, 5, 18, 3, 15, 8, 12, 6, 17, 10, 14]
    ]
    # A tile shows the photo's name as a person knows it: without its extension.
    titles = [name.removesuffix(".jpg") for name in shots]
    folder = tmp_path / "shoot"
    folder.mkdir()
    for name in shots:
        shutil.copyfile(SAMPLE, folder / name)
    page.locator("#file-input").set_input_files([str(folder / name) for name in shots])
    expect(page.locator("#file-list li .image-name")).to_have_text(shots)
    page.get_by_label("Order name").fill("14 Quay Street")
    page.get_by_role("button", name="Create order from 20 images").click()
    expect(page.locator("#created-title")).to_have_text("14 Quay Street")
    # The progress is a grid of thumbnails with each image's state, in shot order.
    expect(page.locator("#created-status")).to_contain_text("Processed: 20 of 20", timeout=60_000)
    created = page.locator("#created-images li.thumb")
    expect(created).to_have_count(20)
    expect(created.locator(".image-name")).to_have_text(titles)
    expect(created.locator("img")).to_have_count(20)

    with page.expect_download() as info:
        page.locator("#created-order").get_by_role("button", name="Download ZIP").click()
    download = info.value
    assert download.suggested_filename == "14 Quay Street.zip"
    saved = tmp_path / "shoot.zip"
    download.save_as(saved)
    assert zip_entries(saved) == shots


def test_signing_in_as_administrator_shows_the_operators_orders(
    start_service: StartService,
    open_page: OpenPage,
    make_settings: SettingsFactory,
    sandbox: httpx.Client,
) -> None:
    operator_key = live_overrides(make_settings)["autoenhance_api_key"].get_secret_value()
    operator_order = create_order(
        sandbox, images=1, api_key=operator_key, name=f"Operator {uuid4()}"
    )
    server = start_service(**live_overrides(make_settings), admin_token="browser-admin-token")
    page, _ = open_page(server)
    tab = page.get_by_role("tab", name="Your orders")
    # The operator's orders are every customer's: not listed to an anonymous visitor.
    expect(page.get_by_role("tab", name="Download")).to_have_attribute("aria-selected", "true")
    expect(tab).to_be_hidden()
    # Signing in is for operators: on the developers' page, linked from the footer.
    page.get_by_role("link", name="API reference, status and sign-in").click()
    page.wait_for_selector("body[data-ready='true']", state="attached")
    page.get_by_label("Admin token").fill("browser-admin-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#admin-signed-in")).to_be_visible()
    page.get_by_role("link", name="Back to the photos").click()
    page.wait_for_selector("body[data-ready='true']", state="attached")
    expect(tab).to_be_visible()
    expect(tab).to_have_attribute("aria-selected", "true")
    row = page.locator(f"#orders-list li[data-order-id='{operator_order['order_id']}']")
    expect(row).to_contain_text(operator_order["name"])
    page.goto(server.url + "/developers")
    page.wait_for_selector("body[data-ready='true']", state="attached")
    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#admin-form")).to_be_visible()
    page.goto(server.url + "/")
    page.wait_for_selector("body[data-ready='true']", state="attached")
    expect(tab).to_be_hidden()


def test_a_late_answer_about_an_earlier_key_does_not_hide_your_orders(
    start_service: StartService,
    open_page: OpenPage,
    make_settings: SettingsFactory,
    sandbox: httpx.Client,
) -> None:
    key = f"own-key-{uuid4()}"
    create_order(sandbox, images=1, api_key=key, name="Late answer")
    server = start_service(**live_overrides(make_settings))
    page, _ = open_page(server)
    expect(page.locator("body")).to_have_attribute("data-access-checks", "1")
    # Hold the session checks made from now on, to answer them late.
    held: list[Route] = []
    page.route("**/api/admin/session", lambda route: held.append(route))
    page.locator("#access summary").click()
    # Choosing the key type first saves "no key": that check asks whether this is an admin...
    with page.expect_request("**/api/admin/session"):
        page.get_by_label("Key type").select_option("own")
    # ...and before its answer comes, the own key is entered (no session check needed).
    page.get_by_label("Key", exact=True).fill(key)
    page.get_by_label("Key", exact=True).blur()
    tab = page.get_by_role("tab", name="Your orders")
    expect(tab).to_be_visible()
    expect(page.locator("body")).to_have_attribute("data-access-checks", "2")
    assert len(held) == 1
    held[0].continue_()
    expect(page.locator("body")).to_have_attribute("data-access-checks", "3")
    expect(tab).to_be_visible()
