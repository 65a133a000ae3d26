"""The link's token is the recipient's only credential: it never reaches a log line (at DEBUG,
every logger, fields included), a metric label, or the store in the clear."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import httpx
import pytest

from app.main import create_app
from tests.conftest import SettingsFactory
from tests.deliveries.conftest import Photographer
from tests.support import SandboxControl, UvicornThread


def test_the_token_is_in_no_log_line_no_metric_and_not_stored(
    make_settings: SettingsFactory,
    sandbox: SandboxControl,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    settings = make_settings(log_level="DEBUG", callback_allow_private=True)
    caplog.set_level(logging.DEBUG)
    with UvicornThread(create_app(settings)) as server:
        photographer = Photographer(
            url=server.url,
            backend="sqlite",
            key=f"photographer-{uuid.uuid4().hex[:12]}",
            settings=settings,
            sandbox=sandbox,
        )
        order = photographer.order(images=2)
        created = photographer.deliver(order["order_id"], pin="1357")
        link = created["url"]
        token = link.rsplit("/", 1)[1]
        image_id = order["images"][0]["image_id"]
        with httpx.Client(timeout=60) as recipient:
            recipient.get(link)
            recipient.get(link + "/details")
            recipient.post(link + "/pin", json={"pin": "0000"})
            recipient.post(link + "/pin", json={"pin": "1357"})
            recipient.get(link + "/details")
            recipient.get(f"{link}/images/{image_id}")
            recipient.get(link + "/archive")
            recipient.get(link + "/archive", headers={"Range": "bytes=10-"})
            recipient.get(link + "/archive?variant=nope")
            httpx.delete(
                f"{server.url}/deliveries/{created['delivery_id']}", headers=photographer.headers
            )
            assert recipient.get(link).status_code == 410
            assert recipient.get(link + "/archive").status_code == 410
        metrics = httpx.get(f"{server.url}/metrics").text

    # What the service logged: its server thread (the test's own HTTP client, in the main
    # thread, logs the URLs it was given at DEBUG).
    service_records = [r for r in caplog.records if r.threadName != "MainThread"]
    lines = [
        " ".join([record.getMessage(), str(record.__dict__), record.exc_text or ""])
        for record in service_records
    ]
    assert any("/d/{token}/archive" in line for line in lines)  # the route template is logged
    assert not [line for line in lines if token in line]
    assert 'route="/d/{token}/archive"' in metrics
    assert token not in metrics
    stored = b"".join(p.read_bytes() for p in settings.data_dir.glob("deliveries.sqlite3*"))
    assert created["delivery_id"].encode() in stored
    assert token.encode() not in stored
    assert photographer.key.encode() not in stored  # the photographer's key is sealed
