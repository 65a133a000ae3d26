"""The rules of a delivery link, on a real server and both stores: PIN (wrong, right,
lock-out), expiry and revocation (410 at once), `max_downloads` with a resume still allowed,
locked → unlock, and a recipient who tries to reach more than their delivery."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime, timedelta

import httpx
from PIL import Image

from tests.deliveries.conftest import Photographer
from tests.deliveries.support import wait_until
from tests.integration.resume_support import broken_download


def kinds(photographer: Photographer, delivery_id: str) -> list[str]:
    return [e["kind"] for e in photographer.status(delivery_id)["events"]]


def test_a_pin_is_asked_checked_and_locks_out_after_failures(photographer: Photographer) -> None:
    order = photographer.order(images=2)
    created = photographer.deliver(order["order_id"], pin="2468")
    link = created["url"]
    attempts = photographer.settings.delivery_pin_attempts
    with httpx.Client() as recipient:
        assert recipient.get(link).status_code == 200  # the page asks for the PIN itself
        needed = recipient.get(link + "/details")
        assert needed.status_code == 401
        assert needed.json()["error"] == "pin_required"
        assert recipient.get(link + "/archive").status_code == 401
        image_id = order["images"][0]["image_id"]
        assert recipient.get(f"{link}/images/{image_id}").status_code == 401

        wrong = recipient.post(link + "/pin", json={"pin": "1111"})
        assert wrong.status_code == 401
        assert wrong.json()["error"] == "wrong_pin"
        assert "set-cookie" not in wrong.headers

        right = recipient.post(link + "/pin", json={"pin": "2468"})
        assert right.status_code == 200
        cookie = right.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert f"path=/d/{link.rsplit('/', 1)[1].lower()}" in cookie
        details = recipient.get(link + "/details")
        assert details.status_code == 200
        assert [i["image_id"] for i in details.json()["images"]] == [
            i["image_id"] for i in order["images"]
        ]
        assert recipient.get(link + "/archive").status_code == 200

    with httpx.Client() as stranger:  # a form post, as a page without script sends it
        for _ in range(attempts - 1):
            assert stranger.post(link + "/pin", data={"pin": "0000"}).status_code == 401
        locked = stranger.post(link + "/pin", data={"pin": "0000"})
        assert locked.status_code == 429
        assert int(locked.headers["retry-after"]) > 0
        # Locked out: even the right PIN is refused for a while.
        assert stranger.post(link + "/pin", data={"pin": "2468"}).status_code == 429
    events = kinds(photographer, created["delivery_id"])
    assert events.count("pin_failed") == attempts + 1
    assert events[0] == "pin_locked"


def test_a_right_pin_by_form_goes_back_to_the_page(photographer: Photographer) -> None:
    created = photographer.deliver(photographer.order(images=1)["order_id"], pin="97531")
    answer = httpx.post(created["url"] + "/pin", data={"pin": "97531"})
    assert answer.status_code == 303
    assert answer.headers["location"] == created["url"].removeprefix(photographer.url)


def test_revocation_and_expiry_answer_410_at_once(photographer: Photographer) -> None:
    order = photographer.order(images=1)
    revoked = photographer.deliver(order["order_id"])
    soon = datetime.now(UTC) + timedelta(seconds=2)
    expiring = photographer.deliver(order["order_id"], expires_at=soon.isoformat())
    assert httpx.get(revoked["url"] + "/details").status_code == 200

    gone = httpx.delete(
        f"{photographer.url}/deliveries/{revoked['delivery_id']}", headers=photographer.headers
    )
    assert gone.status_code == 200
    assert gone.json()["status"] == "revoked"

    page = httpx.get(revoked["url"])
    assert page.status_code == 410
    assert page.headers["content-type"].startswith("text/html")
    assert "withdrawn" in page.text
    for route in ("/details", "/archive", "/images/x"):
        answer = httpx.get(revoked["url"] + route)
        assert answer.status_code == 410, route
        assert answer.json()["error"] == "delivery_gone"
    assert httpx.post(revoked["url"] + "/pin", json={"pin": "1234"}).status_code == 410

    wait_until(lambda: httpx.get(expiring["url"]).status_code == 410, what="expiry")
    assert httpx.get(expiring["url"] + "/archive").json()["error"] == "delivery_gone"
    assert photographer.status(expiring["delivery_id"])["status"] == "expired"


def test_max_downloads_refuses_a_new_download_but_not_a_resume(
    photographer: Photographer,
) -> None:
    # Larger than what loopback's socket buffers hold, so the break is a break.
    order = photographer.order(images=6, image_bytes=3_000_000)
    created = photographer.deliver(order["order_id"], max_downloads=1)
    archive = created["url"] + "/archive"
    first = broken_download(archive, 300_000)
    wait_until(
        lambda: photographer.status(created["delivery_id"])["archives"][0]["bytes_served"],
        what="the broken download recorded",
    )

    refused = httpx.get(archive)
    assert refused.status_code == 403
    assert refused.json()["error"] == "download_limit"
    resumed = httpx.get(archive, headers={"Range": f"bytes={len(first)}-"}, timeout=120)
    assert resumed.status_code == 206
    whole = first + resumed.content
    details = httpx.get(created["url"] + "/details").json()
    assert details["state"] == "limit_reached"
    status = wait_until(
        lambda: (s := photographer.status(created["delivery_id"]))["status"] == "delivered" and s,
        what="delivered",
    )
    assert status["delivered"]["bytes"] == len(whole)
    assert status["downloads_used"] == 1
    # Bytes written to a connection can still be lost with it: a resume stays possible.
    again = httpx.get(archive, headers={"Range": f"bytes={len(whole) - 10}-"})
    assert again.status_code == 206
    assert again.content == whole[-10:]
    assert httpx.get(archive, headers={"Range": "bytes=0-"}).status_code == 403
    assert "download_refused" in kinds(photographer, created["delivery_id"])


def test_a_locked_delivery_shows_watermarked_previews_until_unlocked(
    photographer: Photographer,
) -> None:
    order = photographer.order(images=1)
    created = photographer.deliver(order["order_id"], locked=True)
    image = f"{created['url']}/images/{order['images'][0]['image_id']}"
    refused = httpx.get(created["url"] + "/archive")
    assert refused.status_code == 403
    assert refused.json()["error"] == "delivery_locked"
    assert httpx.get(created["url"] + "/details").json()["state"] == "locked"
    marked = httpx.get(image, timeout=30)
    assert marked.status_code == 200
    assert marked.headers["content-type"] == "image/jpeg"
    assert "no-store" in marked.headers["cache-control"]

    changed = httpx.patch(
        f"{photographer.url}/deliveries/{created['delivery_id']}",
        json={"locked": False},
        headers=photographer.headers,
    )

    assert changed.status_code == 200
    assert changed.json()["locked"] is False
    clean = httpx.get(image, timeout=30)
    assert clean.status_code == 200
    assert httpx.get(created["url"] + "/archive", timeout=60).status_code == 200
    # The watermark changed the picture: same size, different pixels.
    with Image.open(io.BytesIO(marked.content)) as a, Image.open(io.BytesIO(clean.content)) as b:
        assert a.size == b.size
        difference = sum(
            abs(p - q)
            for p, q in zip(a.convert("L").tobytes(), b.convert("L").tobytes(), strict=True)
        )
        assert difference / (a.width * a.height) > 2


def test_a_recipient_reaches_nothing_but_their_delivery(photographer: Photographer) -> None:
    order = photographer.order(images=3)
    other = photographer.order(images=1)
    ids = [image["image_id"] for image in order["images"]]
    created = photographer.deliver(order["order_id"], images=ids[:2])
    link = created["url"]

    assert httpx.get(f"{link}/archive?variant=mls").status_code == 403
    assert httpx.get(f"{link}/archive?images={ids[2]}").status_code == 403
    foreign = other["images"][0]["image_id"]
    assert httpx.get(f"{link}/archive?images={foreign}").status_code == 403
    assert httpx.get(f"{link}/images/{ids[2]}").status_code == 404
    assert httpx.get(f"{link}/images/{foreign}").status_code == 404
    assert httpx.get(f"{link}/images/..%2f..%2forders").status_code in (400, 404)
    # The link is no credential anywhere else.
    assert httpx.get(f"{photographer.url}/orders/{other['order_id']}/images").status_code in (
        401,
        404,
    )
    assert httpx.get(f"{photographer.url}/deliveries/{created['delivery_id']}").status_code in (
        401,
        403,
    )
    assert httpx.get(f"{photographer.url}/d/{'A' * 32}").status_code == 404
    assert httpx.get(f"{photographer.url}/d/{'A' * 32}/archive").json()["error"] == "unknown_link"

    chosen = httpx.get(f"{link}/archive?images={ids[1]}", timeout=60)
    assert chosen.status_code == 200
    assert chosen.headers["x-total-images"] == "1"
    whole = httpx.get(f"{link}/archive", timeout=60)
    assert whole.headers["x-total-images"] == "2"


def test_the_photographer_is_refused_bad_deliveries(photographer: Photographer) -> None:
    order = photographer.order(images=1)
    url = f"{photographer.url}/orders/{order['order_id']}/deliveries"
    cases = {
        "unknown_variant": {"recipient": "A", "variants": ["print", "billboard"]},
        "invalid_expiry": {
            "recipient": "A",
            "expires_at": datetime.fromtimestamp(time.time() + 10 * 365 * 86400, UTC).isoformat(),
        },
        "unknown_images": {"recipient": "A", "images": ["not-in-this-order"]},
        "invalid_callback_url": {"recipient": "A", "callback_url": "ftp://example.com/x"},
        "validation_error": {"recipient": "A", "pin": "12"},
    }
    for code, body in cases.items():
        answer = httpx.post(url, json=body, headers=photographer.headers, timeout=30)
        assert answer.status_code == 422, (code, answer.text)
        assert answer.json()["error"] == code, answer.text
    unknown = httpx.post(url, json=cases["unknown_variant"], headers=photographer.headers)
    assert unknown.json()["detail"]["variant"] == "billboard"
    nobody = httpx.post(url, json={"recipient": "A"})
    assert nobody.status_code in (401, 403)


def test_a_delivery_archive_is_pinned_to_its_version(photographer: Photographer) -> None:
    order = photographer.order(images=3)
    created = photographer.deliver(order["order_id"])
    archive = created["url"] + "/archive"
    first = httpx.get(archive, timeout=60)
    assert first.status_code == 200
    pinned = first.headers["content-location"]
    assert "version=" in pinned
    base = created["url"].split("/d/", 1)[0]
    resumed = httpx.get(base + pinned, headers={"Range": "bytes=100-"}, timeout=60)
    assert resumed.status_code == 206
    assert resumed.content == first.content[100:]

    image = order["images"][0]["image_id"]
    changed = photographer.sandbox.post(
        f"/_sandbox/images/{image}/status", json={"status": "error"}
    )
    changed.raise_for_status()

    for answer in (
        httpx.get(base + pinned, headers={"Range": "bytes=100-"}),
        httpx.get(base + pinned),
    ):
        assert answer.status_code == 410
        assert answer.json()["error"] == "archive_version_gone"
        current = answer.json()["detail"]["current_url"]
    assert current != pinned
    assert httpx.get(base + current, timeout=60).status_code == 200
