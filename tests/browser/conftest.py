"""Playwright driving Debian's Chromium against the service under a real uvicorn server.

Every page is checked on teardown: no console error, no uncaught exception and no
Content-Security-Policy violation (the service sets its strict policy on every response).
"""

from __future__ import annotations

import contextlib
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Locator,
    Page,
    Playwright,
    sync_playwright,
)

from app.main import create_app
from tests.conftest import SettingsFactory
from tests.support import UvicornThread, require_tool, settings_of

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Endpoints of the page's contract that other parts of the service provide.
# A stand-in for the browser's "Save as" dialog: collects what the page writes into the file.
FAKE_SAVE_PICKER = """
window.__saved = null;
window.showSaveFilePicker = async (options) => {
  window.__pickerOptions = options;
  const chunks = [];
  return {
    name: options.suggestedName,
    createWritable: async () => new WritableStream({
      write(chunk) { chunks.push(chunk.slice()); },
      close() {
        const size = chunks.reduce((sum, c) => sum + c.length, 0);
        const all = new Uint8Array(size);
        let offset = 0;
        for (const c of chunks) { all.set(c, offset); offset += c.length; }
        window.__saved = all;
      },
    }),
  };
};
"""
# A browser without the File System Access API (Firefox, Safari): downloads go to its manager.
NO_SAVE_PICKER = "delete window.showSaveFilePicker; window.showSaveFilePicker = undefined;"
CSP_LISTENER = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""


@dataclass
class Server:
    url: str


def live_overrides(make_settings: SettingsFactory) -> dict[str, Any]:
    """Overrides pointing the service at the standalone sandbox (live mode, fault knobs)."""
    settings = make_settings()
    return {
        "autoenhance_api_key": settings.autoenhance_api_key,
        "autoenhance_api_base": settings.autoenhance_api_base,
        "upstream_retry_max_wait": 0.2,
    }


def zip_entries(path: Path) -> list[str]:
    """The entry names of a downloaded archive, after checking every CRC."""
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        return archive.namelist()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = require_tool("chromium")
    with sync_playwright() as playwright:
        browser = _launch(playwright, executable)
        yield browser
        browser.close()


def _launch(playwright: Playwright, executable: str) -> Browser:
    return playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[StartService]:
    """Start the service (sandbox mode unless overridden)."""
    stack = contextlib.ExitStack()

    def start(**overrides: Any) -> Server:
        values: dict[str, Any] = {
            "autoenhance_api_key": None,
            "data_dir": tmp_path / "data",
            "sandbox_processing_delay": 0.5,
            **overrides,
        }
        app = create_app(settings_of(**values))
        server = stack.enter_context(UvicornThread(app))
        return Server(url=server.url)

    with stack:
        yield start


# Order lists show every order the key can see in the shared sandbox, ownerless ones included,
# and other tests leave ownerless orders whose images are undeliverable on purpose: a failed
# thumbnail is no problem of the page's (it shows the tile without a picture). A test that
# needs its own thumbnails checks that each one decoded (`naturalWidth`).
THUMBNAIL_URL = re.compile(r"/orders/[^/]+/images/[^/]+/thumbnail(\?|$)")


@dataclass
class PageProblems:
    """Console errors, page errors and CSP violations seen by one page."""

    errors: list[str] = field(default_factory=list)
    allowed_statuses: set[int] = field(default_factory=set)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        url = message.location.get("url", "")
        text = message.text
        if text.startswith("Failed to load resource"):
            if any(f"status of {status}" in text for status in self.allowed_statuses):
                return
            if THUMBNAIL_URL.search(url):
                return
        self.errors.append(f"console: {text} ({url})")


OpenPage = Callable[..., tuple[Page, PageProblems]]
StartService = Callable[..., Server]


@pytest.fixture
def open_page(browser: Browser) -> Iterator[OpenPage]:
    """Open a page on a server; on teardown fail on any console error or CSP violation."""
    opened: list[tuple[Page, PageProblems]] = []

    def open_(
        server: Server,
        *,
        width: int = 1280,
        height: int = 900,
        save_picker: str = NO_SAVE_PICKER,
        allow_statuses: tuple[int, ...] = (),
        path: str = "/",
    ) -> tuple[Page, PageProblems]:
        context = browser.new_context(viewport={"width": width, "height": height})
        context.add_init_script(CSP_LISTENER)
        context.add_init_script(save_picker)
        page = context.new_page()
        problems = PageProblems(allowed_statuses=set(allow_statuses))
        page.on("console", problems.on_console)
        page.on("pageerror", lambda error: problems.errors.append(f"page error: {error}"))
        page.set_default_timeout(15_000)
        page.goto(server.url + path)
        page.wait_for_selector("body[data-ready='true']", state="attached")
        opened.append((page, problems))
        return page, problems

    yield open_
    failures = []
    for page, problems in opened:
        violations = page.evaluate("window.__cspViolations")
        failures += problems.errors + [f"CSP violation: {v}" for v in violations]
        page.context.close()
    assert not failures, failures


def choose_quality(page: Page, choice: str, *, panel: str) -> None:
    """Pick "Full quality" or "Free preview" in the copy of the choice on `panel` (a
    selector); every copy follows it."""
    page.locator(panel).locator("fieldset.quality").get_by_label(choice).check()


def view_message(page: Page, host: str) -> Locator:
    """The message under an order's actions (what its last download did) in `host`."""
    return page.locator(f"{host} .download-place .message")
