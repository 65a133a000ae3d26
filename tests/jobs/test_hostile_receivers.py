"""Callback receivers that misbehave, on loopback: huge answers, answers a byte at a time, and
receivers that hold a delivery while other jobs must go on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.jobs.callbacks import MAX_ANSWER_BYTES, CallbackSender
from app.jobs.context import callback_client
from app.main import create_app
from testkit.jobs import FAST_JOBS, job_env, start_worker
from testkit.processes import stop
from tests.conftest import SettingsFactory, create_order
from tests.jobs.receivers import HostileReceiver
from tests.jobs.support import wait_state
from tests.support import UvicornThread

HUGE = 256 * 1024 * 1024


def sender(client: httpx.AsyncClient, *, timeout: float) -> CallbackSender:
    return CallbackSender(
        client, secret=b"k" * 32, allow_private=True, timeout=timeout, backoff=0.01
    )


async def test_a_huge_answer_is_not_read() -> None:
    """Only the status is used: the body is streamed and dropped after a few KiB."""
    with HostileReceiver("huge", size=HUGE) as receiver:
        async with callback_client() as client:
            outcome = await sender(client, timeout=30).send(receiver.url, {"job_id": "j"})
        assert outcome == "delivered (200)"
        receiver.wait_for("cut_off", 1)  # the receiver saw us hang up...
        # ...long before the end: what it wrote is what loopback socket buffers hold, not 256 MiB.
        assert receiver.answers_done == 0
        assert receiver.bytes_sent < 32 * 1024 * 1024, receiver.bytes_sent
    assert MAX_ANSWER_BYTES <= 64 * 1024


async def test_a_receiver_answering_a_byte_at_a_time_is_cut_off_at_the_deadline() -> None:
    """`CALLBACK_TIMEOUT` bounds a whole attempt, not each read: headers that trickle in for
    longer fail the attempt, and the delivery gives up after three."""
    with HostileReceiver("slow_headers", size=400, interval=0.05) as receiver:
        async with callback_client() as client:
            outcome = await sender(client, timeout=1.0).send(receiver.url, {"job_id": "j"})
        assert outcome == "failed after 3 attempts: no answer within 1 s"
        assert receiver.connections == 3
        receiver.wait_for("cut_off", 3)
        assert receiver.answers_done == 0


async def test_a_status_followed_by_a_trickling_body_counts_as_delivered() -> None:
    with HostileReceiver("slow_body", size=400, interval=0.05) as receiver:
        async with callback_client() as client:
            outcome = await sender(client, timeout=2.0).send(receiver.url, {"job_id": "j"})
        assert outcome == "delivered (200)"
        assert receiver.connections == 1


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def one_slot_service(
    request: pytest.FixtureRequest,
    make_settings: SettingsFactory,
    sandbox_url: str,
    tmp_path: Path,
) -> Iterator[str]:
    """The service with room for one archive at a time (its own arq worker with Redis), and
    callbacks allowed a minute per attempt."""
    overrides: dict[str, Any] = {**FAST_JOBS, "job_concurrency": 1, "callback_timeout": 60.0}
    worker = None
    if request.param == "redis":
        url = request.getfixturevalue("redis_url") + "/2"
        store = tmp_path / "store"
        overrides.update(redis_url=url, archive_store=str(store))
        env = job_env(sandbox_url, tmp_path / "worker", **overrides)
        worker = start_worker(env, tmp_path / "worker.log")
    try:
        with UvicornThread(create_app(make_settings(**overrides))) as server:
            yield server.url
    finally:
        if worker is not None:
            stop(worker)


def test_a_held_callback_does_not_hold_the_job_slot(
    one_slot_service: str, sandbox: httpx.Client
) -> None:
    first = create_order(sandbox, images=1)
    second = create_order(sandbox, images=1)
    with (
        HostileReceiver("slow_headers", size=2400, interval=0.05) as receiver,
        httpx.Client(base_url=one_slot_service, timeout=30) as client,
    ):
        held = client.post(
            f"/orders/{first['order_id']}/jobs", params={"callback_url": receiver.url}
        ).json()
        receiver.wait_for("connections", 1)  # its callback is being answered, slowly
        after = client.post(f"/orders/{second['order_id']}/jobs").json()
        # The only job slot is free although the first job's receiver still holds its callback.
        status = wait_state(client, after["status_url"], timeout=30)
        assert status["state"] == "complete"
        assert receiver.answers_done == 0
        assert client.get(held["status_url"]).json()["callback"] is None
        receiver.release.set()
        receiver.wait_for("answers_done", 1)
        outcome = wait_callback(client, held["status_url"])
    assert outcome == "delivered (204)"


def wait_callback(client: httpx.Client, status_url: str, timeout: float = 30.0) -> str:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        outcome = client.get(status_url).json()["callback"]
        if outcome is not None:
            return str(outcome)
        time.sleep(0.05)
    raise AssertionError("the callback outcome was never recorded")
