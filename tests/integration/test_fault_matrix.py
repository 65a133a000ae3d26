"""The fault matrix: what the upstream, the network or the caller does, and what the service
answers. Every case checks the outcome (status, report, archive validity) and that nothing
leaks: no download task left running, no spooled file left behind."""

from __future__ import annotations

import io
import logging
import time
import zipfile
from collections.abc import Iterator
from typing import Any

import httpx
import psutil
import pytest

from app.core.config import Settings
from app.main import create_app
from app.storage import _local as local_store
from testkit.processes import wait_for
from tests.conftest import SettingsFactory, create_order
from tests.support import SandboxControl, UvicornThread

MB = 1024 * 1024


@pytest.fixture(params=["aiohttp", "httpx", "pooled"])
def settings(make_settings: SettingsFactory, request: pytest.FixtureRequest) -> Settings:
    # Every image spools to disk, so a leaked spool shows up as a file in assert_no_leaks.
    # Each fault is met by every HTTP implementation under the image downloads; "pooled"
    # receives bodies into pooled buffers (app.upstream.bodyreader) instead of spools.
    if request.param == "pooled":
        return make_settings(
            upstream_retries=2,
            upstream_read_timeout=1.0,
            spool_memory_bytes=0,
            image_pool_bytes=64 * MB,
        )
    return make_settings(
        upstream_retries=2,
        upstream_read_timeout=1.0,
        spool_memory_bytes=0,
        image_pool_bytes=0,
        upstream_download_client=request.param,
    )


@pytest.fixture
def server(settings: Settings) -> Iterator[UvicornThread]:
    with UvicornThread(create_app(settings)) as running:
        yield running


def fault(sandbox: SandboxControl, **spec: Any) -> None:
    sandbox.post("/_sandbox/faults", json=spec).raise_for_status()


def assert_no_leaks(server: UvicornThread, settings: Settings, timeout: float = 5.0) -> None:
    """Every batch task has ended and every spooled image is gone (polled, bounded)."""
    spool = settings.data_dir / "spool"
    deadline = time.monotonic() + timeout
    while True:
        tasks = [n for n in server.task_names() if n.startswith("batch-")]
        files = list(spool.iterdir()) if spool.exists() else []
        if (not tasks and not files) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert tasks == [], f"tasks still running: {tasks}"
    assert files == [], f"spooled files left: {files}"


def download(server: UvicornThread, order_id: str) -> httpx.Response:
    return httpx.get(f"{server.url}/orders/{order_id}/images", timeout=60)


def entries(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.testzip() is None
    return archive.namelist()


def report(response: httpx.Response) -> str:
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    return archive.read("_download_report.txt").decode()


def image_ids(order: dict[str, Any]) -> list[str]:
    return [image["image_id"] for image in order["images"]]


def test_429_storm_with_retry_after_is_ridden_out(
    server: UvicornThread, settings: Settings, sandbox: SandboxControl
) -> None:
    order = create_order(sandbox, images=5, image_bytes=10_000)
    fault(sandbox, kind="status", status=429, retry_after=0, scope="enhanced", count=8)
    assert len(entries(download(server, order["order_id"]))) == 5
    assert_no_leaks(server, settings)


def test_429_that_never_ends_skips_the_image_and_says_so(
    server: UvicornThread, settings: Settings, sandbox: SandboxControl
) -> None:
    order = create_order(sandbox, images=3, image_bytes=10_000)
    victim = image_ids(order)[0]
    fault(sandbox, kind="status", status=429, retry_after=0, scope="enhanced", image_ids=[victim])
    response = download(server, order["order_id"])
    assert len(entries(response)) == 3  # two images and the report
    assert victim in report(response)
    assert "429" in report(response)
    assert_no_leaks(server, settings)


def test_5xx_burst_is_retried(
    server: UvicornThread, settings: Settings, sandbox: SandboxControl
) -> None:
    order = create_order(sandbox, images=6, image_bytes=10_000)
    fault(sandbox, kind="status", status=503, retry_after=0, scope="enhanced", count=5)
    fault(sandbox, kind="status", status=500, scope="asset", count=3)
    assert len(entries(download(server, order["order_id"]))) == 6
    assert_no_leaks(server, settings)


def test_image_stalling_past_the_read_timeout_is_skipped(
    server: UvicornThread, settings: Settings, sandbox: SandboxControl
) -> None:
    order = create_order(sandbox, images=3, image_bytes=200_000)
    victim = image_ids(order)[1]
    fault(sandbox, kind="stall", seconds=30, phase="mid_body", scope="enhanced", image_ids=[victim])
    response = download(server, order["order_id"])
    assert len(entries(response)) == 3
    assert victim in report(response)
    assert "timed out" in report(response)
    assert_no_leaks(server, settings)


def test_an_image_trickling_past_its_deadline_is_skipped_not_waited_for(
    settings: Settings, sandbox: SandboxControl
) -> None:
    """Every slice arrives well inside the read timeout, so only the whole-image deadline can
    stop it: at this rate the image alone would take 20 s."""
    deadline = settings.model_copy(update={"upstream_image_deadline": 1.5})
    order = create_order(sandbox, images=3, image_bytes=200_000)
    victim = image_ids(order)[1]
    fault(sandbox, kind="bandwidth", bytes_per_s=10_000, scope="enhanced", image_ids=[victim])
    with UvicornThread(create_app(deadline)) as server:
        response = download(server, order["order_id"])
        assert len(entries(response)) == 3
        assert victim in report(response)
        assert "took longer than 1.5 s" in report(response)
        assert_no_leaks(server, deadline)


def test_an_image_announced_larger_than_the_bound_is_skipped_before_a_byte_is_spooled(
    settings: Settings, sandbox: SandboxControl
) -> None:
    bounded = settings.model_copy(update={"upstream_image_max_bytes": 150_000})
    order = create_order(sandbox, images=2, image_bytes=250_000)
    with UvicornThread(create_app(bounded)) as server:
        response = download(server, order["order_id"])
        # Every image is too large: nothing to deliver, each named with the reason.
        assert response.status_code == 422, response.text
        failures = response.json()["detail"]["failures"]
        assert sorted(f["image_id"] for f in failures) == sorted(image_ids(order))
        assert all("larger than 150000 bytes" in f["reason"] for f in failures)
        assert_no_leaks(server, bounded)


def test_reset_mid_body_is_retried_from_a_clean_spool(
    server: UvicornThread, settings: Settings, sandbox: SandboxControl, sandbox_url: str
) -> None:
    order = create_order(sandbox, images=3, image_bytes=300_000)
    fault(sandbox, kind="reset", fraction=0.5, scope="enhanced", count=2)
    response = download(server, order["order_id"])
    assert len(entries(response)) == 3
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert all(info.file_size == 300_000 for info in archive.infolist())
    assert_no_leaks(server, settings)


def test_reset_every_time_skips_the_image(
    server: UvicornThread, settings: Settings, sandbox: SandboxControl
) -> None:
    order = create_order(sandbox, images=2, image_bytes=300_000)
    victim = image_ids(order)[0]
    fault(sandbox, kind="reset", scope="enhanced", image_ids=[victim])
    response = download(server, order["order_id"])
    assert entries(response)[-1] == "_download_report.txt"
    assert victim in report(response)
    assert_no_leaks(server, settings)


def test_short_body_is_never_delivered_as_an_image(
    server: UvicornThread, settings: Settings, sandbox: SandboxControl
) -> None:
    order = create_order(sandbox, images=2, image_bytes=100_000)
    victim = image_ids(order)[1]
    fault(sandbox, kind="short_body", missing_bytes=1000, scope="enhanced", image_ids=[victim])
    response = download(server, order["order_id"])
    names = entries(response)
    assert len(names) == 2
    assert names[-1] == "_download_report.txt"
    assert victim in report(response)
    assert_no_leaks(server, settings)


def test_long_body_yields_exactly_the_declared_bytes(
    server: UvicornThread, settings: Settings, sandbox: SandboxControl
) -> None:
    order = create_order(sandbox, images=2, image_bytes=100_000)
    fault(sandbox, kind="long_body", extra_bytes=5000, scope="enhanced")
    response = download(server, order["order_id"])
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.testzip() is None
    assert [info.file_size for info in archive.infolist()] == [100_000, 100_000]
    assert_no_leaks(server, settings)


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({"kind": "redirect_loop"}, "too many times"),
        ({"kind": "bad_redirect", "location": "file:///etc/passwd"}, "non-http"),
        ({"kind": "bad_redirect", "location": "ftp://example.invalid/x.jpg"}, "non-http"),
    ],
)
def test_hostile_redirects_are_refused_without_retrying(
    server: UvicornThread,
    settings: Settings,
    sandbox: SandboxControl,
    spec: dict[str, Any],
    reason: str,
) -> None:
    order = create_order(sandbox, images=2, image_bytes=10_000)
    victim = image_ids(order)[0]
    fault(sandbox, scope="enhanced", image_ids=[victim], **spec)
    response = download(server, order["order_id"])
    assert victim in report(response)
    assert reason in report(response)
    tries = [r for r in sandbox.log() if r["image_id"] == victim and r["route"] == "enhanced"]
    assert 1 <= len(tries) <= settings.upstream_max_redirects + 1
    assert_no_leaks(server, settings)


def test_upstream_down_at_the_start_then_recovering(
    server: UvicornThread, settings: Settings, sandbox: SandboxControl
) -> None:
    order = create_order(sandbox, images=4, image_bytes=10_000)
    fault(sandbox, kind="down", retry_after=0, count=2)
    assert len(entries(download(server, order["order_id"]))) == 4
    assert_no_leaks(server, settings)


def test_upstream_down_for_good_is_a_clear_error(
    server: UvicornThread, settings: Settings, sandbox: SandboxControl
) -> None:
    order = create_order(sandbox, images=2, image_bytes=10_000)
    fault(sandbox, kind="down", retry_after=0)
    response = download(server, order["order_id"])
    assert response.status_code == 502
    assert response.json()["error"] == "upstream_error"
    assert_no_leaks(server, settings)


def test_upstream_failing_mid_way_keeps_the_archive_valid(
    server: UvicornThread, settings: Settings, sandbox: SandboxControl
) -> None:
    order = create_order(sandbox, images=6, image_bytes=10_000)
    fault(sandbox, kind="down", retry_after=0, scope="enhanced", image_ids=image_ids(order)[3:])
    response = download(server, order["order_id"])
    names = entries(response)
    assert len(names) == 4
    assert names[-1] == "_download_report.txt"
    assert_no_leaks(server, settings)


def test_slow_reader_gets_back_pressure_not_buffering(
    server: UvicornThread, settings: Settings, sandbox: SandboxControl
) -> None:
    order = create_order(sandbox, images=60, image_bytes=MB)
    me = psutil.Process()
    with httpx.stream(
        "GET", f"{server.url}/orders/{order['order_id']}/images", timeout=60
    ) as response:
        chunks = response.iter_raw(64 * 1024)
        received = len(next(chunks))
        before = me.memory_info().rss
        time.sleep(2)  # the reader stalls while the service could run ahead
        grown = (me.memory_info().rss - before) / MB
        received += sum(len(chunk) for chunk in chunks)
    assert received > 60 * MB
    # Prefetching is bounded (twice DOWNLOAD_CONCURRENCY images); buffering the whole
    # 60 MB order while the reader stalls would show up here.
    assert grown < 40, f"memory grew {grown:.0f} MB while the client was not reading"
    assert_no_leaks(server, settings)


@pytest.mark.parametrize("stage", ["before_headers", "first_chunk", "mid_way", "near_end"])
def test_client_disconnect_at_every_stage_leaks_nothing(
    server: UvicornThread, settings: Settings, sandbox: SandboxControl, stage: str
) -> None:
    order = create_order(sandbox, images=12, image_bytes=200_000)
    ids = image_ids(order)
    if stage == "before_headers":
        fault(sandbox, kind="latency", ms=3000, scope="enhanced", image_ids=ids[:1])
    url = f"{server.url}/orders/{order['order_id']}/images"
    if stage == "before_headers":
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(url, timeout=httpx.Timeout(10, read=0.5))
    else:
        wanted = {"first_chunk": 1, "mid_way": 6 * 200_000, "near_end": 11 * 200_000}[stage]
        with httpx.stream("GET", url, timeout=60) as response:
            received = 0
            for chunk in response.iter_raw(16 * 1024):
                received += len(chunk)
                if received >= wanted:
                    break
    assert_no_leaks(server, settings)


def test_full_cache_disk_still_streams_and_logs(
    server: UvicornThread,
    settings: Settings,
    sandbox: SandboxControl,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    order = create_order(sandbox, images=4, image_bytes=50_000)
    written = {"bytes": 0}
    real_write = local_store._FileUpload.write

    async def filling_write(self: local_store._FileUpload, chunk: bytes) -> None:
        written["bytes"] += len(chunk)
        if written["bytes"] > 60_000 and self._file is not None:
            self._file.close()
            self._file = _FullDisk()  # type: ignore[assignment]
        await real_write(self, chunk)

    monkeypatch.setattr(local_store._FileUpload, "write", filling_write)
    with caplog.at_level(logging.INFO, logger="app.storage"):
        response = download(server, order["order_id"])
    assert len(entries(response)) == 4
    assert "not storing cache/" in caplog.text
    cache_dir = settings.data_dir / "archives" / "cache"
    assert not cache_dir.exists() or [p.name for p in cache_dir.iterdir()] == []
    # Nothing was cached: the archive is built again, now following its complete manifest,
    # so its size is known up front.
    again = download(server, order["order_id"])
    assert again.headers["content-length"] == str(len(response.content))
    assert again.content == response.content


class _FullDisk:
    def write(self, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    def close(self) -> None:
        pass


def test_circuit_opens_fails_fast_and_closes_again(
    make_settings: SettingsFactory, sandbox: SandboxControl
) -> None:
    settings = make_settings(upstream_retries=0, circuit_failure_threshold=2, circuit_cooldown=1.5)
    order = create_order(sandbox, images=2, image_bytes=10_000)
    with UvicornThread(create_app(settings)) as server:
        fault(sandbox, kind="status", status=500, scope="order")
        assert download(server, order["order_id"]).status_code == 502
        assert download(server, order["order_id"]).status_code == 502
        order_path = f"/v3/orders/{order['order_id']}"

        def order_calls() -> int:
            log = sandbox.log()
            return sum(1 for entry in log if entry["path"] == order_path)

        calls = order_calls()
        response = download(server, order["order_id"])
        assert response.status_code == 503
        assert response.json()["error"] == "upstream_unavailable"
        assert 1 <= int(response.headers["retry-after"]) <= 2
        assert order_calls() == calls, "an open circuit must not call the upstream"
        sandbox.delete("/_sandbox/faults")
        # After the cool-down one trial call goes through, and its success closes the circuit.
        closed = wait_for(
            lambda: (answer := download(server, order["order_id"])).status_code == 200 and answer,
            interval=0.25,
        )
        assert len(entries(closed)) == 2
        assert len(entries(download(server, order["order_id"]))) == 2
