"""A hostile upstream serving a decompression bomb as a thumbnail's preview, on real sockets.

The bomb (`tests.integration.bombs.progressive_bomb`) passes the thumbnail's byte and pixel
bounds and costs tens of seconds of CPU to decode. The decoding policy refuses it by its
scan count before decoding; with the scan cap lifted, its deadline stops it; a client that
leaves abandons it. Outcomes are read from the decode counters of `/metrics`' registry.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import REGISTRY

from app.main import create_app
from tests.conftest import SettingsFactory
from tests.integration.bombs import progressive_bomb
from tests.integration.hostile_upstream import HostileUpstream, image_answer
from tests.support import UvicornThread

STAMP = "2025-07-05T09:30:00Z"
# More than the default thread pool's 40 threads: the number that held /health before.
AT_ONCE = 45


@pytest.fixture
def hostile() -> Iterator[HostileUpstream]:
    with HostileUpstream() as upstream:
        yield upstream


def bomb_order(hostile: HostileUpstream, images: int = 1) -> tuple[str, list[str]]:
    order_id = str(uuid.uuid4())
    image_ids = [f"bomb-{index}-{uuid.uuid4().hex[:8]}" for index in range(images)]
    hostile.orders[order_id] = {
        "order_id": order_id,
        "name": "Harbour View",
        "created_at": STAMP,
        "last_updated_at": STAMP,
        "images": [
            {"image_id": image_id, "image_name": f"room {n}", "status": "processed"}
            for n, image_id in enumerate(image_ids)
        ],
    }
    for image_id in image_ids:
        hostile.images[image_id] = image_answer(progressive_bomb())
    return order_id, image_ids


def decodes(outcome: str) -> float:
    return REGISTRY.get_sample_value("image_decodes_total", {"outcome": outcome}) or 0.0


def thumb(order_id: str, image_id: str) -> str:
    return f"/orders/{order_id}/images/{image_id}/thumbnail"


def test_a_scan_bomb_is_refused_before_it_is_decoded(
    make_settings: SettingsFactory, hostile: HostileUpstream
) -> None:
    order_id, (image_id,) = bomb_order(hostile)
    refused_before = decodes("scans")
    settings = make_settings(autoenhance_api_base=hostile.url, upstream_retries=0)
    with UvicornThread(create_app(settings)) as server:
        response = httpx.get(server.url + thumb(order_id, image_id), timeout=60)
    assert response.status_code == 502
    assert response.json()["error"] == "bad_preview"
    assert "more than 100 progressive scans" in response.json()["detail"]
    assert decodes("scans") == refused_before + 1


@pytest.mark.timeout(240)
def test_many_bombs_at_once_are_all_refused_and_health_keeps_answering(
    make_settings: SettingsFactory, hostile: HostileUpstream
) -> None:
    """Before the decoding policy, these held every thread of the shared pool for minutes,
    and /health (whose dependencies run there) with them: the test ran into its timeout."""
    order_id, image_ids = bomb_order(hostile, images=AT_ONCE)
    refused_before = decodes("scans")
    settings = make_settings(autoenhance_api_base=hostile.url, upstream_retries=0)

    async def storm(base: str) -> tuple[list[httpx.Response], httpx.Response]:
        async with httpx.AsyncClient(base_url=base, timeout=200) as client:
            thumbs = [asyncio.ensure_future(client.get(thumb(order_id, i))) for i in image_ids]
            health = await client.get("/health")
            return list(await asyncio.gather(*thumbs)), health

    with UvicornThread(create_app(settings)) as server:
        answers, health = asyncio.run(storm(server.url))
    assert health.status_code == 200
    assert [a.status_code for a in answers] == [502] * AT_ONCE
    assert {a.json()["error"] for a in answers} == {"bad_preview"}
    assert decodes("scans") == refused_before + AT_ONCE


def test_past_the_scan_cap_the_deadline_stops_the_decode(
    make_settings: SettingsFactory, hostile: HostileUpstream
) -> None:
    order_id, (image_id,) = bomb_order(hostile)
    stopped_before = decodes("deadline")
    settings = make_settings(
        autoenhance_api_base=hostile.url,
        upstream_retries=0,
        decode_max_scans=1_000_000,
        decode_deadline=0.5,
    )
    with UvicornThread(create_app(settings)) as server:
        response = httpx.get(server.url + thumb(order_id, image_id), timeout=120)
    assert response.status_code == 502
    assert response.json()["error"] == "bad_preview"
    assert "decoding took longer than 0.5 s" in response.json()["detail"]
    assert decodes("deadline") == stopped_before + 1


def test_a_full_decode_queue_answers_busy(
    make_settings: SettingsFactory, hostile: HostileUpstream
) -> None:
    """One worker, no queue: of bombs asked at once, one is decoded (until its deadline) and
    the others are refused at once with 503 and Retry-After, without waiting."""
    order_id, image_ids = bomb_order(hostile, images=4)
    settings = make_settings(
        autoenhance_api_base=hostile.url,
        upstream_retries=0,
        decode_max_scans=1_000_000,
        decode_deadline=3.0,
        decode_workers=1,
        decode_queue=0,
    )

    async def together(base: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=base, timeout=120) as client:
            return list(await asyncio.gather(*(client.get(thumb(order_id, i)) for i in image_ids)))

    with UvicornThread(create_app(settings)) as server:
        answers = asyncio.run(together(server.url))
    statuses = sorted(answer.status_code for answer in answers)
    assert 502 in statuses
    assert 503 in statuses
    busy = next(answer for answer in answers if answer.status_code == 503)
    assert busy.json()["error"] == "decoder_busy"
    assert int(busy.headers["retry-after"]) >= 1


def test_a_client_that_leaves_abandons_its_decode(
    make_settings: SettingsFactory, hostile: HostileUpstream
) -> None:
    """With the scan cap lifted and a long deadline the bomb would decode for tens of
    seconds; its client leaves after one, and the decode is abandoned, not finished."""
    order_id, (image_id,) = bomb_order(hostile)
    abandoned_before, finished_before = decodes("abandoned"), decodes("ok")
    settings = make_settings(
        autoenhance_api_base=hostile.url,
        upstream_retries=0,
        decode_max_scans=1_000_000,
        decode_deadline=600,
    )
    with UvicornThread(create_app(settings)) as server:
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(server.url + thumb(order_id, image_id), timeout=httpx.Timeout(30, read=1))
        deadline = time.monotonic() + 120
        while decodes("abandoned") == abandoned_before and decodes("ok") == finished_before:
            assert time.monotonic() < deadline, "the decode neither stopped nor finished"
            time.sleep(0.05)
    assert decodes("abandoned") == abandoned_before + 1
    assert decodes("ok") == finished_before
