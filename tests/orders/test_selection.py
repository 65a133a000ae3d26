"""`?images=` on downloads, HEAD, download links and jobs: just those images, checked first."""

from __future__ import annotations

import io
import zipfile

import httpx
import pytest

from app.archive.plan import REPORT_NAME
from app.upstream.options import MAX_SELECTED_IMAGES
from tests.jobs.support import wait_state
from tests.orders.conftest import ServiceFactory, synthetic_order, unique_key
from tests.support import SandboxControl, UvicornThread

NAMES = ["kitchen", "hall", "garden", "bath", "bedroom"]


def entries(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        return {info.filename: archive.read(info) for info in archive.infolist()}


def names_in(data: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return archive.namelist()


def fetched_images(sandbox: SandboxControl, order: dict) -> list[str]:
    ours = {image["image_id"] for image in order["images"]}
    entries = sandbox.log()
    return [e["image_id"] for e in entries if e["route"] != "order" and e["image_id"] in ours]


@pytest.fixture
def order(sandbox: SandboxControl) -> dict:
    # Distinct sizes, so every entry's bytes tell which image it is.
    made = synthetic_order(sandbox, images=5, names=NAMES, image_bytes=3000)
    return made


def ids(order: dict, *indexes: int) -> str:
    return ",".join(order["images"][i]["image_id"] for i in indexes)


def test_the_archive_holds_exactly_the_selection_in_the_orders_order(
    service: UvicornThread, order: dict
) -> None:
    url = f"{service.url}/orders/{order['order_id']}/images"
    full = httpx.get(url, timeout=30)
    assert names_in(full.content) == [f"{n}.jpg" for n in NAMES]
    chosen = httpx.get(url, params={"images": ids(order, 3, 1)}, timeout=30)
    assert chosen.status_code == 200
    assert chosen.headers["x-total-images"] == "2"
    assert names_in(chosen.content) == ["hall.jpg", "bath.jpg"]
    whole = entries(full.content)
    assert entries(chosen.content) == {"hall.jpg": whole["hall.jpg"], "bath.jpg": whole["bath.jpg"]}
    # Deterministic: streamed, built first, and served from the cache, the bytes are the same.
    again = httpx.get(url, params={"images": ids(order, 1, 3), "stream": "false"}, timeout=30)
    assert again.content == chosen.content
    cached = httpx.get(url, params={"images": ids(order, 3, 1)}, timeout=30)
    assert cached.content == chosen.content
    assert "etag" in cached.headers
    full_cached = httpx.get(url, timeout=30)
    assert full_cached.headers["etag"] != cached.headers["etag"]


def test_a_selection_with_an_image_not_ready_carries_the_report(
    service: UvicornThread, sandbox: SandboxControl
) -> None:
    order = synthetic_order(sandbox, images=3, names=["a", "b", "c"], statuses={2: "error"})
    url = f"{service.url}/orders/{order['order_id']}/images"
    response = httpx.get(url, params={"images": ids(order, 2, 0)}, timeout=30)
    got = entries(response.content)
    assert list(got) == ["a.jpg", REPORT_NAME]
    report = got[REPORT_NAME].decode()
    assert "1 of 2 images are in this archive." in report
    assert order["images"][2]["image_id"] in report
    assert order["images"][1]["image_id"] not in report


def test_the_summary_describes_the_selection(service: UvicornThread, order: dict) -> None:
    summary = httpx.get(
        f"{service.url}/orders/{order['order_id']}", params={"images": ids(order, 4, 0)}
    ).json()
    assert [i["entry_name"] for i in summary["images"]] == ["kitchen.jpg", "bedroom.jpg"]
    assert summary["image_count"] == 2


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_an_image_not_in_the_order_is_a_422_naming_it_before_any_fetch(
    service: UvicornThread, sandbox: SandboxControl, order: dict, method: str
) -> None:
    stranger = synthetic_order(sandbox, images=1)["images"][0]["image_id"]
    response = httpx.request(
        method,
        f"{service.url}/orders/{order['order_id']}/images",
        params={"images": f"{order['images'][0]['image_id']},{stranger}"},
    )
    assert response.status_code == 422
    if method == "GET":
        body = response.json()
        assert body["error"] == "unknown_images"
        assert body["detail"]["image_ids"] == [stranger]
        assert stranger in body["detail"]["message"]
    assert fetched_images(sandbox, order) == []


@pytest.mark.parametrize(
    "value",
    [
        "",
        ",, ,",
        "-bad",
        "a/b",
        "x" * 101,
        ",".join(f"id{i}" for i in range(MAX_SELECTED_IMAGES + 1)),
        "a." * 27_000,  # longer than any valid selection
    ],
    ids=["empty", "only-commas", "leading-dash", "slash", "too-long-id", "too-many", "huge"],
)
def test_a_malformed_selection_is_a_422(
    service: UvicornThread, sandbox: SandboxControl, order: dict, value: str
) -> None:
    url = f"{service.url}/orders/{order['order_id']}/images"
    response = httpx.get(url, params={"images": value})
    assert response.status_code == 422, response.text
    assert response.json()["error"] in {"invalid_selection", "validation_error"}
    assert fetched_images(sandbox, order) == []


def test_the_head_of_a_selection_fetches_nothing(
    service: UvicornThread, sandbox: SandboxControl, order: dict
) -> None:
    response = httpx.head(
        f"{service.url}/orders/{order['order_id']}/images", params={"images": ids(order, 0, 2)}
    )
    assert response.status_code == 200
    assert response.headers["x-total-images"] == "2"
    assert fetched_images(sandbox, order) == []


def test_a_download_link_carries_the_selection(service: UvicornThread, order: dict) -> None:
    link_url = f"{service.url}/orders/{order['order_id']}/download-link"
    chosen = [order["images"][2]["image_id"], order["images"][0]["image_id"]]
    link = httpx.post(link_url, json={"images": chosen})
    assert link.status_code == 200, link.text
    archive = httpx.get(service.url + link.json()["url"], timeout=30)
    assert names_in(archive.content) == ["kitchen.jpg", "garden.jpg"]
    from_query = httpx.post(link_url, params={"images": ",".join(chosen)})
    assert from_query.status_code == 200
    assert "images=" in from_query.json()["url"]

    unknown = httpx.post(link_url, json={"images": ["not-in-this-order"]})
    assert unknown.status_code == 422
    assert unknown.json()["detail"]["image_ids"] == ["not-in-this-order"]
    empty = httpx.post(link_url, json={"images": []})
    assert empty.status_code == 422
    assert empty.json()["error"] == "validation_error"
    assert httpx.post(link_url, json={"images": ["ok", 7]}).status_code == 422


def test_a_job_builds_just_the_selection(service: UvicornThread, order: dict) -> None:
    jobs_url = f"{service.url}/orders/{order['order_id']}/jobs"
    refused = httpx.post(jobs_url, params={"images": "not-in-this-order"})
    assert refused.status_code == 422
    assert refused.json()["error"] == "unknown_images"
    with httpx.Client(base_url=service.url, timeout=30) as client:
        created = client.post(jobs_url, params={"images": ids(order, 4, 2)})
        assert created.status_code == 202, created.text
        status = wait_state(client, created.json()["status_url"])
        assert status["state"] == "complete", status
        archive = client.get(created.json()["download_url"])
    assert names_in(archive.content) == ["garden.jpg", "bedroom.jpg"]


def test_a_job_whose_selected_image_left_the_order_fails_with_the_reason(
    live_service: ServiceFactory, sandbox: SandboxControl, sandbox_url: str
) -> None:
    key = unique_key("job-selection")
    order = synthetic_order(sandbox, images=2, api_key=key, statuses={1: "processing"})
    chosen, pending = order["images"][0]["image_id"], order["images"][1]["image_id"]
    headers = {"X-Autoenhance-Key": key}
    with (
        live_service(sandbox_url, job_wait_poll_min=0.05, job_wait_poll_max=0.1) as server,
        httpx.Client(base_url=server.url, headers=headers, timeout=30) as client,
    ):
        created = client.post(
            f"/orders/{order['order_id']}/jobs", params={"images": chosen, "wait": "true"}
        )
        assert created.status_code == 202, created.text
        wait_state(client, created.json()["status_url"], until={"waiting"})
        httpx.delete(f"{sandbox_url}/images/{chosen}", headers={"x-api-key": key})
        sandbox.post(f"/_sandbox/images/{pending}/status", json={"status": "processed"})
        status = wait_state(client, created.json()["status_url"])
    assert status["state"] == "failed"
    assert chosen in status["reason"]


def test_a_job_with_a_selection_on_an_empty_order_is_refused(
    service: UvicornThread, sandbox: SandboxControl
) -> None:
    order = synthetic_order(sandbox, images=0)
    response = httpx.post(
        f"{service.url}/orders/{order['order_id']}/jobs",
        params={"images": "some-image", "wait": "true"},
    )
    assert response.status_code == 422
    assert response.json()["detail"]["image_ids"] == ["some-image"]
