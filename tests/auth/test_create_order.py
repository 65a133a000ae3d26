"""POST /api/create-order and /api/create-sample-order end to end, with the sandbox on a socket."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from app.main import create_app
from app.sandbox import SandboxConfig, create_sandbox_app
from testkit.processes import ROOT
from tests.conftest import SettingsFactory
from tests.support import SandboxControl, UvicornThread

ADMIN = {"Authorization": "Bearer admin-token-0123456789"}
SAMPLES = ROOT / "sample_images"
JPEG = (SAMPLES / "garden.jpg").read_bytes()
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 2000


@pytest.fixture
def creator(make_settings: SettingsFactory) -> Iterator[UvicornThread]:
    settings = make_settings(
        admin_token="admin-token-0123456789", max_upload_files=3, max_upload_bytes=200_000
    )
    with UvicornThread(create_app(settings)) as server:
        yield server


def post_files(server: UvicornThread, files: list, **kwargs: Any) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/create-order", files=files, headers=ADMIN, timeout=60, **kwargs
    )


def upstream_calls(sandbox: SandboxControl) -> list[str]:
    return [f"{r['method']} {r['route']}" for r in sandbox.log()]


def orders_created() -> float:
    return REGISTRY.get_sample_value("orders_created_total") or 0.0


def test_creates_the_order_and_uploads_every_file(
    creator: UvicornThread, sandbox: SandboxControl, sandbox_url: str
) -> None:
    before = orders_created()
    response = post_files(
        creator,
        [("files", ("front.jpg", JPEG)), ("files", ("plan.png", PNG))],
        data={"name": "12 Harbour View"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "12 Harbour View"
    assert (body["uploaded"], body["failed"]) == (2, 0)
    assert [(i["file"], i["uploaded"], i["error"]) for i in body["images"]] == [
        ("front.jpg", True, None),
        ("plan.png", True, None),
    ]
    order = httpx.get(
        f"{sandbox_url}/orders/{body['order_id']}", headers={"x-api-key": sandbox.operator_key}
    ).json()
    assert sorted(i["image_id"] for i in order["images"]) == sorted(
        i["image_id"] for i in body["images"]
    )
    assert orders_created() == before + 1


def test_sample_order_uses_the_bundled_photos(creator: UvicornThread) -> None:
    response = httpx.post(f"{creator.url}/api/create-sample-order", headers=ADMIN, timeout=60)
    assert response.status_code == 201
    assert sorted(i["file"] for i in response.json()["images"]) == [
        "garden.jpg",
        "house-front.jpg",
        "living-room.jpg",
    ]


@pytest.mark.parametrize(
    ("files", "status", "code", "named"),
    [
        ([("files", (f"{i}.jpg", JPEG)) for i in range(4)], 413, "payload_too_large", None),
        ([("files", ("big.jpg", JPEG + b"\x00" * 200_000))], 413, "payload_too_large", "big.jpg"),
        ([("files", ("notes.jpg", b"%PDF-1.4 not a photo"))], 415, "not_an_image", "notes.jpg"),
        (
            [("files", ("ok.jpg", JPEG)), ("files", ("script.png", b"#!/bin/sh\nrm -rf /\n"))],
            415,
            "not_an_image",
            "script.png",
        ),
        ([("file", ("a.jpg", JPEG))], 400, "bad_upload", None),
    ],
    ids=["too-many", "too-big", "not-an-image", "one-bad-among-good", "wrong-field"],
)
def test_bad_input_is_refused_before_anything_is_created(
    creator: UvicornThread,
    sandbox: SandboxControl,
    files: list,
    status: int,
    code: str,
    named: str | None,
) -> None:
    response = post_files(creator, files)
    assert response.status_code == status
    body = response.json()
    assert body["error"] == code
    if named:
        assert named in body["detail"]
    assert upstream_calls(sandbox) == []  # nothing half-done upstream


def test_no_files_and_non_multipart_bodies(creator: UvicornThread, sandbox: SandboxControl) -> None:
    url = f"{creator.url}/api/create-order"
    empty = httpx.post(url, data={"name": "x"}, files={"other": ("", b"")}, headers=ADMIN)
    assert empty.status_code == 400
    as_json = httpx.post(url, json={"files": []}, headers=ADMIN)
    assert as_json.status_code == 415
    assert as_json.json()["error"] == "not_multipart"
    assert upstream_calls(sandbox) == []


def test_a_huge_streamed_upload_is_refused_and_the_server_keeps_serving(
    creator: UvicornThread, tmp_path: Path
) -> None:
    """50 MB against a 200 kB limit, sent in chunks: 413 naming the file, nothing spooled."""

    def body() -> Iterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="files"; filename="pano.jpg"\r\n\r\n'
        yield JPEG
        for _ in range(50):
            yield b"\x00" * 1_000_000
        yield b"\r\n--b--\r\n"

    response = httpx.post(
        f"{creator.url}/api/create-order",
        content=body(),
        headers={**ADMIN, "Content-Type": "multipart/form-data; boundary=b"},
        timeout=60,
    )
    assert response.status_code == 413
    assert "pano.jpg" in response.json()["detail"]
    spool = tmp_path / "data" / "spool"
    assert not spool.exists() or list(spool.iterdir()) == []
    assert httpx.get(f"{creator.url}/docs").status_code == 200


def test_an_upstream_failure_part_way_says_which_files_made_it(
    make_settings: SettingsFactory,
) -> None:
    """The emulator takes uploads up to 30 kB: the small file makes it, the big one does not."""
    sandbox_app = create_sandbox_app(SandboxConfig(max_upload_bytes=30_000, seed_demo=False))
    with UvicornThread(sandbox_app) as upstream:
        settings = make_settings(
            admin_token="admin-token-0123456789", autoenhance_api_base=f"{upstream.url}/v3"
        )
        with UvicornThread(create_app(settings)) as server:
            small = (SAMPLES / "living-room.jpg").read_bytes()[:20_000]
            partial = post_files(
                server, [("files", ("small.jpg", small)), ("files", ("big.jpg", JPEG))]
            )
            assert partial.status_code == 201
            images = {i["file"]: i for i in partial.json()["images"]}
            assert images["small.jpg"]["uploaded"] is True
            assert images["big.jpg"]["uploaded"] is False
            assert images["big.jpg"]["image_id"]
            assert "413" in images["big.jpg"]["error"]
            assert partial.json()["failed"] == 1

            nothing = post_files(server, [("files", ("big.jpg", JPEG))])
            assert nothing.status_code == 502
            detail = nothing.json()["detail"]
            assert nothing.json()["error"] == "upload_failed"
            assert detail["order_id"]
            assert detail["images"][0]["uploaded"] is False


def test_order_creation_is_rate_limited(make_settings: SettingsFactory) -> None:
    settings = make_settings(
        admin_token="admin-token-0123456789", rate_limit_create_orders="2/minute"
    )
    with UvicornThread(create_app(settings)) as server:
        url = f"{server.url}/api/create-sample-order"
        assert [httpx.post(url, headers=ADMIN).status_code for _ in range(2)] == [201, 201]
        third = httpx.post(url, headers=ADMIN)
        assert third.status_code == 429
        assert int(third.headers["retry-after"]) >= 1
        # A key does not lift the address's limit; another address has its own window
        # (uvicorn believes loopback's X-Forwarded-For).
        own_key = httpx.post(url, headers={"X-Autoenhance-Key": "someone-else"})
        assert own_key.status_code == 429
        other = httpx.post(
            url, headers={"X-Autoenhance-Key": "someone-else", "X-Forwarded-For": "192.0.2.7"}
        )
        assert other.status_code == 201
