"""setup_test_order.py end to end: the standalone sandbox, a running service, broken transfers."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import uuid
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from app.cli.main import main
from app.cli.usage import (
    EXIT_BAD_FILE,
    EXIT_NETWORK,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_USAGE,
)
from app.main import create_app
from testkit.processes import ROOT
from tests.conftest import SettingsFactory, create_order
from tests.support import UvicornThread

SAMPLES = ROOT / "sample_images"
PHOTOS = [str(SAMPLES / "house-front.jpg"), str(SAMPLES / "garden.jpg")]
ADMIN_TOKEN = "admin-token-0123456789"
FAST = ["--poll-interval", "0.1", "--timeout", "30", "--quiet"]


def direct_env(sandbox_url: str) -> dict[str, str]:
    return {"AUTOENHANCE_API_KEY": "cli-test-key", "AUTOENHANCE_API_BASE": sandbox_url}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the happy paths ------------------------------------------------------------------------


def test_help_documents_flags_and_exit_codes() -> None:
    result = subprocess.run(
        [sys.executable, "setup_test_order.py", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    for text in ("--wait", "--download", "--service-url", "AUTOENHANCE_API_KEY", "6  timed out"):
        assert text in result.stdout


def test_uploads_and_waits_against_the_standalone_sandbox(
    sandbox_url: str, sandbox: httpx.Client, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([*PHOTOS, "--name", "CLI order", "--wait", *FAST], env=direct_env(sandbox_url))
    assert code == EXIT_OK
    order_id = capsys.readouterr().out.strip().splitlines()[-1]
    order = httpx.get(
        f"{sandbox_url}/orders/{order_id}", headers={"x-api-key": "cli-test-key"}
    ).json()
    assert order["name"] == "CLI order"
    assert sorted(i["image_name"] for i in order["images"]) == ["garden.jpg", "house-front.jpg"]
    assert {i["status"] for i in order["images"]} == {"processed"}


def test_through_the_service_upload_wait_and_download(
    make_settings: SettingsFactory, sandbox: httpx.Client, tmp_path: Path
) -> None:
    out = tmp_path / "order.zip"
    with UvicornThread(create_app(make_settings(admin_token=ADMIN_TOKEN))) as server:
        code = main(
            [*PHOTOS, "--wait", "--download", str(out), "--service-url", server.url, *FAST],
            env={"ADMIN_TOKEN": ADMIN_TOKEN},
        )
    assert code == EXIT_OK
    archive = zipfile.ZipFile(out)
    assert archive.testzip() is None
    assert sorted(archive.namelist()) == ["garden.jpg", "house-front.jpg"]
    for info in archive.infolist():
        assert archive.read(info).startswith(b"\xff\xd8\xff")
    assert not out.with_name("order.zip.part").exists()


# --- resuming a broken download ----------------------------------------------------------------

FORWARDED = (
    "content-type",
    "content-length",
    "etag",
    "last-modified",
    "content-range",
    "content-location",
)


class CuttingProxy:
    """A real server in front of the service that breaks the first `cuts` downloads mid-body."""

    def __init__(self, target: str, *, cut_after: int, cuts: int) -> None:
        self.target = target
        self.cut_after = cut_after
        self.cuts = cuts
        self.requests: list[dict[str, str]] = []
        self.app = Starlette(routes=[Route("/{path:path}", self.handle)])

    async def handle(self, request: Request) -> Response:
        headers = {k: v for k, v in request.headers.items() if k in ("range", "if-range")}
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        async with httpx.AsyncClient(base_url=self.target, timeout=60) as client:
            upstream = await client.get(target, headers=headers)
        if request.url.path == "/health":  # the CLI's check that this is the service
            return Response(upstream.content, upstream.status_code, dict(upstream.headers))
        self.requests.append(
            {**request.headers, ":target": target, ":status": str(upstream.status_code)}
        )
        cut = self.cuts > 0
        self.cuts -= 1
        body = upstream.content

        async def chunks() -> AsyncIterator[bytes]:
            if not cut:
                yield body
                return
            yield body[: self.cut_after]
            raise ConnectionAbortedError("cut by the test proxy")

        kept = {k: v for k, v in upstream.headers.items() if k in FORWARDED}
        return StreamingResponse(chunks(), status_code=upstream.status_code, headers=kept)


@pytest.fixture
def order_id(sandbox: httpx.Client) -> str:
    return str(create_order(sandbox, images=4, image_bytes=60_000)["order_id"])


def reference(service: UvicornThread, order_id: str) -> bytes:
    response = httpx.get(f"{service.url}/orders/{order_id}/images", timeout=60)
    assert response.status_code == 200
    return response.content


def test_a_second_run_resumes_with_range_and_if_range(
    service: UvicornThread, order_id: str, tmp_path: Path
) -> None:
    clean = reference(service, order_id)  # fills the service's cache: the next answer has ETag
    proxy = CuttingProxy(service.url, cut_after=100_000, cuts=1)
    out = tmp_path / "resumed.zip"
    argv = ["--order-id", order_id, "--download", str(out), "--quiet"]
    with UvicornThread(proxy.app) as front:
        first = main([*argv, "--service-url", front.url, "--retries", "0"], env={})
        assert first == EXIT_NETWORK
        part = out.with_name("resumed.zip.part")
        assert part.stat().st_size == 100_000
        assert not out.exists()
        etag = json.loads(out.with_name("resumed.zip.part.json").read_text())["etag"]

        second = main([*argv, "--service-url", front.url], env={})
    assert second == EXIT_OK
    assert proxy.requests[1]["range"] == "bytes=100000-"
    assert proxy.requests[1]["if-range"] == etag
    assert sha256(out.read_bytes()) == sha256(clean)
    assert not part.exists()


def test_a_broken_first_streamed_download_resumes(
    service: UvicornThread, order_id: str, tmp_path: Path
) -> None:
    proxy = CuttingProxy(service.url, cut_after=50_000, cuts=1)
    out = tmp_path / "resumed-first.zip"
    with UvicornThread(proxy.app) as front:
        code = main(
            ["--order-id", order_id, "--download", str(out), "--service-url", front.url, "--quiet"],
            env={},
        )
    assert code == EXIT_OK
    assert "range" not in proxy.requests[0]
    assert proxy.requests[1]["range"] == "bytes=50000-"  # the streamed answer had an ETag
    assert proxy.requests[1]["if-range"].startswith('"')
    assert sha256(out.read_bytes()) == sha256(reference(service, order_id))
    assert zipfile.ZipFile(io.BytesIO(out.read_bytes())).testzip() is None


def test_a_resume_after_the_order_changed_starts_over_on_the_current_archive(
    service: UvicornThread, order_id: str, sandbox: httpx.Client, tmp_path: Path
) -> None:
    """The partial file continues only on the pinned URL of its own version: once the order
    changed, that URL answers 410 and the download starts over, never joining two versions."""
    proxy = CuttingProxy(service.url, cut_after=100_000, cuts=1)
    out = tmp_path / "changed.zip"
    argv = ["--order-id", order_id, "--download", str(out), "--quiet"]
    with UvicornThread(proxy.app) as front:
        assert main([*argv, "--service-url", front.url, "--retries", "0"], env={}) == EXIT_NETWORK
        meta = json.loads(out.with_name("changed.zip.part.json").read_text())
        assert "version=" in meta["location"]
        order = httpx.get(f"{service.url}/orders/{order_id}", timeout=30).json()
        first = order["images"][0]["image_id"]
        sandbox.post(f"/_sandbox/images/{first}/status", json={"status": "error"})
        assert main([*argv, "--service-url", front.url], env={}) == EXIT_OK
    assert proxy.requests[1][":target"] == meta["location"]
    assert proxy.requests[1][":status"] == "410"
    assert "range" not in proxy.requests[2]
    assert sha256(out.read_bytes()) == sha256(reference(service, order_id))
    assert len(zipfile.ZipFile(out).namelist()) == 4  # three images and the report


def test_a_stale_partial_file_is_replaced_not_appended_to(
    service: UvicornThread, order_id: str, tmp_path: Path
) -> None:
    clean = reference(service, order_id)
    out = tmp_path / "stale.zip"
    out.with_name("stale.zip.part").write_bytes(b"junk" * 1000)
    url = f"/orders/{order_id}/images"
    out.with_name("stale.zip.part.json").write_text(json.dumps({"url": url, "etag": '"old"'}))
    code = main(
        ["--order-id", order_id, "--download", str(out), "--service-url", service.url, "--quiet"],
        env={},
    )
    assert code == EXIT_OK
    assert sha256(out.read_bytes()) == sha256(clean)


def test_a_206_that_starts_at_another_byte_is_not_appended(tmp_path: Path) -> None:
    archive = bytes(range(256)) * 400
    asked: list[str | None] = []

    async def health(request: Request) -> Response:
        return Response('{"mode": "live"}', media_type="application/json")

    async def images(request: Request) -> Response:
        asked.append(request.headers.get("range"))
        if request.headers.get("range"):  # a lying service: the whole archive, as if resumed
            headers = {"content-range": f"bytes 0-{len(archive) - 1}/{len(archive)}"}
            headers["etag"] = '"v1"'
            return Response(archive, status_code=206, headers=headers)
        return Response(archive, headers={"etag": '"v1"'})

    app = Starlette(routes=[Route("/health", health), Route("/orders/{order_id}/images", images)])
    out = tmp_path / "lied.zip"
    out.with_name("lied.zip.part").write_bytes(archive[:1000])
    meta = {"url": "/orders/abc/images", "etag": '"v1"'}
    out.with_name("lied.zip.part.json").write_text(json.dumps(meta))
    with UvicornThread(app) as server:
        argv = ["--order-id", "abc", "--download", str(out), "--service-url", server.url]
        assert main([*argv, "--quiet"], env={}) == EXIT_OK
    assert asked == ["bytes=1000-", None]
    assert out.read_bytes() == archive


# --- every error exit code ------------------------------------------------------------------


def test_missing_key_is_a_usage_error(tmp_path: Path) -> None:
    assert main([*PHOTOS, "--quiet"], env={}) == EXIT_USAGE


def test_download_without_a_service_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exited:
        main([*PHOTOS, "--download", "x.zip"], env={"AUTOENHANCE_API_KEY": "k"})
    assert exited.value.code == EXIT_USAGE


def test_refused_key_through_the_service_is_a_usage_error(make_settings: SettingsFactory) -> None:
    with UvicornThread(create_app(make_settings(admin_token=ADMIN_TOKEN))) as server:
        code = main([*PHOTOS, "--service-url", server.url, "--quiet"], env={})
    assert code == EXIT_USAGE


@pytest.mark.parametrize("bad", ["missing.jpg", "notes.txt"])
def test_unreadable_or_unsupported_files(sandbox_url: str, tmp_path: Path, bad: str) -> None:
    (tmp_path / "notes.txt").write_text("not a photo, whatever the name")
    code = main([PHOTOS[0], str(tmp_path / bad), "--quiet"], env=direct_env(sandbox_url))
    assert code == EXIT_BAD_FILE


def test_unsupported_file_with_an_image_extension(sandbox_url: str, tmp_path: Path) -> None:
    fake = tmp_path / "house.jpg"
    fake.write_bytes(b"%PDF-1.7 a brochure")
    assert main([str(fake), "--quiet"], env=direct_env(sandbox_url)) == EXIT_BAD_FILE


def test_network_failures(refused_port: int) -> None:
    dead = f"http://127.0.0.1:{refused_port}"
    env = {"AUTOENHANCE_API_KEY": "k", "AUTOENHANCE_API_BASE": f"{dead}/v3"}
    assert main([PHOTOS[0], "--quiet"], env=env) == EXIT_NETWORK
    assert main([PHOTOS[0], "--service-url", dead, "--quiet"], env={}) == EXIT_NETWORK


def test_order_not_found(sandbox_url: str, service: UvicornThread, tmp_path: Path) -> None:
    unknown = str(uuid.uuid4())
    direct = main(["--order-id", unknown, "--wait", *FAST], env=direct_env(sandbox_url))
    assert direct == EXIT_NOT_FOUND
    argv = ["--order-id", unknown, "--download", str(tmp_path / "x.zip"), "--quiet"]
    assert main([*argv, "--service-url", service.url], env={}) == EXIT_NOT_FOUND


def test_waiting_times_out(sandbox_url: str, sandbox: httpx.Client) -> None:
    sandbox.post("/_sandbox/faults", json={"kind": "stuck"}).raise_for_status()
    argv = [PHOTOS[0], "--wait", "--timeout", "0.5", "--poll-interval", "0.1", "--quiet"]
    assert main(argv, env=direct_env(sandbox_url)) == EXIT_TIMEOUT


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
