"""What a new user trips over on the page, each checked in a real Chromium.

One test per rough edge: the create button after an upload, a failed upload's leftover card,
the one-click default download, an invalid option, accepted formats and the "not a photo"
message naming the file, the API reference's word breaks and copy buttons, service-wide
counters, live-region roles and the tablist's label.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from app.sandbox import DEMO_ORDER_ID
from tests.browser.conftest import FAKE_SAVE_PICKER, OpenPage, StartService, view_message

pytestmark = pytest.mark.browser

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "sample_images"
SAMPLES = sorted(SAMPLE_DIR.glob("*.jpg"))
DEMO_ENTRIES = ["garden.jpg", "house-front.jpg", "living-room.jpg"]

# Words (runs of letters, digits and underscores) whose line boxes lie on more than one line.
BROKEN_WORDS = """(root) => {
  const broken = [];
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (const match of node.data.matchAll(/[A-Za-z0-9_]{2,}/g)) {
      const range = document.createRange();
      range.setStart(node, match.index);
      range.setEnd(node, match.index + match[0].length);
      const tops = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
      if (tops.size > 1) broken.push(match[0]);
    }
  }
  return broken;
}"""


def test_create_button_is_gone_once_the_files_are_uploaded(
    start_service: StartService, open_page: OpenPage
) -> None:
    server = start_service()
    page, _ = open_page(server, path="/#create")
    page.locator("#file-input").set_input_files([str(p) for p in SAMPLES])
    create = page.get_by_role("button", name="Create order from 3 images")
    expect(create).to_be_enabled()
    create.click()
    expect(page.locator("#created-status")).to_contain_text("Processed: 3 of 3", timeout=30_000)
    # Nothing is left to create: no button that would do nothing; the files became the order.
    expect(page.locator("#upload-button")).to_be_hidden()
    expect(page.locator("#file-list li")).to_have_count(0)
    expect(page.locator("#created-images li.thumb.ready")).to_have_count(3)
    # Choosing new files starts a new batch with its own button.
    page.locator("#file-input").set_input_files(str(SAMPLES[0]))
    expect(page.get_by_role("button", name="Create order from 1 image")).to_be_enabled()


def test_a_failed_upload_does_not_leave_the_previous_order_on_screen(
    start_service: StartService, open_page: OpenPage, tmp_path: Path
) -> None:
    server = start_service()
    page, _ = open_page(server, path="/#create", allow_statuses=(415,))
    page.get_by_role("button", name="Use the sample images").click()
    card = page.locator("#created-order")
    expect(card).to_be_visible()
    expect(page.locator("#created-status")).to_contain_text("Processed", timeout=30_000)

    fake = tmp_path / "not-a-photo.jpg"
    fake.write_bytes(b"just some text, whatever the name says\n" * 20)
    page.locator("#file-input").set_input_files(str(fake))
    page.get_by_role("button", name="Create order from 1 image").click()
    message = page.locator("#create-message")
    expect(message).to_contain_text("not-a-photo.jpg is not an image")
    expect(card).to_be_hidden()
    text = message.inner_text()
    assert ".." not in text, text
    for name in ["TIFF", "AVIF", "RAW", "HEIC"]:
        assert name in text, text
    expect(message).to_have_attribute("role", "alert")


def test_the_chooser_takes_every_format_the_service_accepts(
    start_service: StartService, open_page: OpenPage, tmp_path: Path
) -> None:
    server = start_service()
    page, _ = open_page(server, path="/#create")
    hint = page.locator("#dropzone .hint")
    for name in ["TIFF", "AVIF", "RAW"]:
        expect(hint).to_contain_text(name)
    accept = page.locator("#file-input").get_attribute("accept") or ""
    for ext in [".tif", ".tiff", ".avif", ".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf"]:
        assert ext in accept.split(","), accept
    # RAW files often reach the page without a MIME type: their extension must be enough.
    files = []
    for name in ["shot.CR3", "shot.dng", "scan.tiff", "notes.txt"]:
        path = tmp_path / name
        path.write_bytes(b"\0" * 64)
        files.append(str(path))
    page.locator("#file-input").set_input_files(files)
    expect(page.locator("#file-list li")).to_have_count(3)
    # The file left out is named, so the photographer knows which one.
    expect(page.locator("#create-message")).to_have_text(
        "notes.txt is not a photo, so it was left out."
    )
    expect(page.locator("#create-message")).to_have_attribute("role", "status")


def test_one_click_download_goes_to_the_browser_even_where_the_page_could_stream(
    start_service: StartService, open_page: OpenPage, tmp_path: Path
) -> None:
    server = start_service()
    # Chromium desktop offers the File System Access API: still no save dialog by default.
    page, _ = open_page(server, path="/#download", save_picker=FAKE_SAVE_PICKER)
    expect(page.locator("#summary .counts")).to_have_text("3 photos · 3 ready")
    expect(page.locator("#opt-in-page")).not_to_be_checked()
    with page.expect_download() as info:
        page.get_by_role("button", name="Download ZIP").click()
    saved = tmp_path / "demo.zip"
    info.value.save_as(saved)
    with zipfile.ZipFile(saved) as archive:
        assert sorted(archive.namelist()) == DEMO_ENTRIES
    assert page.evaluate("window.__pickerOptions === undefined")
    message = view_message(page, "#summary")
    expect(message).to_contain_text("Your browser is saving")
    expect(message).to_have_attribute("role", "status")


def test_an_invalid_quality_is_an_option_error_not_a_page_error(
    start_service: StartService, open_page: OpenPage
) -> None:
    server = start_service()
    page, _ = open_page(server, path="/#download")
    expect(page.locator("#summary .counts")).to_have_text("3 photos · 3 ready")
    page.locator("#advanced summary").click()
    quality = page.get_by_label("Quality (1–90)")
    quality.fill("500")
    # Straight to the button, without leaving the field first (no change event yet).
    page.get_by_role("button", name="Download ZIP").click()
    feedback = page.locator("#options-feedback")
    expect(feedback).to_have_text("Quality must be a whole number from 1 to 90.")
    expect(feedback).to_have_class("feedback bad")
    expect(quality).to_have_attribute("aria-invalid", "true")
    expect(view_message(page, "#summary")).to_have_attribute("role", "alert")
    quality.fill("80")
    quality.blur()
    expect(feedback).to_have_text("")
    expect(quality).to_have_attribute("aria-invalid", "false")
    # The page's teardown fails on any uncaught page error.


@pytest.mark.parametrize("width", [390, 1280])
def test_the_api_tab_breaks_no_word_and_copy_buttons_sit_on_their_code(
    start_service: StartService, open_page: OpenPage, width: int
) -> None:
    server = start_service()
    page, _ = open_page(server, width=width, height=900, path="/developers")
    panel = page.locator("#panel-api")
    expect(panel).to_be_visible()
    assert panel.evaluate(BROKEN_WORDS) == []
    blocks = page.locator(".copy-block")
    assert blocks.count() >= 5
    for index in range(blocks.count()):
        code = blocks.nth(index).locator("pre").bounding_box()
        button = blocks.nth(index).locator("button.copy").bounding_box()
        assert code
        assert button
        assert code["y"] <= button["y"]
        assert button["y"] + button["height"] <= code["y"] + code["height"]
        assert code["x"] <= button["x"]
        assert button["x"] + button["width"] <= code["x"] + code["width"]
    # What is copied is the command as written, whatever the line breaks.
    command = page.locator("#curl-download").text_content()
    assert command == f"curl -fOJ {server.url}/orders/{DEMO_ORDER_ID}/images"


def test_service_wide_counters_are_on_the_developers_page_only(
    start_service: StartService, open_page: OpenPage
) -> None:
    server = start_service()
    httpx.post(f"{server.url}/api/create-sample-order", timeout=30).raise_for_status()
    stats_calls: list[str] = []
    page, _ = open_page(server, path="/#download")
    page.on("request", lambda r: stats_calls.append(r.url) if "/api/stats" in r.url else None)
    expect(page.locator("#summary .counts")).to_have_text("3 photos · 3 ready")
    header = page.locator("header").inner_text()
    assert "created" not in header, header
    assert "served" not in header, header
    assert stats_calls == []
    page.get_by_role("link", name="API reference, status and sign-in").click()
    page.wait_for_selector("body[data-ready='true']", state="attached")
    counters = page.locator("#counters")
    expect(counters).to_contain_text("Test orders created")
    # The counters belong to the process (other tests' orders count too): a number, as a fact.
    created = counters.locator("dt:has-text('Test orders created') + dd")
    expect(created).to_have_text(re.compile(r"^[1-9][0-9,]*$"))
    assert "1 test orders" not in page.locator("body").inner_text().lower()
    assert stats_calls


def test_messages_use_alert_for_errors_only_and_labels_are_unique(
    start_service: StartService, open_page: OpenPage
) -> None:
    server = start_service()
    page, _ = open_page(server, path="/#download", allow_statuses=(404,))
    page.get_by_label("Order id").fill("00000000-0000-4000-8000-000000000000")
    message = page.locator("#download-message")
    expect(message).to_contain_text("No order with this id is visible")
    expect(message).to_have_attribute("role", "alert")
    page.get_by_label("Order id").fill(DEMO_ORDER_ID)
    expect(message).to_be_hidden()
    # The tabs are one labelled tablist; no other landmark carries the same name.
    labels = page.evaluate(
        """() => [...document.querySelectorAll('[aria-label], nav, [role=navigation]')]
              .map((node) => node.getAttribute('aria-label') || '')"""
    )
    assert labels.count("Sections") == 1, labels
    expect(page.get_by_role("tablist", name="Sections")).to_have_count(1)
    expect(page.get_by_role("navigation", name="Sections")).to_have_count(0)
