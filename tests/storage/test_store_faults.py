"""The object store misbehaving under real processes: moto's S3 server as a process of its own,
stopped (SIGSTOP: it accepts connections and never answers), continued, and killed.

Requests use a client timeout far above ARCHIVE_STORE_REQUEST_TIMEOUT and far below the stall
(which lasts until the test continues the server): an answer proves nothing waited for the
store, and no test times anything. Every archive is opened and checked entry by entry.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.main import create_app
from testkit.jobs import FAST_JOBS, job_env, start_worker
from testkit.processes import RedisProcess, kill_group, stop_group, wait_for
from testkit.s3 import S3Process
from tests.conftest import SettingsFactory, create_order
from tests.jobs.support import wait_state
from tests.support import UvicornThread, require_tool

STORE_TIMEOUT = 0.5
CLIENT_TIMEOUT = 20.0


@pytest.fixture
def s3() -> Iterator[S3Process]:
    with S3Process() as server:
        yield server


def _s3_settings(s3: S3Process, **extra: Any) -> dict[str, Any]:
    return {
        **FAST_JOBS,
        "archive_store": f"s3://{s3.bucket()}/service",
        "archive_store_request_timeout": STORE_TIMEOUT,
        **{key.lower(): value for key, value in s3.env.items()},
        **extra,
    }


def _entries(body: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert archive.testzip() is None
        return archive.namelist()


def _store_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) >= 1
    if response.request.method != "HEAD":
        assert response.json()["error"] == "archive_store_unavailable"


def _store_failures(client: httpx.Client, kind: str) -> float:
    text = client.get("/metrics").text
    return sum(
        float(value)
        for value in re.findall(
            rf'^archive_store_failures_total{{[^}}]*kind="{kind}"[^}}]*}} (\S+)$',
            text,
            re.MULTILINE,
        )
    )


def test_job_routes_and_downloads_answer_within_the_deadline_with_the_store_hung_or_gone(
    make_settings: SettingsFactory, sandbox: httpx.Client, s3: S3Process
) -> None:
    order = create_order(sandbox, images=3, image_bytes=5_000)
    images = f"/orders/{order['order_id']}/images"
    settings = make_settings(**_s3_settings(s3))
    with (
        UvicornThread(create_app(settings)) as server,
        httpx.Client(base_url=server.url, timeout=CLIENT_TIMEOUT) as client,
    ):
        job = client.post(f"/orders/{order['order_id']}/jobs").json()
        assert wait_state(client, job["status_url"])["state"] == "complete"
        whole = client.get(job["download_url"])
        assert whole.status_code == 200
        names = _entries(whole.content)
        assert client.get(images).status_code == 200  # now cached in the bucket too

        s3.pause()
        try:
            _store_unavailable(client.get(job["download_url"]))
            _store_unavailable(client.get(job["download_url"], headers={"Range": "bytes=10-"}))
            _store_unavailable(client.head(job["download_url"]))
            # The download path streams afresh, past the cached copy it cannot reach.
            fresh = client.get(images)
            assert fresh.status_code == 200
            assert _entries(fresh.content) == names
            assert _store_failures(client, "timeout") >= 1
        finally:
            s3.resume()

        resumed = client.get(job["download_url"], headers={"Range": "bytes=10-"})
        assert resumed.status_code == 206
        assert resumed.content == whole.content[10:]

        s3.kill()
        _store_unavailable(client.get(job["download_url"]))
        _store_unavailable(client.get(job["download_url"], headers={"Range": "bytes=10-"}))
        assert _entries(client.get(images).content) == names
        # Cancelling never waits for the store: the archive goes in the background, or with
        # the job's expiry when the store is still gone then.
        cancelled = client.delete(f"/jobs/{job['job_id']}")
        assert cancelled.status_code == 200
        assert cancelled.json()["state"] == "cancelled"
        assert client.get(job["download_url"]).status_code == 410


def test_a_passing_store_fault_at_commit_is_retried_and_a_lasting_one_names_the_store(
    make_settings: SettingsFactory, sandbox: httpx.Client, s3: S3Process
) -> None:
    settings = make_settings(**_s3_settings(s3, job_max_attempts=3))
    with (
        UvicornThread(create_app(settings)) as server,
        httpx.Client(base_url=server.url, timeout=CLIENT_TIMEOUT) as client,
    ):
        sandbox.post("/_sandbox/faults", json={"kind": "latency", "ms": 300, "scope": "enhanced"})
        order = create_order(sandbox, images=4, image_bytes=5_000)
        job = client.post(f"/orders/{order['order_id']}/jobs").json()
        wait_state(client, job["status_url"], until={"running"})
        before = _store_failures(client, "timeout")
        s3.pause()
        try:
            # The build needs no store; its publication does, and times out.
            wait_for(lambda: _store_failures(client, "timeout") > before, timeout=30)
        finally:
            s3.resume()
        status = wait_state(client, job["status_url"], timeout=30)
        assert status["state"] == "complete", status
        assert status["attempts"] == 1
        assert len(_entries(client.get(job["download_url"]).content)) == 4

        lasting = client.post(f"/orders/{order['order_id']}/jobs").json()
        wait_state(client, lasting["status_url"], until={"running"})
        s3.kill()
        failed = wait_state(client, lasting["status_url"], timeout=60)
        assert failed["state"] == "failed", failed
        assert "archive store (s3://" in failed["reason"]
        assert "failed 3 times" in failed["reason"]


def _partials(spool: Path) -> set[Path]:
    return set(spool.glob(".*.partial"))


@pytest.mark.redis
def test_a_worker_killed_mid_job_leaves_no_spool_file_behind(
    make_settings: SettingsFactory,
    sandbox_url: str,
    sandbox: httpx.Client,
    s3: S3Process,
    operator_key: str,
    tmp_path: Path,
) -> None:
    with RedisProcess(require_tool("redis-server")) as redis:
        shared = {
            **_s3_settings(s3),
            "redis_url": f"{redis.url}/0",
            "autoenhance_api_key": operator_key,
        }
        env = job_env(sandbox_url, tmp_path / "worker", **shared)
        spool = tmp_path / "worker" / "spool"
        worker = start_worker(env, tmp_path / "worker.log")
        restarted = None
        try:
            with (
                UvicornThread(create_app(make_settings(**shared))) as server,
                httpx.Client(base_url=server.url, timeout=CLIENT_TIMEOUT) as client,
            ):
                sandbox.post(
                    "/_sandbox/faults", json={"kind": "latency", "ms": 300, "scope": "enhanced"}
                )
                order = create_order(sandbox, images=12, image_bytes=5_000)
                job = client.post(f"/orders/{order['order_id']}/jobs").json()
                wait_state(client, job["status_url"], until={"running"})
                left = wait_for(lambda: _partials(spool))
                kill_group(worker)  # SIGKILL mid-job: no chance to clean up
                assert _partials(spool) == left
                sandbox.delete("/_sandbox/faults")
                # The machine's worker comes back on the same DATA_DIR; its sweeper removes
                # what the dead one left, and a peer (itself) runs the job again.
                restarted = start_worker(env, tmp_path / "worker.log")
                wait_for(lambda: not (_partials(spool) & left), timeout=30)
                status = wait_state(client, job["status_url"], timeout=30)
                assert status["state"] == "complete", status
                assert status["attempts"] == 2
                assert len(_entries(client.get(job["download_url"]).content)) == 12
                assert _partials(spool) == set()
        finally:
            stop_group(worker)
            if restarted is not None:
                stop_group(restarted)
