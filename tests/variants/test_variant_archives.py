"""Variant archives over real sockets: the service on uvicorn, the standalone sandbox, photos of
real sizes. Every entry of every preset decoded and held to its limits, the manifest's digests,
two downloads byte-identical, a resume broken inside a rendered entry, one fetch per image."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from app.imaging.render import SRGB_ICC
from app.main import create_app
from tests.conftest import SettingsFactory
from tests.integration.resume_support import broken_download
from tests.support import UvicornThread
from tests.variants.support import buy, enhanced, entries, photo, photo_order, unique_key

LIMITS = {"MLS": (2048, 4_000_000), "Web": (1600, 500_000)}


@pytest.fixture
def key() -> str:
    return unique_key("variants")


@pytest.fixture
def order(sandbox_url: str, key: str) -> dict[str, Any]:
    return photo_order(
        sandbox_url,
        key,
        [
            ("Kitchen.jpg", photo(3000, 2000, seed=1)),
            ("Living room.jpg", photo(1500, 2600, seed=2)),
            ("Garden.jpg", photo(900, 600, seed=3, noise=0.05)),
        ],
    )


@pytest.fixture
def service(make_settings: SettingsFactory) -> Iterator[UvicornThread]:
    with UvicornThread(create_app(make_settings())) as server:
        yield server


def archive_url(service: UvicornThread, order: dict[str, Any], query: str) -> str:
    return f"{service.url}/orders/{order['order_id']}/images?{query}"


def test_every_entry_of_every_preset_holds_its_limits_and_the_manifest_tells_the_truth(
    service: UvicornThread, order: dict[str, Any], key: str, sandbox_url: str, sandbox: Any
) -> None:
    sandbox.delete("/_sandbox/requests", headers={"x-api-key": key}).raise_for_status()
    url = archive_url(service, order, "variants=mls,web,print&preview=false&manifest=true")
    response = httpx.get(url, headers={"X-Autoenhance-Key": key}, timeout=180)
    assert response.status_code == 200, response.text
    files = entries(response.content)
    names = ["Kitchen.jpg", "Living room.jpg", "Garden.jpg"]
    assert list(files) == [
        f"{folder}/{name}" for name in names for folder in ("MLS", "Web", "Print")
    ] + ["manifest.json"]

    # One full-quality fetch per image serves its three variants.
    fetched = [e for e in sandbox.log(key) if e["path"].endswith("/enhanced")]
    assert sorted(e["path"] for e in fetched) == sorted(
        f"/v3/images/{image['image_id']}/enhanced" for image in order["images"]
    )

    for image in order["images"]:
        name = image["image_name"]
        original = enhanced(sandbox_url, key, image["image_id"])
        assert files[f"Print/{name}"] == original
        source = Image.open(io.BytesIO(original))
        for folder, (long_edge, max_bytes) in LIMITS.items():
            data = files[f"{folder}/{name}"]
            assert len(data) <= max_bytes, (folder, name, len(data))
            picture = Image.open(io.BytesIO(data))
            assert picture.format == "JPEG"
            assert picture.mode == "RGB"
            assert picture.info.get("icc_profile") == SRGB_ICC
            assert "exif" not in picture.info
            assert max(picture.size) == min(long_edge, max(source.size)), (folder, name)
            picture.load()

    manifest = json.loads(files["manifest.json"])
    assert manifest["order"]["id"] == order["order_id"]
    assert manifest["skipped"] == []
    listed = {item["path"]: item for item in manifest["files"]}
    assert list(listed) == list(files)[:-1]
    for path, item in listed.items():
        data = files[path]
        assert item["sha256"] == hashlib.sha256(data).hexdigest()
        assert item["bytes"] == len(data)
        assert (item["ImageWidth"], item["ImageHeight"]) == Image.open(io.BytesIO(data)).size
        assert item["variant"] == {"MLS": "mls", "Web": "web", "Print": "print"}[path.split("/")[0]]
        assert item["MediaCategory"] == "Photo"
        assert item["ShortDescription"] == path.split("/")[1].removesuffix(".jpg")
    assert [listed[f"MLS/{n}"]["Order"] for n in names] == [1, 2, 3]


def test_a_variant_archive_is_deterministic_and_resumes_inside_a_rendered_entry(
    make_settings: SettingsFactory, order: dict[str, Any], key: str
) -> None:
    headers = {"X-Autoenhance-Key": key}
    # No cached copy: every answer below is rendered again (a resume from the archive's
    # records re-renders the entry it breaks in and checks it against its size and CRC).
    settings = make_settings(archive_cache_max_bytes=0)
    with UvicornThread(create_app(settings)) as service:
        buy(service.url, order["order_id"], key)
        url = archive_url(service, order, "variants=mls,print&preview=false&naming=numbered")
        first = httpx.get(url, headers=headers, timeout=180)
        second = httpx.get(url, headers=headers, timeout=180)
        assert first.status_code == second.status_code == 200
        assert first.content == second.content
        assert first.headers["etag"] == second.headers["etag"]
        # Saved beside the plain archive of the same order, it does not take its name.
        assert "(mls, print).zip" in first.headers["content-disposition"]
        whole = first.content
        with zipfile.ZipFile(io.BytesIO(whole)) as zf:
            info = zf.getinfo("MLS/02 - Living room.jpg")
            offset = info.header_offset + 30 + len(info.filename.encode()) + info.file_size // 2

        part = broken_download(url, offset, headers=headers)
        rest = httpx.get(
            url,
            headers={**headers, "Range": f"bytes={offset}-", "If-Range": first.headers["etag"]},
            timeout=180,
        )
    assert rest.status_code == 206, rest.text
    assert rest.headers["content-range"] == f"bytes {offset}-{len(whole) - 1}/{len(whole)}"
    assert part + rest.content == whole
