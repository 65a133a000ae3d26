"""The options around variants over real sockets: naming modes, refusals before any upstream
call, the operator's presets file (and that changing it renames the archive), an image that
cannot fit, jobs and deliveries with variants."""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from app.main import create_app
from tests.conftest import SettingsFactory, create_order
from tests.support import SandboxControl, UvicornThread
from tests.variants.support import entries, photo, photo_order, unique_key

NAMES = ["Kitchen.jpg", "../../etc/Living room.png", "kitchen.JPG", "", "CON.jpg"]


@pytest.fixture
def service(make_settings: SettingsFactory) -> Iterator[UvicornThread]:
    with UvicornThread(create_app(make_settings())) as server:
        yield server


def synthetic(sandbox: SandboxControl, key: str, **extra: Any) -> dict[str, Any]:
    return create_order(sandbox, images=5, image_bytes=5_000, names=NAMES, api_key=key, **extra)


def names_of(service: UvicornThread, order_id: str, key: str, query: str) -> list[str]:
    response = httpx.get(
        f"{service.url}/orders/{order_id}/images?{query}",
        headers={"X-Autoenhance-Key": key},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    with zipfile.ZipFile(io.BytesIO(response.content)) as zf:
        assert zf.testzip() is None
        return zf.namelist()


@pytest.mark.parametrize(
    ("naming", "expected"),
    [
        (
            "original",
            ["Kitchen.jpg", "Living room.jpg", "kitchen (1).jpg", "image-0004", "CON_.jpg"],
        ),
        (
            "numbered",
            [
                "01 - Kitchen.jpg",
                "02 - Living room.jpg",
                "03 - kitchen.jpg",
                "04.jpg",
                "05 - CON.jpg",
            ],
        ),
        ("address", [f"12-harbour-view-0{n}.jpg" for n in range(1, 6)]),
    ],
)
def test_the_three_naming_modes_in_every_folder(
    service: UvicornThread, sandbox: SandboxControl, naming: str, expected: list[str]
) -> None:
    key = unique_key("naming")
    order = synthetic(sandbox, key, name="12 Harbour View")
    got = names_of(
        service, order["order_id"], key, f"variants=mls,print&dev_mode=true&naming={naming}"
    )
    if naming == "original":
        # An image without a name is named by its id.
        expected[3] = f"{order['images'][3]['image_id']}.jpg"
    assert got == [f"{folder}/{name}" for name in expected for folder in ("MLS", "Print")]
    plain = names_of(service, order["order_id"], key, f"naming={naming}")
    assert plain == expected


@pytest.mark.parametrize(
    ("query", "code", "said"),
    [
        ("variants=mls,paragon&preview=false", "unknown_variant", "Unknown variant 'paragon'"),
        ("variants=mls", "variants_not_allowed", "preview=false (or dev_mode=true"),
        ("variants=mls&preview=false&format=png", "variants_not_allowed", "Variants are JPEG"),
        ("variants=mls&preview=false&max_width=800", "variants_not_allowed", "max_width"),
        ("variants=mls,web,print,mls2,x&preview=false", "invalid_variants", "At most 4"),
        ("variants=,&preview=false", "invalid_variants", "at least one"),
    ],
)
def test_variants_that_cannot_be_served_are_refused_before_any_upstream_call(
    service: UvicornThread, sandbox: SandboxControl, query: str, code: str, said: str
) -> None:
    key = unique_key("refused")
    order_id = "0b7e4d2a-1c3f-4e5d-8a9b-7c6d5e4f3a21"
    for method in ("GET", "HEAD"):
        response = httpx.request(
            method,
            f"{service.url}/orders/{order_id}/images?{query}",
            headers={"X-Autoenhance-Key": key},
        )
        assert response.status_code == 422
    response = httpx.get(
        f"{service.url}/orders/{order_id}/images?{query}", headers={"X-Autoenhance-Key": key}
    )
    body = response.json()
    assert body["error"] == code
    assert said in json.dumps(body["detail"])
    assert sandbox.log(key) == []


PRESETS = """
[presets.smartmls]
label = "SmartMLS"
box = [1024, 768]
fit = "pad"
max_bytes = 500000

[presets.paragon]
label = "Paragon"
box = [1280, 960]
max_bytes = 125000

[presets.tiny]
label = "Tiny"
long_edge = 3000
max_bytes = 10000
"""


def test_the_operators_presets_file_pads_caps_and_skips_and_names_the_archive(
    make_settings: SettingsFactory, sandbox_url: str, tmp_path: Path
) -> None:
    key = unique_key("presets")
    order = photo_order(sandbox_url, key, [("Pool.jpg", photo(2400, 1200, seed=4))])
    presets = tmp_path / "presets.toml"
    presets.write_text(PRESETS)
    query = "variants=smartmls,paragon,tiny&preview=false"
    url_path = f"/orders/{order['order_id']}/images?{query}"
    headers = {"X-Autoenhance-Key": key}
    with UvicornThread(create_app(make_settings(presets_file=presets))) as server:
        response = httpx.get(server.url + url_path, headers=headers, timeout=120)
    assert response.status_code == 200, response.text
    files = entries(response.content)
    assert list(files) == ["SmartMLS/Pool.jpg", "Paragon/Pool.jpg", "_download_report.txt"]
    padded = Image.open(io.BytesIO(files["SmartMLS/Pool.jpg"]))
    assert padded.size == (1024, 768)
    # 2:1 letterboxed into 4:3: white bands above and below the picture.
    assert padded.convert("RGB").getpixel((512, 5)) == (255, 255, 255)
    paragon = Image.open(io.BytesIO(files["Paragon/Pool.jpg"]))
    assert paragon.size == (1280, 640)
    assert len(files["Paragon/Pool.jpg"]) <= 125_000
    report = files["_download_report.txt"].decode()
    assert "2 of 3 files are in this archive." in report
    assert "Tiny: 2400x1200 px does not fit in 10,000 bytes even at JPEG quality 1" in report

    # The same order and query under another definition of a preset is another archive.
    presets.write_text(PRESETS.replace("max_bytes = 125000", "max_bytes = 120000"))
    with UvicornThread(create_app(make_settings(presets_file=presets))) as server:
        changed = httpx.head(server.url + url_path, headers=headers, timeout=60)
    assert changed.status_code == 200
    assert changed.headers["etag"] != response.headers["etag"]


def test_a_job_builds_the_same_variant_archive_as_the_stream(
    service: UvicornThread, sandbox: SandboxControl
) -> None:
    key = unique_key("jobs")
    order = synthetic(sandbox, key, name="12 Harbour View")
    headers = {"X-Autoenhance-Key": key}
    query = "variants=mls,print&dev_mode=true&naming=numbered&manifest=true"
    streamed = httpx.get(
        f"{service.url}/orders/{order['order_id']}/images?{query}", headers=headers, timeout=60
    )
    created = httpx.post(
        f"{service.url}/orders/{order['order_id']}/jobs?{query}", headers=headers, timeout=60
    )
    assert created.status_code == 202, created.text
    status_url = created.json()["status_url"]
    deadline = time.monotonic() + 60
    while (state := httpx.get(status_url, headers=headers).json()["state"]) != "complete":
        assert state in ("queued", "running", "waiting"), state
        assert time.monotonic() < deadline
        time.sleep(0.05)
    progress = httpx.get(status_url, headers=headers).json()["progress"]
    # Counted in files: every image once per variant.
    assert (progress["images_done"], progress["images_total"]) == (10, 10)
    built = httpx.get(created.json()["download_url"], headers=headers, timeout=60)
    assert built.status_code == 200
    assert built.content == streamed.content
    assert "MLS/01 - Kitchen.jpg" in entries(built.content)


@pytest.mark.parametrize(
    ("variants", "asked"),
    [("mls,web", "max_width=2048"), ("web", "max_width=1600"), ("mls,print", None)],
)
def test_the_upstream_is_asked_for_no_more_pixels_than_the_widest_variant_needs(
    service: UvicornThread, sandbox: SandboxControl, variants: str, asked: str | None
) -> None:
    key = unique_key("pixels")
    order = synthetic(sandbox, key)
    sandbox.delete("/_sandbox/requests", headers={"x-api-key": key}).raise_for_status()
    names_of(service, order["order_id"], key, f"variants={variants}&dev_mode=true")
    queries = [e["query"] for e in sandbox.log(key) if e["path"].endswith("/enhanced")]
    assert len(queries) == len(order["images"])  # one fetch per image, whatever the variants
    for query in queries:
        # Full quality even in dev mode (which spends no credit): variants need the pixels.
        assert "preview=false" in query.split("&")
        if asked is None:
            assert "max_width" not in query
        else:
            assert asked in query.split("&")
