"""A delivery from link to proof, on a real uvicorn server, the standalone sandbox and real
curl: create → open → a download broken and resumed with `curl -C -` → `delivered`, with
exactly one `delivery.completed` callback. Both stores (SQLite, Redis)."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import subprocess
import zipfile
from pathlib import Path

import httpx

from app.core.keys import service_keys
from app.jobs.callbacks import job_callback_key
from tests.deliveries.conftest import Photographer
from tests.deliveries.support import events_of, wait_until
from tests.integration.resume_support import broken_download
from tests.jobs.receivers import Receiver
from tests.support import require_tool


def test_a_delivery_broken_and_resumed_with_curl_is_delivered_once(
    photographer: Photographer, receiver: tuple[Receiver, str], tmp_path: Path
) -> None:
    hook, hook_url = receiver
    # Larger than what loopback's socket buffers hold, so the break is a break.
    order = photographer.order(images=4, image_bytes=4_000_000)
    created = photographer.deliver(order["order_id"], callback_url=hook_url, message="Enjoy!")
    link = created["url"]
    assert created["status"] == "sent"
    assert link.startswith(photographer.url + "/d/")

    page = httpx.get(link)
    assert page.status_code == 200
    assert "delivery.js" in page.text
    assert photographer.status(created["delivery_id"])["status"] == "opened"
    wait_until(lambda: events_of(hook) == ["delivery.opened"], what="the opened callback")

    target = tmp_path / "photos.zip"
    # Past the first 1 MiB chunk: a chunk counts once the server asks for the next, and a
    # client that leaves inside the first may leave before its send returned.
    target.write_bytes(broken_download(link + "/archive", 3_000_000))
    wait_until(
        lambda: photographer.status(created["delivery_id"])["archives"][0]["bytes_served"],
        what="the broken download's bytes recorded",
    )
    assert photographer.status(created["delivery_id"])["status"] == "downloading"
    assert photographer.status(created["delivery_id"])["archives"][0]["complete"] is False

    result = subprocess.run(
        [require_tool("curl"), "-sS", "-f", "-C", "-", "-o", str(target), link + "/archive"],
        capture_output=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr.decode()[-1000:]
    data = target.read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        assert len([n for n in archive.namelist() if n.lower().endswith(".jpg")]) == 4
    # The same bytes the photographer gets for the order at full quality.
    own = httpx.get(
        f"{photographer.url}/orders/{order['order_id']}/images?preview=false",
        headers=photographer.headers,
        timeout=120,
    )
    assert own.content == data
    status = wait_until(
        lambda: (s := photographer.status(created["delivery_id"]))["status"] == "delivered" and s,
        what="delivered",
    )
    assert status["delivered"]["bytes"] == len(data)
    assert status["delivered"]["variant"] == "print"
    assert status["delivered"]["etag"] == own.headers["etag"]
    assert status["downloads_used"] == 1  # the resume did not count
    kinds = [event["kind"] for event in status["events"]]
    assert kinds[0] == "archive_completed"
    assert {"opened", "archive_started", "archive_resumed"} <= set(kinds)

    wait_until(lambda: len(hook.received) == 2, what="the completed callback")
    wait_until(
        lambda: (
            "delivery.completed: delivered"
            in (photographer.status(created["delivery_id"])["callback"] or "")
        ),
        what="the callback's outcome",
    )
    assert events_of(hook) == ["delivery.opened", "delivery.completed"]
    headers, body = hook.received[1]
    payload = json.loads(body)
    assert payload["delivered"]["bytes"] == len(data)
    assert payload["status"] == "delivered"
    stamp, _, digest = headers["x-signature"].partition(",v1=")
    secret = created["callback_secret"].encode()
    assert secret == job_callback_key(
        service_keys(photographer.settings).callbacks, created["delivery_id"]
    )
    expected = hmac.new(secret, stamp[2:].encode() + b"." + body, hashlib.sha256).hexdigest()
    assert digest == expected


def test_the_photographer_lists_an_orders_deliveries(photographer: Photographer) -> None:
    order = photographer.order(images=2)
    first = photographer.deliver(order["order_id"], recipient="Agent A")
    second = photographer.deliver(order["order_id"], recipient="Agent B", pin="4321")

    listed = httpx.get(
        f"{photographer.url}/orders/{order['order_id']}/deliveries", headers=photographer.headers
    )
    other = httpx.get(
        f"{photographer.url}/orders/{order['order_id']}/deliveries",
        headers={"X-Autoenhance-Key": "someone-else-entirely"},
    )

    assert listed.status_code == 200
    found = listed.json()["deliveries"]
    assert [d["delivery_id"] for d in found] == [first["delivery_id"], second["delivery_id"]]
    assert [d["pin"] for d in found] == [False, True]
    assert other.json()["deliveries"] == []
    assert "url" not in found[0]  # the link is shown once, at creation
    hidden = httpx.get(
        f"{photographer.url}/deliveries/{first['delivery_id']}",
        headers={"X-Autoenhance-Key": "someone-else-entirely"},
    )
    assert hidden.status_code == 404
    assert hidden.json()["error"] == "unknown_delivery"
