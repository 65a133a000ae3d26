"""The S3 store across real processes: web processes with their own DATA_DIR (one answering with
presigned redirects) and an arq worker share one bucket (and Redis for jobs)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import httpx
import pytest

from testkit.jobs import job_env, start_worker
from testkit.processes import redis_server, start_web, stop_group
from testkit.s3 import S3Server
from tests.conftest import create_order
from tests.jobs.support import wait_state
from tests.support import require_tool


def bucket_keys(s3: S3Server, bucket: str, prefix: str) -> list[str]:
    listing = httpx.get(
        f"{s3.endpoint}/{bucket}", params={"list-type": "2", "prefix": prefix}, timeout=10
    ).text
    return [part.split("</Key>")[0] for part in listing.split("<Key>")[1:]]


@pytest.mark.redis
def test_a_job_built_by_a_worker_into_s3_is_served_by_every_web_process(
    sandbox_url: str, sandbox: httpx.Client, s3_server: S3Server, tmp_path: Path
) -> None:
    bucket = s3_server.bucket()
    store = {
        "archive_store": f"s3://{bucket}/batch",
        **{key.lower(): value for key, value in s3_server.env.items()},
    }
    with redis_server(require_tool("redis-server")) as redis_url:
        common = {"redis_url": redis_url, "job_concurrency": 1, **store}
        worker = start_worker(
            job_env(sandbox_url, tmp_path / "worker", **common), tmp_path / "worker.log"
        )
        web_a, url_a = start_web(job_env(sandbox_url, tmp_path / "a", **common))
        web_b, url_b = start_web(job_env(sandbox_url, tmp_path / "b", **common))
        redirecting = {**common, "archive_redirect": True, "archive_redirect_ttl": 60}
        web_c, url_c = start_web(job_env(sandbox_url, tmp_path / "c", **redirecting))
        try:
            order = create_order(sandbox, images=5, image_bytes=12_000)
            with httpx.Client(timeout=30) as client:
                job = client.post(f"{url_a}/orders/{order['order_id']}/jobs").json()
                status = wait_state(client, f"{url_b}/jobs/{job['job_id']}")
                assert status["state"] == "complete", status
                assert bucket_keys(s3_server, bucket, "batch/jobs/") == [
                    f"batch/jobs/{job['job_id']}.zip"
                ]
                from_b = client.get(f"{url_b}/jobs/{job['job_id']}/download")
                from_a = client.get(f"{url_a}/jobs/{job['job_id']}/download")
                assert from_b.status_code == from_a.status_code == 200
                assert from_b.content == from_a.content
                assert from_b.headers["etag"] == from_a.headers["etag"]
                with zipfile.ZipFile(io.BytesIO(from_b.content)) as archive:
                    assert archive.testzip() is None
                    assert len(archive.namelist()) == 5
                part = client.get(
                    f"{url_b}/jobs/{job['job_id']}/download",
                    headers={"Range": "bytes=100-", "If-Range": from_a.headers["etag"]},
                )
                assert part.status_code == 206
                assert part.content == from_b.content[100:]
                moved = client.get(f"{url_c}/jobs/{job['job_id']}/download")
                assert moved.status_code == 302
                assert moved.headers["location"].startswith(f"{s3_server.endpoint}/{bucket}/")
                assert client.get(moved.headers["location"]).content == from_b.content
                # Nothing of the archive is on any machine's own disk.
                for data_dir in ("worker", "a", "b", "c"):
                    local = [p.name for p in (tmp_path / data_dir).rglob("*.zip")]
                    assert local == [], (data_dir, local)

                deleted = client.delete(f"{url_b}/jobs/{job['job_id']}")
                assert deleted.json()["state"] == "cancelled"
                assert bucket_keys(s3_server, bucket, "batch/jobs/") == []
                gone = client.get(f"{url_a}/jobs/{job['job_id']}/download")
                assert gone.status_code == 410
        finally:
            for process in (web_a, web_b, web_c, worker):
                stop_group(process)
