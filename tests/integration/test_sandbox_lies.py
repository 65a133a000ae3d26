"""The service against the standalone sandbox scripted to lie: answers that are not the image,
names UTF-8 cannot encode, and the file name `curl -OJ` saves."""

from __future__ import annotations

import io
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.sandbox import DEMO_ORDER_ID
from tests.conftest import create_order
from tests.support import UvicornThread, require_tool

REPORT = "_download_report.txt"

LIES: dict[str, dict[str, Any]] = {
    **{f"{status}": {"kind": "wrong_status", "status": status} for status in (202, 204, 206)},
    **{f"{status}": {"kind": "wrong_status", "status": status} for status in (300, 304)},
    "HTML page": {"kind": "html_page"},
    "HTML page labelled image/jpeg": {"kind": "html_page", "content_type": "image/jpeg"},
}


def entries(response: httpx.Response) -> zipfile.ZipFile:
    assert response.status_code == 200, response.text
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.testzip() is None
    return archive


@pytest.mark.parametrize("lie", LIES.values(), ids=LIES.keys())
def test_a_lie_is_reported_never_archived_and_never_cached(
    service: UvicornThread, sandbox: httpx.Client, lie: dict[str, Any]
) -> None:
    order = create_order(sandbox, images=2, image_bytes=10_000)
    victim = order["images"][1]["image_id"]
    sandbox.post(
        "/_sandbox/faults", json={**lie, "scope": "enhanced", "image_ids": [victim]}
    ).raise_for_status()
    url = f"{service.url}/orders/{order['order_id']}/images"

    first = entries(httpx.get(url, timeout=60))
    assert first.namelist() == ["image-0001.jpg", REPORT]
    assert victim in first.read(REPORT).decode()

    sandbox.delete("/_sandbox/faults").raise_for_status()
    second = entries(httpx.get(url, timeout=60))
    assert second.namelist() == ["image-0001.jpg", "image-0002.jpg"]
    assert [i.file_size for i in second.infolist()] == [10_000, 10_000]


def test_names_utf8_cannot_encode_are_repaired(
    service: UvicornThread, sandbox: httpx.Client
) -> None:
    body = (
        b'{"images": 2, "image_bytes": 5000, "name": "Harbour \\udc80", '
        b'"names": ["front\\ud800", "back"], "statuses": {"1": "processing"}}'
    )
    created = sandbox.post(
        "/_sandbox/orders", content=body, headers={"Content-Type": "application/json"}
    )
    created.raise_for_status()
    order_id = created.json()["order_id"]

    summary = httpx.get(f"{service.url}/orders/{order_id}", timeout=30)
    assert summary.status_code == 200, summary.text
    assert summary.json()["name"] == "Harbour \ufffd"
    assert summary.json()["images"][0]["entry_name"] == "front\ufffd.jpg"

    response = httpx.get(f"{service.url}/orders/{order_id}/images", timeout=60)
    archive = entries(response)
    assert archive.namelist() == ["front\ufffd.jpg", REPORT]
    assert "Harbour \ufffd" in archive.read(REPORT).decode()
    assert response.headers["content-disposition"].endswith(
        "''Harbour%20%EF%BF%BD%20%28preview%29.zip"
    )


def test_curl_saves_the_demo_order_under_a_readable_ascii_name(
    service: UvicornThread, tmp_path: Path
) -> None:
    curl = require_tool("curl")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    subprocess.run(
        [curl, "-sSfOJ", f"{service.url}/orders/{DEMO_ORDER_ID}/images"],
        cwd=downloads,
        check=True,
        timeout=120,
    )
    saved = [path.name for path in downloads.iterdir()]
    assert saved == ["Demo order - 12 Harbour View (preview).zip"]
    with zipfile.ZipFile(downloads / saved[0]) as archive:
        assert archive.testzip() is None
