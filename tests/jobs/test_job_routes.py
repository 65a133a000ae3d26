"""Job routes beyond the contract: an order's job listing, HEAD of a download, its rate limit."""

from __future__ import annotations

import httpx

from app.main import create_app
from testkit.jobs import FAST_JOBS
from tests.conftest import SettingsFactory, create_order
from tests.jobs.conftest import JobsApi
from tests.jobs.support import wait_state
from tests.support import SandboxControl, UvicornThread

OWN = {"X-Autoenhance-Key": "listing-own-key-0123"}
OTHER = {"X-Autoenhance-Key": "listing-other-key-4567"}


def test_an_orders_jobs_are_listed_newest_first_for_their_credential_only(
    jobs_api: JobsApi, sandbox: SandboxControl
) -> None:
    order = create_order(sandbox, images=2)
    path = f"/orders/{order['order_id']}/jobs"
    with httpx.Client(base_url=jobs_api.url, timeout=30) as client:
        first = client.post(path).json()["job_id"]
        second = client.post(path, params={"format": "png"}).json()["job_id"]
        own = client.post(path, headers=OWN).json()["job_id"]

        listed = client.get(path)
        assert listed.status_code == 200
        assert listed.json()["order_id"] == order["order_id"]
        assert [job["job_id"] for job in listed.json()["jobs"]] == [second, first]
        assert [job["job_id"] for job in client.get(path, headers=OWN).json()["jobs"]] == [own]
        assert client.get(path, headers=OTHER).json()["jobs"] == []
        assert client.get("/orders/not an id/jobs").status_code == 400


def test_head_of_a_job_download_answers_its_headers(
    jobs_api: JobsApi, sandbox: SandboxControl
) -> None:
    order = create_order(sandbox, images=2)
    with httpx.Client(base_url=jobs_api.url, timeout=30) as client:
        job = client.post(f"/orders/{order['order_id']}/jobs").json()
        assert wait_state(client, job["status_url"])["state"] == "complete"
        whole = client.get(job["download_url"])
        head = client.head(job["download_url"])
        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["content-length"] == str(len(whole.content))
        assert head.headers["etag"] == whole.headers["etag"]
        assert client.head(job["download_url"], headers=OTHER).status_code == 404
        assert (
            client.head(job["download_url"], headers={"If-None-Match": whole.headers["etag"]})
        ).status_code == 304


def test_job_downloads_have_a_rate_limit_of_their_own(
    make_settings: SettingsFactory, sandbox: SandboxControl
) -> None:
    settings = make_settings(**{**FAST_JOBS, "rate_limit_job_downloads": "2/minute"})
    order = create_order(sandbox, images=1)
    with (
        UvicornThread(create_app(settings)) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        job = client.post(f"/orders/{order['order_id']}/jobs").json()
        wait_state(client, job["status_url"])
        assert client.get(job["download_url"]).status_code == 200
        assert client.head(job["download_url"]).status_code == 200
        refused = client.get(job["download_url"])
        assert refused.status_code == 429
        assert refused.json()["error"] == "rate_limited"
        assert int(refused.headers["Retry-After"]) >= 1
        # Other job routes keep their own budget.
        assert client.get(job["status_url"]).status_code == 200
