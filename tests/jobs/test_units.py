"""Unit tests of the job modules: callbacks and their guard, sealed keys, store, sweeper."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from pathlib import Path

import httpx
import pytest

from app.core.keys import ServiceKeys
from app.jobs.callbacks import (
    CallbackRefused,
    CallbackSender,
    check_callback_url,
    job_callback_key,
    resolve_allowed,
    signature_header,
)
from app.jobs.keybox import KeyBox, KeyUnavailable
from app.jobs.models import JobRecord
from app.jobs.service import JobService
from app.jobs.sqlite import SQLiteBackend
from app.jobs.store import JobArchives, StorageFull
from app.jobs.sweeper import sweep
from app.storage import LocalArchiveStore, Quota
from tests.support import settings_of


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://localhost:8080/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
        "http://224.0.0.1/hook",
        "http://240.0.0.1/hook",
        "http://100.64.0.1/hook",
        "http://[2002:7f00:1::1]/hook",  # 6to4 of 127.0.0.1
        "http://[2002:a9fe:a9fe::]/hook",  # 6to4 of 169.254.169.254
        "http://[2002:c0a8:1::]/hook",  # 6to4 of 192.168.0.1
        "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/hook",  # Teredo, client 127.0.0.1
        "http://[2001:0:a00:1::1]/hook",  # Teredo, server 10.0.0.1
        "http://[64:ff9b::a9fe:a9fe]/hook",  # NAT64 of 169.254.169.254
    ],
)
async def test_guard_refuses_internal_addresses(url: str) -> None:
    with pytest.raises(CallbackRefused):
        await resolve_allowed(httpx.URL(url), allow_private=False)


async def test_guard_allows_6to4_of_a_public_address() -> None:
    assert await resolve_allowed(httpx.URL("http://[2002:808:808::]/x"), allow_private=False)


async def test_guard_allows_private_targets_only_when_configured() -> None:
    assert await resolve_allowed(httpx.URL("http://127.0.0.1:9/x"), allow_private=True)
    assert await resolve_allowed(httpx.URL("http://8.8.8.8/x"), allow_private=False) == "8.8.8.8"
    with pytest.raises(CallbackRefused):  # never, even when private targets are allowed
        await resolve_allowed(httpx.URL("http://0.0.0.0/x"), allow_private=True)


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "file:///etc/passwd", "/relative", "http://u:p@example.com/"]
)
def test_only_plain_http_urls_are_accepted(url: str) -> None:
    with pytest.raises(CallbackRefused):
        check_callback_url(url)


def _sender(handler: httpx.MockTransport, *, allow_private: bool = True) -> CallbackSender:
    return CallbackSender(
        httpx.AsyncClient(transport=handler),
        secret=b"callback-secret",
        allow_private=allow_private,
        timeout=1.0,
        backoff=0.01,
        backoff_max=0.02,
    )


async def test_callback_is_signed_pinned_and_retried_three_times() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(503 if len(seen) < 3 else 200)

    outcome = await _sender(httpx.MockTransport(handler)).send(
        "http://localhost:8123/hook?a=1", {"job_id": "j", "state": "complete"}
    )
    assert outcome == "delivered (200)"
    assert len(seen) == 3
    request = seen[-1]
    assert request.url.host in ("127.0.0.1", "::1")  # connected to the checked address
    assert request.headers["host"] == "localhost:8123"
    assert request.extensions["sni_hostname"] == "localhost"
    stamp, _, digest = request.headers["x-signature"].partition(",v1=")
    key = job_callback_key(b"callback-secret", "j")  # the job's own key, not the root
    expected = hmac.new(key, stamp[2:].encode() + b"." + request.content, hashlib.sha256)
    assert digest == expected.hexdigest()
    wrong = hmac.new(b"callback-secret", stamp[2:].encode() + b"." + request.content, "sha256")
    assert digest != wrong.hexdigest()
    assert signature_header(b"{}", secret=b"k", timestamp=5).startswith("t=5,v1=")


async def test_callback_gives_up_after_three_failures_and_not_on_4xx() -> None:
    calls: list[int] = []

    def failing(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        raise httpx.ConnectError("refused", request=request)

    outcome = await _sender(httpx.MockTransport(failing)).send(
        "http://127.0.0.1/h", {"job_id": "j"}
    )
    assert outcome.startswith("failed after 3 attempts")
    assert len(calls) == 3

    calls.clear()

    def not_found(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(404)

    rejected = _sender(httpx.MockTransport(not_found))
    assert await rejected.send("http://127.0.0.1/h", {"job_id": "j"}) == "failed: answered 404"
    assert len(calls) == 1


async def test_every_redirect_hop_is_checked() -> None:
    hops: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hops.append(str(request.url))
        return httpx.Response(302, headers={"Location": "http://169.254.169.254/secrets"})

    sender = _sender(httpx.MockTransport(handler), allow_private=False)
    outcome = await sender.send("http://8.8.8.8/hook", {"job_id": "j"})
    assert outcome == "failed: not an allowed callback URL"
    assert hops == ["http://8.8.8.8/hook"]  # the internal target was never contacted


def test_sealed_keys_open_only_with_the_same_secret() -> None:
    box = KeyBox(ServiceKeys.derive(b"secret-one").sealing)
    sealed = box.seal("customer-key")
    assert "customer-key" not in sealed
    assert box.open(sealed) == "customer-key"
    with pytest.raises(KeyUnavailable):
        KeyBox(ServiceKeys.derive(b"secret-two").sealing).open(sealed)


# Sealed by the release before keys were derived per purpose: pending jobs' keys must still open.
EARLIER_SEALED = (
    "gAAAAABrDzlld-Ofs_ra0V679qycnfp_aq5md4-76xVC-fO-e7OyY5-Hvbezqe2bvsOI65AW3ifLRXXhAqvyqTqo0WDz"
    "reIuLQ=="
)


def test_keys_sealed_before_the_upgrade_still_open() -> None:
    box = KeyBox(ServiceKeys.derive(b"jobs-test-signing-secret-0123456789").sealing)
    assert box.open(EARLIER_SEALED) == "customer-key"


def job_archives(root: Path, *, max_bytes: int | None) -> JobArchives:
    quota = Quota(namespaces=("jobs",), max_bytes=max_bytes, evictable=False)
    return JobArchives(LocalArchiveStore(root, quotas=(quota,)), spool_dir=root / "spool")


def test_store_bound_is_enforced_while_writing(tmp_path: Path) -> None:
    store = job_archives(tmp_path, max_bytes=10_000)
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "other.zip").write_bytes(b"x" * 4_000)
    writer = store.writer("job")
    writer.write(b"a" * 5_000)
    with pytest.raises(StorageFull, match="JOB_STORAGE_MAX_BYTES"):
        writer.write(b"b" * 2_000)
    writer.discard()
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["other.zip"]


async def test_store_bound_counts_archives_committed_meanwhile(tmp_path: Path) -> None:
    store = job_archives(tmp_path, max_bytes=10_000)
    first, second = store.writer("first"), store.writer("second")
    first.write(b"a" * 6_000)
    second.write(b"b" * 3_000)
    await first.commit()
    second.write(b"b" * 1_001)  # within the room measured when it started...
    with pytest.raises(StorageFull):  # ...but 6,000 committed + 4,001 do not fit
        await second.commit()
    second.discard()
    assert (await store.stat("first")) is not None
    assert await store.stat("second") is None
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["first.zip"]


async def test_sweeper_expires_archives_then_forgets_jobs(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path / "jobs.sqlite3")
    store = job_archives(tmp_path / "store", max_bytes=None)
    record = JobRecord(owner="operator", order_id="o")
    record.end("complete", ttl=60)
    await backend.insert(record)
    writer = store.writer(record.job_id)
    writer.write(b"PK")
    await writer.commit()

    await sweep(backend, store, ttl=60, max_attempts=3)
    assert (await backend.get(record.job_id)).state == "complete"  # type: ignore[union-attr]

    def age(stored: JobRecord) -> bool:
        stored.expires_at = time.time() - 1
        return True

    await backend.update(record.job_id, age)
    await sweep(backend, store, ttl=60, max_attempts=3)
    assert (await backend.get(record.job_id)).state == "expired"  # type: ignore[union-attr]
    assert await store.stat(record.job_id) is None

    def older(stored: JobRecord) -> bool:
        stored.expires_at = time.time() - 61
        return True

    await backend.update(record.job_id, older)
    await sweep(backend, store, ttl=60, max_attempts=3)
    assert await backend.get(record.job_id) is None
    await backend.aclose()


async def test_sweeper_requeues_lapsed_leases_then_gives_up(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path / "jobs.sqlite3")
    store = job_archives(tmp_path / "store", max_bytes=None)
    record = JobRecord(
        owner="operator",
        order_id="o",
        state="running",
        lease_owner="dead",
        lease_until=1.0,
        attempts=1,
        worker="host:1:ab",
    )
    await backend.insert(record)
    await sweep(backend, store, ttl=60, max_attempts=2)
    requeued = await backend.get(record.job_id)
    assert requeued is not None
    assert requeued.state == "queued"
    assert requeued.lease_owner is None

    def crash_again(stored: JobRecord) -> bool:
        stored.state, stored.attempts = "running", 2
        stored.lease_owner, stored.lease_until = "dead", 1.0
        return True

    await backend.update(record.job_id, crash_again)
    await sweep(backend, store, ttl=60, max_attempts=2)
    failed = await backend.get(record.job_id)
    assert failed is not None
    assert failed.state == "failed"
    assert "gave up after 2 attempts" in (failed.reason or "")
    await backend.aclose()


async def test_cancelling_a_pending_job_reports_its_end_and_records_the_outcome(
    tmp_path: Path,
) -> None:
    posted: list[dict[str, object]] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        posted.append(json.loads(request.content))
        return httpx.Response(204)

    backend = SQLiteBackend(tmp_path / "jobs.sqlite3")
    callbacks = _sender(httpx.MockTransport(receiver))
    service = JobService(
        settings=settings_of(data_dir=tmp_path),
        backend=backend,
        store=job_archives(tmp_path / "store", max_bytes=None),
        keybox=KeyBox(b"k" * 32),
        callbacks=callbacks,
    )
    record = JobRecord(owner="operator", order_id="o", callback_url="http://127.0.0.1:9/hook")
    await backend.insert(record)

    assert await service.cancel(record.job_id, owner="someone else") is None
    cancelled = await service.cancel(record.job_id, owner="operator")
    assert cancelled is not None
    assert cancelled.state == "cancelled"
    deadline = time.monotonic() + 10
    stored = await backend.get(record.job_id)
    while stored is not None and stored.callback_outcome is None:
        assert time.monotonic() < deadline, "the outcome was never recorded"
        await asyncio.sleep(0.01)
        stored = await backend.get(record.job_id)
    assert stored is not None
    assert stored.callback_outcome == "delivered (204)"
    assert len(posted) == 1
    assert posted[0]["state"] == "cancelled"
    assert posted[0]["download_url"] is None
    await callbacks.aclose(grace=1.0)
    await backend.aclose()
