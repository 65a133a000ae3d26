"""Jobs across real processes: `uvicorn --workers 2`, restarts, arq workers, crashes."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from testkit.jobs import job_env, start_worker
from testkit.processes import bound_socket, kill_group, redis_server, start_web, stop_group
from tests.conftest import create_order
from tests.jobs.support import wait_state
from tests.support import require_tool


def test_embedded_backend_across_two_workers_and_restarts(
    sandbox_url: str, sandbox: httpx.Client, tmp_path: Path
) -> None:
    env = job_env(sandbox_url, tmp_path / "data")
    # One socket for both lives of the service: the restart serves the URLs handed out before.
    listener = bound_socket()
    process, url = start_web(env, "--workers", "2", sock=listener)
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            order = create_order(sandbox, images=6, image_bytes=10_000)
            done = client.post(f"/orders/{order['order_id']}/jobs").json()
            # Every poll and download lands on either worker; none may answer 404.
            assert wait_state(client, done["status_url"])["state"] == "complete"
            copies = {client.get(done["download_url"]).content for _ in range(8)}
            assert len(copies) == 1
            assert next(iter(copies))[:2] == b"PK"

            sandbox.post(
                "/_sandbox/faults", json={"kind": "latency", "ms": 400, "scope": "enhanced"}
            )
            slow = create_order(sandbox, images=30, image_bytes=5_000)
            cancelled = client.post(f"/orders/{slow['order_id']}/jobs").json()
            wait_state(client, cancelled["status_url"], until={"running"})
            assert client.delete(f"/jobs/{cancelled['job_id']}").json()["state"] == "cancelled"
            crashed = client.post(f"/orders/{slow['order_id']}/jobs").json()
            wait_state(client, crashed["status_url"], until={"running"})
        kill_group(process)  # the whole service dies mid-job

        process, url = start_web(env, "--workers", "2", sock=listener)
        sandbox.delete("/_sandbox/faults")
        with httpx.Client(base_url=url, timeout=30) as client:
            again = client.get(done["download_url"])
            assert again.status_code == 200
            assert again.content in copies
            status = wait_state(client, crashed["status_url"], timeout=30)
            assert status["state"] == "complete", status
            assert status["attempts"] == 2
            assert status["progress"]["images_done"] == 30
            assert client.get(cancelled["status_url"]).json()["state"] == "cancelled"
    finally:
        stop_group(process)
        listener.close()


@pytest.mark.redis
def test_redis_backend_spreads_jobs_survives_a_worker_kill_and_a_web_restart(
    sandbox_url: str, sandbox: httpx.Client, tmp_path: Path
) -> None:
    with redis_server(require_tool("redis-server")) as redis_url:
        env = job_env(
            sandbox_url,
            tmp_path / "data",
            redis_url=redis_url,
            archive_store=tmp_path / "store",
            job_concurrency=1,
        )
        workers = [start_worker(env, tmp_path / f"worker{i}.log") for i in range(2)]
        webs = [start_web(env) for _ in range(2)]
        try:
            _spread_and_crash(sandbox, workers, webs, env)
        finally:
            for process, _ in webs:
                stop_group(process)
            for worker in workers:
                stop_group(worker)


def _spread_and_crash(sandbox: httpx.Client, workers, webs, env) -> None:
    (web_a, url_a), (web_b, url_b) = webs
    sandbox.post("/_sandbox/faults", json={"kind": "latency", "ms": 150, "scope": "enhanced"})
    order = create_order(sandbox, images=4, image_bytes=10_000)
    with httpx.Client(timeout=30) as client:
        jobs = [
            client.post(f"{(url_a, url_b)[i % 2]}/orders/{order['order_id']}/jobs").json()
            for i in range(6)
        ]
        statuses = [
            wait_state(client, f"{(url_b, url_a)[i % 2]}/jobs/{job['job_id']}")
            for i, job in enumerate(jobs)
        ]
        assert {s["state"] for s in statuses} == {"complete"}
        assert len({s["worker"] for s in statuses}) == 2  # both workers took jobs
        archives = {
            client.get(f"{url}/jobs/{job['job_id']}/download").content
            for job in jobs
            for url in (url_a, url_b)
        }
        assert len(archives) == 1  # same order, same options: byte-identical everywhere

        sandbox.post("/_sandbox/faults", json={"kind": "latency", "ms": 600, "scope": "enhanced"})
        slow = create_order(sandbox, images=12, image_bytes=5_000)
        job = client.post(f"{url_a}/orders/{slow['order_id']}/jobs").json()
        running = wait_state(client, f"{url_a}/jobs/{job['job_id']}", until={"running"})
        victim = next(w for w in workers if f":{w.pid}:" in running["worker"])
        kill_group(victim)  # SIGKILL mid-job: no chance to hand the job back
        sandbox.delete("/_sandbox/faults")
        status = wait_state(client, f"{url_b}/jobs/{job['job_id']}", timeout=30)
        assert status["state"] == "complete", status
        assert status["attempts"] == 2
        assert status["worker"] != running["worker"]

        stop_group(web_a)
        restarted, url_c = start_web(env)
        webs[0] = (restarted, url_c)
        for done in (jobs[0], job):
            response = client.get(f"{url_c}/jobs/{done['job_id']}/download")
            assert response.status_code == 200
            assert response.content[:2] == b"PK"
