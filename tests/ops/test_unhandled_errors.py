"""An unexpected exception is logged with the route it happened on, and answered the JSON 500."""

from __future__ import annotations

import logging
import time

import httpx
import pytest

from app.main import create_app
from tests.conftest import SettingsFactory
from tests.support import UvicornThread

ADMIN_TOKEN = "unhandled-errors-admin-token-0123"


def test_an_unhandled_error_is_logged_with_its_route(
    make_settings: SettingsFactory, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(admin_token=ADMIN_TOKEN)
    with (
        UvicornThread(create_app(settings)) as server,
        caplog.at_level(logging.ERROR, logger="app.errors"),
    ):
        answer = httpx.get(
            f"{server.url}/sentry-debug?token=query-secret",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        assert answer.status_code == 500
        assert answer.json()["error"] == "internal_error"
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not caplog.records:
            time.sleep(0.02)
    [record] = [r for r in caplog.records if r.name == "app.errors"]
    assert record.getMessage() == "unhandled error on GET /sentry-debug"
    assert "query-secret" not in caplog.text
