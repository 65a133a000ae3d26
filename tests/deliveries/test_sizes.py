"""`HEAD /d/{token}/archive` and the sizes the recipient's page shows, on a real uvicorn server
and the standalone sandbox, on both stores: a HEAD gets the headers (or the refusal) a GET
would get and counts as nothing; "Download all" shows the size of the whole archive as soon
as it is known without fetching a photo, and never the size of a selection's archive."""

from __future__ import annotations

from typing import Any

import httpx

from tests.deliveries.conftest import Photographer
from tests.deliveries.support import wait_until


def _variant_bytes(link: str) -> int | None:
    details = httpx.get(f"{link}/details", timeout=30)
    assert details.status_code == 200, details.text
    offers: list[dict[str, Any]] = details.json()["variants"]
    assert [offer["name"] for offer in offers] == ["print"]
    size: int | None = offers[0]["bytes"]
    return size


def test_a_head_gets_the_headers_of_a_get_and_counts_nothing(
    photographer: Photographer,
) -> None:
    order = photographer.order(images=2)
    limited = photographer.deliver(order["order_id"], max_downloads=1)
    other = photographer.deliver(order["order_id"], recipient="Sam Agent")
    archive = limited["url"] + "/archive"

    before = httpx.head(archive, timeout=60)
    assert before.status_code == 200
    assert before.headers["content-type"] == "application/zip"
    assert before.headers["x-total-images"] == "2"
    assert "attachment" in before.headers["content-disposition"]
    assert before.content == b""
    untouched = photographer.status(limited["delivery_id"])
    assert untouched["status"] == "sent"  # a HEAD does not even open the link
    assert untouched["downloads_used"] == 0
    assert untouched["events"] == []

    got = httpx.get(archive, timeout=120)
    assert got.status_code == 200
    assert got.headers["etag"] == before.headers["etag"]
    wait_until(
        lambda: photographer.status(limited["delivery_id"])["status"] == "delivered",
        what="delivered",
    )
    counted = photographer.status(limited["delivery_id"])

    # The limit is used: a HEAD gets the GET's refusal, but a resume's range is still fine.
    assert httpx.head(archive, timeout=60).status_code == 403
    resumed = httpx.head(archive, headers={"Range": "bytes=100-"}, timeout=60)
    assert resumed.status_code == 206
    assert (
        resumed.headers["content-range"] == f"bytes 100-{len(got.content) - 1}/{len(got.content)}"
    )
    after = photographer.status(limited["delivery_id"])
    assert after["downloads_used"] == counted["downloads_used"] == 1
    assert after["events"] == counted["events"]
    assert after["archives"] == counted["archives"]

    # Another delivery of the same photos: the archive is cached, so its size is known before
    # this one served a byte, to a HEAD and on the page.
    size = wait_until(
        lambda: httpx.head(other["url"] + "/archive", timeout=60).headers.get("content-length"),
        what="the archive cached",
    )
    assert int(size) == len(got.content)
    assert _variant_bytes(other["url"]) == len(got.content)
    assert photographer.status(other["delivery_id"])["downloads_used"] == 0


def test_download_all_never_shows_the_size_of_a_selection(photographer: Photographer) -> None:
    order = photographer.order(images=3)
    created = photographer.deliver(order["order_id"])
    link = created["url"]
    first = order["images"][0]["image_id"]

    one = httpx.get(f"{link}/archive", params={"images": first}, timeout=120)
    assert one.status_code == 200
    wait_until(
        lambda: photographer.status(created["delivery_id"])["status"] == "delivered",
        what="the selection's archive served",
    )
    assert _variant_bytes(link) != len(one.content)

    whole = httpx.get(f"{link}/archive", timeout=120)
    assert whole.status_code == 200
    assert len(whole.content) > len(one.content)
    wait_until(lambda: _variant_bytes(link) == len(whole.content), what="the whole archive's size")
