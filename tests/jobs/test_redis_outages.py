"""Job workers and web processes across Redis outages, with real processes.

redis-server is stopped (SIGSTOP: it hangs), continued, killed and restarted empty; the job
worker is a real `python -m app.jobs.worker` process. Everything is synchronised by polling
for a condition (a log line, a state, a registry entry).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.main import create_app
from testkit.jobs import FAST_JOBS, job_env, registered_pids, start_worker
from testkit.processes import RedisProcess, kill_group, stop_group, wait_for
from tests.conftest import SettingsFactory, create_order
from tests.jobs.receivers import Receiver
from tests.jobs.support import wait_state
from tests.support import UvicornThread, require_tool

pytestmark = pytest.mark.redis

STALE = 3.0  # JOB_WORKER_STALE_SECONDS: heartbeats every second


@pytest.fixture
def redis() -> Iterator[RedisProcess]:
    with RedisProcess(require_tool("redis-server")) as server:
        yield server


def _log_has(log: Path, text: str, *, after: int = 0) -> bool:
    return text in log.read_text(errors="replace")[after:]


def test_the_worker_outlives_redis_and_dead_workers_are_reported_and_forgotten(
    redis: RedisProcess,
    sandbox_url: str,
    sandbox: httpx.Client,
    make_settings: SettingsFactory,
    operator_key: str,
    tmp_path: Path,
) -> None:
    redis_url = f"{redis.url}/0"
    shared: dict[str, object] = {
        "redis_url": redis_url,
        "redis_timeout": 0.5,
        "archive_store": str(tmp_path / "store"),
        "job_worker_stale_seconds": STALE,
        "autoenhance_api_key": operator_key,
    }
    log = tmp_path / "worker.log"
    worker = start_worker(job_env(sandbox_url, tmp_path / "worker", **shared), log)
    settings = make_settings(**{**FAST_JOBS, **shared, "readiness_cache_seconds": 0})
    try:
        with (
            UvicornThread(create_app(settings)) as server,
            httpx.Client(base_url=server.url, timeout=30) as client,
        ):
            ready = client.get("/ready").json()
            assert ready["checks"]["workers"]["ok"] is True, ready

            # Redis hangs, then comes back: the idle worker notices, waits, and goes on.
            redis.pause()
            wait_for(lambda: _log_has(log, "Redis is unreachable"), timeout=30)
            redis.resume()
            wait_for(lambda: _log_has(log, "Redis is reachable again"), timeout=30)
            # Redis dies and comes back empty (its registry too): the worker registers again.
            seen = len(log.read_text(errors="replace"))
            redis.kill()
            wait_for(lambda: _log_has(log, "Redis is unreachable", after=seen), timeout=30)
            redis.restart()
            wait_for(lambda: _log_has(log, "Redis is reachable again", after=seen), timeout=30)
            assert worker.poll() is None
            wait_for(lambda: worker.pid in registered_pids(redis_url), timeout=30)

            order = create_order(sandbox, images=3, image_bytes=5_000)
            job = client.post(f"/orders/{order['order_id']}/jobs").json()
            status = wait_state(client, job["status_url"], timeout=30)
            assert status["state"] == "complete", status
            assert status["worker"].split(":")[1] == str(worker.pid)

            kill_group(worker)  # no chance to deregister
            degraded = wait_for(
                lambda: (r := client.get("/ready")).json()["status"] == "degraded" and r,
                timeout=30,
            )
            assert degraded.status_code == 200  # downloads still work: not taken out
            assert degraded.json()["checks"]["workers"]["ok"] is False
            assert "stay queued" in degraded.json()["checks"]["workers"]["detail"]
            assert registered_pids(redis_url) == set()
            metrics = client.get("/metrics").text
            assert re.search(r"^job_workers_alive 0\.0$", metrics, re.MULTILINE), metrics
            age = re.search(r"^job_worker_heartbeat_age_seconds (\S+)$", metrics, re.MULTILINE)
            assert age is not None
            assert float(age.group(1)) >= STALE
    finally:
        stop_group(worker)


def test_redis_restarted_empty_loses_no_running_job_and_no_storage(
    redis: RedisProcess,
    sandbox_url: str,
    sandbox: httpx.Client,
    make_settings: SettingsFactory,
    operator_key: str,
    tmp_path: Path,
) -> None:
    redis_url = f"{redis.url}/0"
    store = tmp_path / "store"
    shared: dict[str, object] = {
        "redis_url": redis_url,
        "redis_timeout": 0.5,
        "archive_store": str(store),
        "autoenhance_api_key": operator_key,
        "job_orphan_grace": 1.0,
    }
    worker = start_worker(job_env(sandbox_url, tmp_path / "worker", **shared), tmp_path / "w.log")
    receiver = Receiver()
    settings = make_settings(**{**FAST_JOBS, **shared})
    try:
        with (
            UvicornThread(create_app(settings)) as server,
            UvicornThread(receiver.app) as hook,
            httpx.Client(base_url=server.url, timeout=30) as client,
        ):
            finished = client.post(f"/orders/{create_order(sandbox, images=2)['order_id']}/jobs")
            done = wait_state(client, finished.json()["status_url"])
            assert done["state"] == "complete"
            archive = store / "jobs" / f"{done['job_id']}.zip"
            assert archive.is_file()

            sandbox.post(
                "/_sandbox/faults", json={"kind": "latency", "ms": 300, "scope": "enhanced"}
            )
            slow = create_order(sandbox, images=10, image_bytes=5_000)
            job = client.post(
                f"/orders/{slow['order_id']}/jobs", params={"callback_url": f"{hook.url}/hook"}
            ).json()
            wait_state(client, job["status_url"], until={"running"})
            redis.kill()
            redis.restart()  # without persistence: every record is gone
            sandbox.delete("/_sandbox/faults")

            # The run holding the job writes its record back and finishes it, callback too.
            def ended() -> dict[str, object] | None:
                answer = client.get(job["status_url"])  # 404 until the record is back
                if answer.status_code != 200 or answer.json()["state"] == "running":
                    return None
                result: dict[str, object] = answer.json()
                return result

            status = wait_for(ended, timeout=30)
            assert status["state"] == "complete", status
            assert receiver.event.wait(30)
            body = json.loads(receiver.received[0][1])
            assert (body["job_id"], body["state"]) == (job["job_id"], "complete")
            # The finished job's record is lost for good; its archive does not stay forever.
            assert client.get(done["status_url"]).status_code == 404
            wait_for(lambda: not archive.exists(), timeout=30)
            assert client.get(job["download_url"]).content[:2] == b"PK"
    finally:
        stop_group(worker)
