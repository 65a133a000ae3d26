"""The batch endpoint end to end: a real uvicorn server, the standalone sandbox over a socket."""

from __future__ import annotations

import hashlib
import io
import time
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.main import create_app
from tests.conftest import SettingsFactory, create_order
from tests.support import SandboxControl, UvicornThread

OPERATOR_KEY = "operator-test-key"


def direct_image(sandbox_url: str, image_id: str, **params: str) -> bytes:
    response = httpx.get(
        f"{sandbox_url}/images/{image_id}/enhanced",
        params={"preview": "true", "format": "jpeg", **params},
        headers={"x-api-key": OPERATOR_KEY},
        follow_redirects=True,
        timeout=30,
    )
    response.raise_for_status()
    return response.content


def read_zip(data: bytes) -> zipfile.ZipFile:
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.testzip() is None
    return archive


@pytest.fixture
def nocache(make_settings: SettingsFactory) -> Iterator[UvicornThread]:
    with UvicornThread(create_app(make_settings(archive_cache_max_bytes=0))) as server:
        yield server


def test_archive_holds_every_image_in_order_byte_for_byte(
    service: UvicornThread, sandbox: SandboxControl, sandbox_url: str
) -> None:
    order = create_order(
        sandbox,
        images=5,
        image_bytes=30_000,
        names=[
            "front.jpg",
            "../../etc/passwd.jpg",
            "Küche.png",
            "front.jpg",
            "",
        ],
    )
    response = httpx.get(f"{service.url}/orders/{order['order_id']}/images", timeout=60)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["x-total-images"] == "5"
    assert response.headers["x-accel-buffering"] == "no"
    assert "content-encoding" not in response.headers or (
        response.headers["content-encoding"] == "identity"
    )
    archive = read_zip(response.content)
    names = [info.filename for info in archive.infolist()]
    ids = [image["image_id"] for image in order["images"]]
    assert names == ["front.jpg", "passwd.jpg", "Küche.jpg", "front (1).jpg", f"{ids[4]}.jpg"]
    for info, image_id in zip(archive.infolist(), ids, strict=True):
        expected = direct_image(sandbox_url, image_id)
        assert archive.read(info) == expected
        assert info.CRC == zlib.crc32(expected)
        assert info.compress_type == zipfile.ZIP_STORED
        assert not info.flag_bits & 0x08, "no data descriptors"
    assert archive.getinfo("Küche.jpg").flag_bits & 0x800
    assert not archive.getinfo("front.jpg").flag_bits & 0x800


def test_same_order_gives_byte_identical_archives(
    nocache: UvicornThread, sandbox: SandboxControl
) -> None:
    order = create_order(sandbox, images=6, image_bytes=10_000)
    url = f"{nocache.url}/orders/{order['order_id']}/images"
    digests = {hashlib.sha256(httpx.get(url, timeout=60).content).hexdigest() for _ in range(2)}
    assert len(digests) == 1


def test_options_are_forwarded_upstream(service: UvicornThread, sandbox: SandboxControl) -> None:
    order = create_order(sandbox, images=1, image_bytes=5_000)
    response = httpx.get(
        f"{service.url}/orders/{order['order_id']}/images",
        params={
            "format": "png",
            "quality": 50,
            "preview": "false",
            "max_width": 640,
            "scale": 0.5,
            "watermark": "true",
            "dev_mode": "true",
        },
        timeout=60,
    )
    assert response.status_code == 200
    assert read_zip(response.content).namelist()[0].endswith(".png")
    log = sandbox.log()
    enhanced = [r for r in log if r["route"] == "enhanced"]
    assert enhanced, log
    query = enhanced[0]["query"]
    for part in (
        "format=png",
        "quality=50",
        "preview=false",
        "max_width=640",
        "scale=0.5",
        "watermark=true",
    ):
        assert part in query
    assert enhanced[0]["dev_mode"] is True
    assert enhanced[0]["api_key"] is True


def test_unprocessed_images_are_reported_not_hidden(
    service: UvicornThread, sandbox: SandboxControl
) -> None:
    order = create_order(
        sandbox, images=4, image_bytes=5_000, statuses={"1": "processing", "3": "error"}
    )
    response = httpx.get(f"{service.url}/orders/{order['order_id']}/images", timeout=60)
    assert response.status_code == 200
    archive = read_zip(response.content)
    assert len(archive.namelist()) == 3
    assert archive.namelist()[-1] == "_download_report.txt"
    report = archive.read("_download_report.txt").decode()
    assert order["images"][1]["image_id"] in report
    assert order["images"][3]["image_id"] in report
    assert "not processed yet" in report
    assert "failed" in report
    assert "2 of 4 images are in this archive" in report


def test_image_failing_after_retries_is_skipped(
    service: UvicornThread, sandbox: SandboxControl
) -> None:
    order = create_order(sandbox, images=3, image_bytes=5_000)
    bad = order["images"][1]["image_id"]
    sandbox.post(
        "/_sandbox/faults",
        json={"kind": "status", "status": 500, "scope": "enhanced", "image_ids": [bad]},
    ).raise_for_status()
    response = httpx.get(f"{service.url}/orders/{order['order_id']}/images", timeout=60)
    assert response.status_code == 200
    archive = read_zip(response.content)
    assert len(archive.namelist()) == 3  # two images and the report
    assert bad in archive.read("_download_report.txt").decode()
    attempts = [r for r in sandbox.log() if r["image_id"] == bad and r["route"] == "enhanced"]
    assert len(attempts) == 4  # first try + UPSTREAM_RETRIES


def test_transient_errors_are_retried_into_a_complete_archive(
    service: UvicornThread, sandbox: SandboxControl
) -> None:
    order = create_order(sandbox, images=4, image_bytes=5_000)
    sandbox.post(
        "/_sandbox/faults",
        json={"kind": "status", "status": 429, "retry_after": 0, "scope": "enhanced", "count": 3},
    ).raise_for_status()
    response = httpx.get(f"{service.url}/orders/{order['order_id']}/images", timeout=60)
    archive = read_zip(response.content)
    assert len(archive.namelist()) == 4
    assert "_download_report.txt" not in archive.namelist()


def test_nothing_deliverable_is_a_422_listing_why(
    service: UvicornThread, sandbox: SandboxControl
) -> None:
    order = create_order(
        sandbox, images=2, image_bytes=5_000, statuses={"0": "processing", "1": "processing"}
    )
    response = httpx.get(f"{service.url}/orders/{order['order_id']}/images", timeout=60)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "nothing_to_deliver"
    assert {f["image_id"] for f in body["detail"]["failures"]} == {
        i["image_id"] for i in order["images"]
    }


def test_every_fetch_failing_is_a_422(service: UvicornThread, sandbox: SandboxControl) -> None:
    order = create_order(sandbox, images=2, image_bytes=5_000)
    sandbox.post(
        "/_sandbox/faults", json={"kind": "status", "status": 502, "scope": "enhanced"}
    ).raise_for_status()
    response = httpx.get(f"{service.url}/orders/{order['order_id']}/images", timeout=60)
    assert response.status_code == 422
    assert len(response.json()["detail"]["failures"]) == 2


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/orders/not-a-uuid/images", 400, "invalid_order_id"),
        ("/orders/00000000-0000-4000-8000-000000000000/images", 404, "not_found"),
        ("/orders/00000000-0000-4000-8000-000000000000/images?format=gif", 422, "validation_error"),
        ("/orders/00000000-0000-4000-8000-000000000000/images?quality=0", 422, "validation_error"),
        ("/orders/00000000-0000-4000-8000-000000000000/images?scale=2", 422, "validation_error"),
        (
            "/orders/00000000-0000-4000-8000-000000000000/images?preview=maybe",
            422,
            "validation_error",
        ),
    ],
)
def test_bad_requests_get_one_json_error_shape(
    service: UvicornThread, sandbox: SandboxControl, path: str, status: int, code: str
) -> None:
    response = httpx.get(service.url + path, timeout=30)
    assert response.status_code == status
    assert response.json()["error"] == code
    if status in (400, 422) and code != "not_found":
        order_routes = [r for r in sandbox.log() if r["route"] == "order"]
        assert order_routes == [], "validation must happen before any upstream call"


def test_empty_order_is_404(service: UvicornThread, sandbox: SandboxControl) -> None:
    order = create_order(sandbox, images=0)
    response = httpx.get(f"{service.url}/orders/{order['order_id']}/images", timeout=30)
    assert response.status_code == 404
    assert response.json()["error"] == "empty_order"


def test_upstream_failures_on_the_order_map_to_502_and_503(
    service: UvicornThread, sandbox: SandboxControl
) -> None:
    order = create_order(sandbox, images=1)
    url = f"{service.url}/orders/{order['order_id']}/images"
    sandbox.post("/_sandbox/faults", json={"kind": "status", "status": 500, "scope": "order"})
    response = httpx.get(url, timeout=30)
    assert response.status_code == 502
    assert response.json()["error"] == "upstream_error"
    sandbox.delete("/_sandbox/faults")
    sandbox.post(
        "/_sandbox/faults",
        json={"kind": "status", "status": 429, "retry_after": 0, "scope": "order"},
    )
    response = httpx.get(url, timeout=30)
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1


def test_head_answers_headers_without_fetching_images(
    service: UvicornThread, sandbox: SandboxControl
) -> None:
    order = create_order(sandbox, images=3)
    response = httpx.head(f"{service.url}/orders/{order['order_id']}/images", timeout=30)
    assert response.status_code == 200
    assert response.headers["x-total-images"] == "3"
    assert response.content == b""
    ids = {image["image_id"] for image in order["images"]}
    log = sandbox.log()
    assert [r for r in log if r["image_id"] in ids] == [], "HEAD must not fetch images"
    assert any(r["path"] == f"/v3/orders/{order['order_id']}" for r in log)


def test_summary_names_every_entry(service: UvicornThread, sandbox: SandboxControl) -> None:
    order = create_order(
        sandbox, images=2, names=["a/b.jpg", "a/b.jpg"], statuses={"1": "processing"}
    )
    response = httpx.get(f"{service.url}/orders/{order['order_id']}", timeout=30)
    assert response.status_code == 200
    body = response.json()
    assert [i["entry_name"] for i in body["images"]] == ["b.jpg", "b (1).jpg"]
    assert (body["image_count"], body["ready_count"]) == (2, 1)
    assert body["report_entry"] == "_download_report.txt"


def test_first_bytes_arrive_before_the_last_image_is_fetched(
    service: UvicornThread, sandbox: SandboxControl
) -> None:
    order = create_order(sandbox, images=6, image_bytes=50_000)
    last = order["images"][-1]["image_id"]
    sandbox.post(
        "/_sandbox/faults",
        json={
            "kind": "stall",
            "phase": "before",
            "seconds": 3,
            "scope": "enhanced",
            "image_ids": [last],
        },
    )
    with httpx.stream(
        "GET", f"{service.url}/orders/{order['order_id']}/images", timeout=60
    ) as response:
        chunks = response.iter_raw()
        first = next(chunks)
        assert first.startswith(b"PK\x03\x04")
        finished = {r["image_id"] for r in sandbox.log()}
        assert last not in finished, "the archive started only after the last image arrived"
        rest = b"".join(chunks)
    assert len(read_zip(first + rest).namelist()) == 6


def test_client_disconnect_cancels_downloads_and_removes_spools(
    make_settings: SettingsFactory, sandbox: SandboxControl, tmp_path: Path
) -> None:
    settings = make_settings(spool_memory_bytes=0, archive_cache_max_bytes=0, image_pool_bytes=0)
    order = create_order(sandbox, images=8, image_bytes=100_000)
    slow = [i["image_id"] for i in order["images"][2:]]
    sandbox.post(
        "/_sandbox/faults",
        json={
            "kind": "stall",
            "phase": "before",
            "seconds": 60,
            "scope": "enhanced",
            "image_ids": slow,
        },
    )
    with UvicornThread(create_app(settings)) as server:
        with httpx.stream(
            "GET", f"{server.url}/orders/{order['order_id']}/images", timeout=60
        ) as response:
            chunks = response.iter_raw()  # keep it: dropping it would close the response
            next(chunks)
            names = server.task_names()
            assert any(n.startswith("batch-fetch") for n in names), names
        # Leaving the block closed the connection mid-archive.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            alive = [n for n in server.task_names() if n.startswith("batch-")]
            spooled = list((settings.data_dir / "spool").iterdir())
            if not alive and not spooled:
                break
            time.sleep(0.05)
        assert alive == [], alive
        assert spooled == [], spooled


def test_buffered_mode_reports_final_counts(
    service: UvicornThread, sandbox: SandboxControl
) -> None:
    order = create_order(sandbox, images=3, image_bytes=5_000, statuses={"2": "processing"})
    response = httpx.get(
        f"{service.url}/orders/{order['order_id']}/images", params={"stream": "false"}, timeout=60
    )
    assert response.status_code == 200
    assert response.headers["x-downloaded"] == "2"
    assert response.headers["x-failed"] == "1"
    assert int(response.headers["content-length"]) == len(response.content)
    assert len(read_zip(response.content).namelist()) == 3


def test_cache_serves_ranges_for_resume(service: UvicornThread, sandbox: SandboxControl) -> None:
    order = create_order(sandbox, images=3, image_bytes=40_000)
    url = f"{service.url}/orders/{order['order_id']}/images"
    full = httpx.get(url, timeout=60)
    assert "content-length" not in full.headers  # the first answer streams
    again = httpx.get(url, timeout=60)
    assert again.content == full.content
    assert again.headers["content-length"] == str(len(full.content))
    etag = again.headers["etag"]
    part = httpx.get(url, headers={"Range": "bytes=1000-", "If-Range": etag}, timeout=60)
    assert part.status_code == 206
    assert part.content == full.content[1000:]
    stale = httpx.get(url, headers={"Range": "bytes=1000-", "If-Range": '"other"'}, timeout=60)
    assert stale.status_code == 200
    assert stale.content == full.content
    past = httpx.get(url, headers={"Range": f"bytes={len(full.content) + 10}-"}, timeout=60)
    assert past.status_code == 416
    assert past.json()["error"] == "range_not_satisfiable"


def test_changed_order_is_never_served_stale(
    service: UvicornThread, sandbox: SandboxControl
) -> None:
    order = create_order(sandbox, images=2, image_bytes=5_000, statuses={"1": "processing"})
    url = f"{service.url}/orders/{order['order_id']}/images"
    first = read_zip(httpx.get(url, timeout=60).content)
    assert "_download_report.txt" in first.namelist()
    image_id = order["images"][1]["image_id"]
    sandbox.post(f"/_sandbox/images/{image_id}/status", json={"status": "processed"})
    second = read_zip(httpx.get(url, timeout=60).content)
    assert len(second.namelist()) == 2
    assert "_download_report.txt" not in second.namelist()
