"""What the downloads service answers besides the bytes: HEAD, stream=false and its bounds
(real uvicorn server, the standalone sandbox)."""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from tempfile import SpooledTemporaryFile
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client import REGISTRY

from app.main import create_app
from testkit.processes import wait_for
from tests.conftest import SettingsFactory, create_order
from tests.support import SandboxControl, UvicornThread


def image_fetches(sandbox: SandboxControl, order: dict[str, Any]) -> int:
    ids = {image["image_id"] for image in order["images"]}
    entries = sandbox.log()
    return sum(1 for e in entries if e["route"] == "enhanced" and e["image_id"] in ids)


@pytest.fixture
def slow(make_settings: SettingsFactory) -> Iterator[UvicornThread]:
    settings = make_settings(download_concurrency=2, archive_build_max_bytes=0)
    with UvicornThread(create_app(settings)) as server:
        yield server


def test_head_answers_what_get_would_without_fetching(
    service: UvicornThread, sandbox: SandboxControl
) -> None:
    waiting = create_order(sandbox, images=2, status="processing")
    url = f"{service.url}/orders/{waiting['order_id']}/images"
    get, head = httpx.get(url, timeout=30), httpx.head(url, timeout=30)
    assert get.status_code == head.status_code == 422
    assert head.headers["content-type"] == "application/json"

    ready = create_order(sandbox, images=2, image_bytes=20_000)
    url = f"{service.url}/orders/{ready['order_id']}/images"
    head = httpx.head(url, timeout=30)
    assert head.status_code == 200
    assert image_fetches(sandbox, ready) == 0
    get = httpx.get(url, timeout=30)
    for name in ("etag", "last-modified", "accept-ranges", "content-disposition"):
        assert head.headers[name] == get.headers[name], name
    assert httpx.head(url, headers={"If-None-Match": get.headers["etag"]}).status_code == 304


def test_stream_false_stops_building_when_the_client_leaves(
    slow: UvicornThread, sandbox: SandboxControl, make_settings: SettingsFactory
) -> None:
    order = create_order(sandbox, images=12, image_bytes=20_000)
    ids = [image["image_id"] for image in order["images"]]
    sandbox.post(
        "/_sandbox/faults",
        json={"kind": "latency", "ms": 400, "scope": "enhanced", "image_ids": ids},
    ).raise_for_status()
    target = urlsplit(slow.url)
    with socket.create_connection((target.hostname, target.port), timeout=10) as client:
        client.sendall(
            f"GET /orders/{order['order_id']}/images?stream=false HTTP/1.1\r\n"
            f"Host: {target.netloc}\r\n\r\n".encode()
        )
        wait_for(lambda: image_fetches(sandbox, order) >= 1)
    # The client has gone: every fetch of the build must stop, and its file go away.
    wait_for(lambda: not [n for n in slow.task_names() if n.startswith("batch-fetch")])
    assert image_fetches(sandbox, order) < len(ids)
    spool = make_settings().data_dir / "spool"
    wait_for(lambda: not spool.exists() or not any(spool.iterdir()))


def test_stream_false_is_bounded(
    make_settings: SettingsFactory, sandbox: SandboxControl, tmp_path: Path
) -> None:
    order = create_order(sandbox, images=3, image_bytes=30_000)
    settings = make_settings(archive_build_max_bytes=50_000, archive_cache_max_bytes=0)
    with UvicornThread(create_app(settings)) as server:
        url = f"{server.url}/orders/{order['order_id']}/images"
        answer = httpx.get(url, params={"stream": "false"}, timeout=30)
        assert answer.status_code == 422
        assert answer.json()["error"] == "archive_too_large"
        streamed = httpx.get(url, timeout=30)  # streaming has no such bound
        assert streamed.status_code == 200
        assert len(streamed.content) > 90_000
        spool = settings.data_dir / "spool"
        assert not any(p.suffix == ".zip" for p in spool.iterdir())


def _five_hundreds() -> float:
    """5xx answers of the archive route counted in /metrics so far (this process)."""
    total = 0.0
    for metric in REGISTRY.collect():
        if metric.name != "http_requests":
            continue
        for sample in metric.samples:
            labels = sample.labels
            if (
                sample.name == "http_requests_total"
                and labels.get("route") == "/orders/{order_id}/images"
                and labels.get("status", "").startswith("5")
            ):
                total += sample.value
    return total


def test_a_client_that_leaves_before_the_first_image_is_a_quiet_499(
    service: UvicornThread, sandbox: SandboxControl, caplog: pytest.LogCaptureFixture
) -> None:
    """`curl -m 1` while the service waits for the first image: no traceback, no error log,
    no 5xx in the metrics; the access log says 499."""
    order = create_order(sandbox, images=2, image_bytes=20_000)
    ids = [image["image_id"] for image in order["images"]]
    sandbox.post(
        "/_sandbox/faults",
        json={"kind": "latency", "ms": 3000, "scope": "enhanced", "image_ids": ids},
    ).raise_for_status()
    before = _five_hundreds()
    target = urlsplit(service.url)
    caplog.set_level(logging.INFO)
    with socket.create_connection((target.hostname, target.port), timeout=10) as client:
        client.sendall(
            f"GET /orders/{order['order_id']}/images HTTP/1.1\r\n"
            f"Host: {target.netloc}\r\n\r\n".encode()
        )
        # An image request is held by the latency: the service waits for the first image.
        wait_for(lambda: sandbox.get("/_sandbox/faults").json()["waiting"])

    def access_line() -> list[logging.LogRecord]:
        return [
            r
            for r in caplog.records
            if r.name == "app.access" and "/orders/{order_id}/images" in r.getMessage()
        ]

    (line,) = wait_for(access_line)
    assert " 499 " in line.getMessage()
    wait_for(lambda: not [n for n in service.task_names() if n.startswith("batch-fetch")])
    loud = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not loud, [r.getMessage() for r in loud]
    assert _five_hundreds() == before


class _FullDisk(SpooledTemporaryFile[bytes]):
    """A spool whose disk is full: it fails as it moves from memory to a file."""

    failing = True

    def rollover(self) -> None:
        if _FullDisk.failing:
            raise OSError(errno.ENOSPC, "No space left on device")
        super().rollover()


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> type[_FullDisk]:
    """Every image spool of the service fails to reach its disk (set `.failing` to change)."""
    _FullDisk.failing = True
    monkeypatch.setattr("app.archive.prefetch.SpooledTemporaryFile", _FullDisk)
    return _FullDisk


@pytest.mark.parametrize("stream", ["true", "false"])
def test_a_full_disk_before_the_first_byte_is_a_507(
    make_settings: SettingsFactory,
    sandbox: SandboxControl,
    full_disk: type[_FullDisk],
    caplog: pytest.LogCaptureFixture,
    stream: str,
) -> None:
    order = create_order(sandbox, images=2, image_bytes=20_000)
    # Images spool (the pool off), so the full disk is met before the first byte.
    settings = make_settings(spool_memory_bytes=1000, image_pool_bytes=0)
    with UvicornThread(create_app(settings)) as server:
        url = f"{server.url}/orders/{order['order_id']}/images"
        answer = httpx.get(url, params={"stream": stream}, timeout=30)
    assert answer.status_code == 507, answer.text
    assert answer.json()["error"] == "insufficient_storage"
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]


def test_a_full_disk_after_the_first_byte_aborts_the_transfer(
    make_settings: SettingsFactory,
    sandbox: SandboxControl,
    full_disk: type[_FullDisk],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The status is out: the connection is dropped (never a valid-looking archive), and the
    log says the transfer failed, not that the client left."""
    order = create_order(sandbox, images=3, image_bytes=20_000)
    last = order["images"][-1]["image_id"]
    # The first two images arrive before the disk fills up; the last comes later.
    sandbox.post(
        "/_sandbox/faults",
        json={"kind": "latency", "ms": 300, "scope": "enhanced", "image_ids": [last]},
    ).raise_for_status()
    full_disk.failing = False
    caplog.set_level(logging.INFO)
    settings = make_settings(spool_memory_bytes=1000, download_concurrency=2, image_pool_bytes=0)
    with UvicornThread(create_app(settings)) as server:
        url = f"{server.url}/orders/{order['order_id']}/images"
        with httpx.stream("GET", url, timeout=30) as answer:
            assert answer.status_code == 200
            full_disk.failing = True
            with pytest.raises(httpx.HTTPError):
                answer.read()
        outcomes = wait_for(
            lambda: [r.getMessage() for r in caplog.records if r.name == "app.batch"]
        )
    assert "outcome=failed" in outcomes[-1]
