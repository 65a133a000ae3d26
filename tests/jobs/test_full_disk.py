"""A full DATA_DIR: jobs fail with the reason instead of staying queued, and /ready says why.

The disk is "full" by the service's own measure: `DATA_DIR_MIN_FREE_BYTES` above the free space
the real file system reports, the floor below which the service stops writing (so that it can
still record why); no file system is filled and nothing is mocked.
"""

from __future__ import annotations

import httpx

from app.main import create_app
from testkit.jobs import FAST_JOBS
from tests.conftest import SettingsFactory, create_order
from tests.jobs.support import wait_state
from tests.support import SandboxControl, UvicornThread

FULL = 1 << 60  # more bytes free than any disk has


def test_a_job_on_a_full_data_dir_fails_with_the_reason_and_ready_says_why(
    make_settings: SettingsFactory, sandbox: SandboxControl
) -> None:
    settings = make_settings(**FAST_JOBS, data_dir_min_free_bytes=FULL)
    order = create_order(sandbox, images=2)
    with (
        UvicornThread(create_app(settings)) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        job = client.post(f"/orders/{order['order_id']}/jobs").json()
        status = wait_state(client, job["status_url"])
        assert status["state"] == "failed", status
        assert "the disk of DATA_DIR is full" in status["reason"]
        assert "DATA_DIR_MIN_FREE_BYTES" in status["reason"]
        assert client.get(job["download_url"]).json()["error"] == "job_failed"
        ready = client.get("/ready")
        assert ready.status_code == 503
        check = ready.json()["checks"]["archive_store"]
        assert check["ok"] is False
        assert check["detail"].startswith("DATA_DIR is full")
