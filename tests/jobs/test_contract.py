"""The job API contract, run against both backends (embedded SQLite, Redis + arq worker)."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import time
import zipfile
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.core.keys import ServiceKeys
from app.main import create_app
from testkit.jobs import FAST_JOBS, SIGNING_SECRET, WEBHOOK_TOKEN
from testkit.processes import wait_for
from tests.conftest import SettingsFactory, create_order
from tests.jobs.conftest import JobsApi
from tests.jobs.receivers import Receiver
from tests.jobs.support import wait_state
from tests.support import SandboxControl, UvicornThread

# The callback root when CALLBACK_SECRET is unset (what the operator can print).
CALLBACK_ROOT = ServiceKeys.derive(SIGNING_SECRET.encode()).callbacks


def job_key(job_id: str) -> bytes:
    """A job's callback key as docs/api.md tells an operator to derive it, independently of
    the service's code: HKDF-SHA256, no salt, the documented label, 32 bytes, as hex text."""
    label = b"autoenhance-batch-downloader:job-callback:v1:" + job_id.encode()
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label)
    return derived.derive(CALLBACK_ROOT).hex().encode()


def signed_with(key: bytes, headers: dict[str, str], body: bytes) -> bool:
    stamp, _, digest = headers["x-signature"].partition(",v1=")
    timestamp = stamp.removeprefix("t=")
    expected = hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(digest, expected) and abs(int(timestamp) - time.time()) < 60


OTHER_KEY = {"X-Autoenhance-Key": "someone-elses-key-123"}


def start_job(client: httpx.Client, order_id: str, **params: Any) -> dict[str, Any]:
    response = client.post(f"/orders/{order_id}/jobs", params=params)
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    assert response.headers["location"] == body["status_url"]
    return body


def enhanced_requests(sandbox: SandboxControl, jobs_api: JobsApi, order: dict[str, Any]) -> int:
    """Image downloads of `order` that reached the sandbox with the service's key."""
    images = {image["image_id"] for image in order["images"]}
    entries = sandbox.log(jobs_api.operator_key)
    return sum(1 for e in entries if e["route"] == "enhanced" and e["image_id"] in images)


def test_job_writes_the_streamed_archive_and_serves_it_resumably(
    jobs_api: JobsApi, sandbox: SandboxControl
) -> None:
    order = create_order(sandbox, images=4, image_bytes=20_000)
    with httpx.Client(base_url=jobs_api.url, timeout=30) as client:
        created = start_job(client, order["order_id"], format="png")
        status = wait_state(client, created["status_url"])
        assert status["state"] == "complete", status
        assert status["progress"] == {"images_done": 4, "images_total": 4, "bytes_written": 80_000}
        assert status["expires_at"]
        assert status["worker"]
        assert status["failures"] == []

        archive = client.get(created["download_url"])
        streamed = client.get(f"/orders/{order['order_id']}/images", params={"format": "png"})
        assert archive.status_code == 200
        assert archive.content == streamed.content  # the same deterministic archive
        with zipfile.ZipFile(io.BytesIO(archive.content)) as zf:
            assert [i.file_size for i in zf.infolist()] == [20_000] * 4
            assert all(name.endswith(".png") for name in zf.namelist())
            assert zf.testzip() is None
        assert int(archive.headers["content-length"]) == len(archive.content)
        etag, modified = archive.headers["etag"], archive.headers["last-modified"]

        part = client.get(created["download_url"], headers={"Range": "bytes=100-199"})
        assert part.status_code == 206
        assert part.content == archive.content[100:200]
        resumed = client.get(
            created["download_url"], headers={"Range": "bytes=1000-", "If-Range": etag}
        )
        assert resumed.status_code == 206
        assert resumed.content == archive.content[1000:]
        changed = client.get(
            created["download_url"], headers={"Range": "bytes=1000-", "If-Range": '"other"'}
        )
        assert changed.status_code == 200
        assert changed.content == archive.content
        # Not evaluated: a date is no strong validator of an archive (see app.archive.http_rules).
        since = client.get(created["download_url"], headers={"If-Modified-Since": modified})
        assert since.status_code == 200
        assert since.headers["content-location"] == urlsplit(created["download_url"]).path
        past_end = client.get(created["download_url"], headers={"Range": "bytes=999999999-"})
        assert past_end.status_code == 416
        assert past_end.json()["error"] == "range_not_satisfiable"
        assert past_end.headers["content-range"] == f"bytes */{len(archive.content)}"
        huge = client.get(created["download_url"], headers={"Range": f"bytes={'9' * 4301}-"})
        assert huge.status_code == 416
        assert huge.json()["error"] == "range_not_satisfiable"
        for unusable in ("bytes=abc", "items=0-5", "bytes=9-3"):  # ignored, as RFC 9110 says
            ignored = client.get(created["download_url"], headers={"Range": unusable})
            assert ignored.status_code == 200
            assert ignored.content == archive.content
        assert archive.headers["accept-ranges"] == "bytes"
        fresh = client.get(created["download_url"], headers={"If-None-Match": etag})
        assert fresh.status_code == 304
        assert fresh.content == b""


def test_jobs_are_visible_only_to_their_credential_and_keys_are_never_stored(
    jobs_api: JobsApi, sandbox: SandboxControl
) -> None:
    order = create_order(sandbox, images=2)
    own = {"X-Autoenhance-Key": "my-own-autoenhance-key-42"}
    with httpx.Client(base_url=jobs_api.url, timeout=30) as client:
        operator_job = start_job(client, order["order_id"])
        response = client.post(f"/orders/{order['order_id']}/jobs", headers=own)
        assert response.status_code == 202
        byok_job = response.json()
        mine = wait_state(client, byok_job["status_url"], headers=own)
        assert mine["state"] == "complete"
        wait_state(client, operator_job["status_url"])

        for job, stranger in ((operator_job, OTHER_KEY), (byok_job, {}), (byok_job, OTHER_KEY)):
            job_id = job["job_id"]
            for method, path in (
                ("GET", f"/jobs/{job_id}"),
                ("GET", f"/jobs/{job_id}/download"),
                ("POST", f"/jobs/{job_id}/download-link"),
                ("DELETE", f"/jobs/{job_id}"),
            ):
                answer = client.request(method, path, headers=stranger)
                assert answer.status_code == 404, (method, path, answer.text)
                assert answer.json()["error"] == "unknown_job"
        assert client.get(byok_job["download_url"], headers=own).status_code == 200
        assert client.get("/jobs/not-a-job").status_code == 404
    assert b"my-own-autoenhance-key-42" not in jobs_api.stored_bytes()


def test_delete_cancels_in_flight_downloads_and_removes_files(
    jobs_api: JobsApi, sandbox: SandboxControl
) -> None:
    order = create_order(sandbox, images=40, image_bytes=5_000)
    sandbox.post("/_sandbox/faults", json={"kind": "latency", "ms": 700, "scope": "enhanced"})
    with httpx.Client(base_url=jobs_api.url, timeout=30) as client:
        job = start_job(client, order["order_id"])
        wait_state(client, job["status_url"], until={"running"})
        early = client.get(job["download_url"])
        assert early.status_code == 409
        assert early.json()["error"] == "job_not_ready"

        cancelled = client.delete(f"/jobs/{job['job_id']}")
        assert cancelled.status_code == 200
        assert cancelled.json()["state"] == "cancelled"
        time.sleep(1.5)  # requests in flight at the cancel end (aborted) within the latency
        settled = enhanced_requests(sandbox, jobs_api, order)
        time.sleep(1.0)
        assert enhanced_requests(sandbox, jobs_api, order) == settled < 40  # no new downloads
        assert wait_state(client, job["status_url"])["state"] == "cancelled"
        gone = client.get(job["download_url"])
        assert gone.status_code == 410
        assert gone.json()["error"] == "job_gone"
    assert not [p for p in jobs_api.store_dir.rglob("*") if job["job_id"] in p.name]


def test_signed_download_link_works_without_credentials(
    jobs_api: JobsApi, sandbox: SandboxControl
) -> None:
    order = create_order(sandbox, images=2)
    own = {"X-Autoenhance-Key": "link-owner-key-1234"}
    with httpx.Client(base_url=jobs_api.url, timeout=30) as client:
        job = client.post(f"/orders/{order['order_id']}/jobs", headers=own).json()
        wait_state(client, job["status_url"], headers=own)
        link = client.post(f"/jobs/{job['job_id']}/download-link", headers=own)
        assert link.status_code == 200
        url = link.json()["url"]
        assert "sig=" in url
        assert "expires=" in url
        assert link.json()["expires_at"]

    fetched = httpx.get(url)  # no credentials at all
    assert fetched.status_code == 200
    assert fetched.content == httpx.get(job["download_url"], headers=own).content
    tampered = httpx.get(url.replace("sig=", "sig=0"))
    assert tampered.status_code == 403
    assert tampered.json()["error"] == "bad_link"


def test_wait_job_is_started_by_the_autoenhance_webhook(
    jobs_api: JobsApi, sandbox: SandboxControl
) -> None:
    order = create_order(sandbox, images=3, statuses={"1": "processing"})
    processing_id = order["images"][1]["image_id"]
    event = {
        "event": "image_processed",
        "image_id": processing_id,
        "error": False,
        "order_id": order["order_id"],
        "order_is_processing": False,
    }
    with httpx.Client(base_url=jobs_api.url, timeout=30) as client:
        job = start_job(client, order["order_id"], wait="true")
        assert job["state"] == "waiting"
        time.sleep(0.5)
        assert client.get(job["status_url"]).json()["state"] == "waiting"

        assert client.post("/webhooks/autoenhance", json=event).status_code == 401
        wrong = client.post("/webhooks/autoenhance", json=event, headers={"Authorization": "x"})
        assert wrong.status_code == 401
        assert wrong.json()["error"] == "unauthorized"
        updated = client.post(
            "/webhooks/autoenhance",
            json={"event": "webhook_updated"},
            headers={"Authorization": WEBHOOK_TOKEN},
        )
        assert updated.status_code == 200

        sandbox.post(f"/_sandbox/images/{processing_id}/status", json={"status": "processed"})
        woken = client.post(
            "/webhooks/autoenhance",
            json=event,
            headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
        )
        assert woken.status_code == 200
        assert woken.json()["jobs_started"] == 1
        status = wait_state(client, job["status_url"])
        assert status["state"] == "complete"
        assert status["progress"]["images_done"] == 3
        assert status["failures"] == []


def test_failed_job_says_why(jobs_api: JobsApi, sandbox: SandboxControl) -> None:
    order = create_order(sandbox, images=2, status="error")
    with httpx.Client(base_url=jobs_api.url, timeout=30) as client:
        job = start_job(client, order["order_id"])
        status = wait_state(client, job["status_url"])
        assert status["state"] == "failed"
        assert "no image" in status["reason"]
        assert [f["image_id"] for f in status["failures"]] == [
            i["image_id"] for i in order["images"]
        ]
        failed = client.get(job["download_url"])
        assert failed.status_code == 409
        assert failed.json()["error"] == "job_failed"
        bad = client.post("/orders/not-a-uuid/jobs")
        assert bad.status_code == 400
        bad_callback = client.post(
            f"/orders/{order['order_id']}/jobs", params={"callback_url": "ftp://example.com/x"}
        )
        assert bad_callback.status_code == 422
        assert bad_callback.json()["error"] == "invalid_callback_url"


def test_job_end_is_posted_signed_to_the_callback_with_the_jobs_own_key(
    jobs_api: JobsApi, sandbox: SandboxControl
) -> None:
    order = create_order(sandbox, images=2)
    receiver = Receiver()
    with UvicornThread(receiver.app) as hook, httpx.Client(base_url=jobs_api.url) as client:
        job = start_job(client, order["order_id"], callback_url=f"{hook.url}/hook?x=1")
        other = start_job(client, order["order_id"], callback_url=f"{hook.url}/hook?x=2")
        assert "callback_secret" not in start_job(client, order["order_id"])
        for started in (job, other):
            wait_state(client, started["status_url"])
        wait_for(lambda: len(receiver.received) == 2)
        status = wait_state(client, job["status_url"], until={"complete"})
        deadline = time.monotonic() + 5
        while status["callback"] is None and time.monotonic() < deadline:
            time.sleep(0.05)
            status = client.get(job["status_url"]).json()
    assert status["callback"] == "delivered (204)"
    by_job = {json.loads(body)["job_id"]: (headers, body) for headers, body in receiver.received}
    headers, body = by_job[job["job_id"]]
    key = job["callback_secret"].encode()
    assert key == job_key(job["job_id"])  # what docs/api.md tells an operator to derive
    assert signed_with(key, headers, body)
    # One receiver's key checks its own job's callbacks and no other's.
    assert not signed_with(key, *by_job[other["job_id"]])
    assert signed_with(other["callback_secret"].encode(), *by_job[other["job_id"]])
    assert not signed_with(CALLBACK_ROOT, headers, body)
    summary = json.loads(body)
    assert summary["job_id"] == job["job_id"]
    assert summary["state"] == "complete"
    assert summary["images_done"] == 2
    fetched = httpx.get(summary["download_url"])  # signed: no credentials needed
    assert fetched.status_code == 200
    assert fetched.content[:2] == b"PK"


def test_wait_job_falls_back_to_polling(
    make_settings: SettingsFactory, sandbox: SandboxControl
) -> None:
    """Embedded backend only: no webhook, the order is re-read with backoff."""
    order = create_order(sandbox, images=2, statuses={"0": "processing"})
    settings = make_settings(**{**FAST_JOBS, "job_wait_poll_min": 0.2, "job_wait_poll_max": 0.4})
    with UvicornThread(create_app(settings)) as server, httpx.Client(base_url=server.url) as c:
        job = start_job(c, order["order_id"], wait="true")
        order_path = f"/v3/orders/{order['order_id']}"
        # The job has re-read the order (and found it still processing) at least twice.
        wait_for(lambda: sum(e["path"] == order_path for e in sandbox.log()) >= 3)
        assert c.get(job["status_url"]).json()["state"] == "waiting"
        sandbox.post(
            f"/_sandbox/images/{order['images'][0]['image_id']}/status",
            json={"status": "processed"},
        )
        status = wait_state(c, job["status_url"])
        assert status["state"] == "complete"
        assert status["progress"]["images_done"] == 2


def test_job_over_the_storage_bound_fails_with_the_reason(
    make_settings: SettingsFactory, sandbox: SandboxControl
) -> None:
    """Embedded backend only (the bound is checked by the same runner in both)."""
    order = create_order(sandbox, images=6, image_bytes=20_000)
    settings = make_settings(**{**FAST_JOBS, "job_storage_max_bytes": 50_000})
    with UvicornThread(create_app(settings)) as server, httpx.Client(base_url=server.url) as c:
        job = start_job(c, order["order_id"])
        status = wait_state(c, job["status_url"])
    assert status["state"] == "failed"
    assert "JOB_STORAGE_MAX_BYTES" in status["reason"]
    assert not [p for p in (settings.data_dir / "archives").rglob("*") if p.is_file()]
