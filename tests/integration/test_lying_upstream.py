"""A lying upstream, on a real socket: answers that are not the image, hostile ids and names,
and orders that change without saying so. The service runs under a real uvicorn server."""

from __future__ import annotations

import io
import uuid
import zipfile
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest
from PIL import Image

from app.main import create_app
from tests.conftest import SettingsFactory
from tests.integration.hostile_upstream import (
    Answer,
    HostileUpstream,
    image_answer,
    jpeg,
    json_answer,
)
from tests.support import UvicornThread

REPORT = "_download_report.txt"
STAMP = "2025-07-05T09:30:00Z"


@pytest.fixture
def hostile() -> Iterator[HostileUpstream]:
    with HostileUpstream() as upstream:
        yield upstream


@pytest.fixture
def service(make_settings: SettingsFactory, hostile: HostileUpstream) -> Iterator[UvicornThread]:
    settings = make_settings(autoenhance_api_base=hostile.url, upstream_retries=1)
    with UvicornThread(create_app(settings)) as server:
        yield server


def image(image_id: str, name: str, status: str = "processed", **extra: Any) -> dict[str, Any]:
    return {"image_id": image_id, "image_name": name, "status": status, **extra}


def add_order(
    hostile: HostileUpstream,
    images: list[dict[str, Any]],
    *,
    order_id: str | None = None,
    **extra: Any,
) -> str:
    order_id = order_id or str(uuid.uuid4())
    hostile.orders[order_id] = {
        "order_id": order_id,
        "name": "Harbour View",
        "created_at": STAMP,
        "last_updated_at": STAMP,
        "images": images,
        **extra,
    }
    return order_id


def download(service: UvicornThread, order_id: str, **params: str) -> httpx.Response:
    return httpx.get(f"{service.url}/orders/{order_id}/images", params=params, timeout=60)


def read_zip(response: httpx.Response) -> zipfile.ZipFile:
    assert response.status_code == 200, response.text
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.testzip() is None
    return archive


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 200, 10)).save(out, "PNG")
    return out.getvalue()


GOOD = jpeg(colour=(200, 40, 40))
OTHER = jpeg(colour=(40, 200, 40))

NOT_THE_IMAGE = {
    "202 with image bytes": Answer(status=202, body=OTHER),
    "204": Answer(status=204),
    "206 with half the image": Answer(
        status=206,
        body=OTHER[: len(OTHER) // 2],
        headers={"Content-Range": f"bytes 0-{len(OTHER) // 2 - 1}/{len(OTHER)}"},
    ),
    "300 without Location": Answer(status=300, body=OTHER),
    "304": Answer(status=304),
    "200 with an HTML page": Answer(
        body=b"<!DOCTYPE html><html><body>Redirecting...</body></html>",
        headers={"Content-Type": "image/jpeg"},
    ),
    "200 with a PNG when JPEG was asked": image_answer(png()),
    "200 with an empty body": image_answer(b""),
    "200 cut short without a length": image_answer(OTHER[: len(OTHER) // 2], length=False),
}


@pytest.mark.parametrize("answer", NOT_THE_IMAGE.values(), ids=NOT_THE_IMAGE.keys())
def test_answers_that_are_not_the_image_are_skipped_reported_and_not_cached(
    service: UvicornThread, hostile: HostileUpstream, answer: Answer
) -> None:
    order_id = add_order(hostile, [image("good", "front"), image("victim", "garden")])
    hostile.images["good"] = image_answer(GOOD)
    hostile.images["victim"] = answer

    first = read_zip(download(service, order_id))
    assert first.namelist() == ["front.jpg", REPORT]
    assert first.read("front.jpg") == GOOD
    report = first.read(REPORT).decode()
    assert "victim" in report
    assert "garden" in report
    assert "1 of 2 images are in this archive." in report

    # The upstream recovers: the archive with a gap was not cached, the next one is whole.
    hostile.images["victim"] = image_answer(OTHER)
    second = read_zip(download(service, order_id))
    assert second.namelist() == ["front.jpg", "garden.jpg"]
    assert second.read("garden.jpg") == OTHER


def test_a_body_cut_short_without_a_length_is_retried(
    service: UvicornThread, hostile: HostileUpstream
) -> None:
    order_id = add_order(hostile, [image("cut", "front")])
    hostile.images["cut"] = [image_answer(GOOD[:-100], length=False), image_answer(GOOD)]
    archive = read_zip(download(service, order_id))
    assert archive.namelist() == ["front.jpg"]
    assert archive.read("front.jpg") == GOOD


def test_formats_other_than_jpeg_are_checked_too(
    service: UvicornThread, hostile: HostileUpstream
) -> None:
    order_id = add_order(hostile, [image("png", "front"), image("jpeg", "back")])
    hostile.images["png"] = image_answer(png())
    hostile.images["jpeg"] = image_answer(GOOD)
    archive = read_zip(download(service, order_id, format="png"))
    assert archive.namelist() == ["front.png", REPORT]
    assert "not a PNG image but a JPEG image" in archive.read(REPORT).decode()


HOSTILE_IDS = ["../../orders/{order}", "x?preview=false&format=png", "a/b#c", "%2e%2e", "..", "."]


def test_hostile_image_ids_stay_inside_their_path_segment(
    service: UvicornThread, hostile: HostileUpstream
) -> None:
    order_id = str(uuid.uuid4())
    ids = [raw.format(order=order_id) for raw in HOSTILE_IDS]
    images = [image(image_id, f"image {n}") for n, image_id in enumerate(ids)]
    add_order(hostile, images, order_id=order_id)
    for image_id in ids:
        hostile.images[image_id] = image_answer(GOOD)

    archive = read_zip(download(service, order_id))
    assert archive.namelist() == [
        "image 0.jpg",
        "image 1.jpg",
        "image 2.jpg",
        "image 3.jpg",
        REPORT,
    ]
    report = archive.read(REPORT).decode()
    assert "refusing to call the API with the id '..'" in report
    assert "refusing to call the API with the id '.'" in report

    enhanced = [t for t in hostile.requests() if t != f"/v3/orders/{order_id}"]
    assert len(enhanced) == 4, hostile.requests()
    for target, image_id in zip(enhanced, ids, strict=False):
        path, _, query = target.partition("?")
        assert path == f"/v3/images/{quote(image_id, safe='')}/enhanced"
        assert unquote(path.split("/")[3]) == image_id
        assert query == "format=jpeg&preview=true"


def test_lone_surrogates_in_names_are_repaired(
    service: UvicornThread, hostile: HostileUpstream
) -> None:
    order_id = add_order(
        hostile,
        [
            image("a", "front\udc80.jpg"),
            image("b", "back\ud800", status="error", status_reason="broke \udfff"),
        ],
        name="Harbour \udc80 View",
    )
    hostile.images["a"] = image_answer(GOOD)

    summary = httpx.get(f"{service.url}/orders/{order_id}", timeout=30)
    assert summary.status_code == 200, summary.text
    body = summary.json()
    assert body["name"] == "Harbour \ufffd View"
    assert [i["image_name"] for i in body["images"]] == ["front\ufffd.jpg", "back\ufffd"]
    assert body["images"][1]["status_reason"] == "broke \ufffd"

    response = download(service, order_id)
    archive = read_zip(response)
    assert archive.namelist() == ["front\ufffd.jpg", REPORT]
    report = archive.read(REPORT).decode("utf-8")
    assert "Harbour \ufffd View" in report
    assert "back\ufffd" in report
    assert (
        "filename*=UTF-8''Harbour%20%EF%BF%BD%20View%20%28preview%29.zip"
        in response.headers["content-disposition"]
    )


def test_a_huge_hostile_order_name_gives_a_short_safe_file_name(
    service: UvicornThread, hostile: HostileUpstream
) -> None:
    name = "../..\r\nSet-Cookie: x=1\0\u202egpj.exe" + "é" * 200_000
    order_id = add_order(hostile, [image("a", "front")], name=name)
    hostile.images["a"] = image_answer(GOOD)

    for method in ("HEAD", "GET"):
        response = httpx.request(method, f"{service.url}/orders/{order_id}/images", timeout=60)
        assert response.status_code == 200
        header = response.headers["content-disposition"]
        assert len(header.encode()) < 1024
        assert "set-cookie" not in response.headers
        exact = unquote(header.split("filename*=UTF-8''", 1)[1])
        assert len(exact.encode("utf-8")) <= 150
        assert exact.startswith("_..Set-Cookie_ x=1gpj.exeé")
        assert exact.endswith("é (preview).zip")
        for banned in ("/", "\\", "\r", "\n", "\0", "\u202e"):
            assert banned not in exact
        fallback = header.split('filename="', 1)[1].split('"', 1)[0]
        assert fallback.startswith("_..Set-Cookie_ x=1gpj.exee")
        assert fallback.endswith(".zip")


def test_report_lines_cannot_be_forged(service: UvicornThread, hostile: HostileUpstream) -> None:
    forged = "x\n- fake-id  fake.jpg\n    reason: forged\r\x1b[2J\u2028"
    order_id = add_order(
        hostile,
        [
            image("a", "front"),
            image("b", forged, status="error", status_reason="bad\nreason: also forged\x07"),
        ],
    )
    hostile.images["a"] = image_answer(GOOD)
    report = read_zip(download(service, order_id)).read(REPORT).decode()
    listed = report.split("could not be included:\n", 1)[1].split("\nHow to recover:", 1)[0]
    assert listed.strip("\n").split("\n") == [
        "- b  x\\n- fake-id  fake.jpg\\n    reason: forged\\r\\x1b[2J\\u2028",
        "    reason: enhancement failed upstream: bad\\nreason: also forged\\x07",
    ]
    assert "\r" not in report
    assert "\x1b" not in report
    assert "\u2028" not in report


@pytest.mark.parametrize(
    "change",
    [
        {"image_name": "renamed"},
        {"ai_version": "4.7", "enhance_type": "warm"},
    ],
    ids=["image renamed", "image reprocessed"],
)
def test_a_change_that_moves_no_timestamp_is_never_served_stale(
    service: UvicornThread, hostile: HostileUpstream, change: dict[str, str]
) -> None:
    order_id = add_order(hostile, [image("a", "front", ai_version="4.6", enhance_type="neutral")])
    hostile.images["a"] = image_answer(GOOD)
    first = read_zip(download(service, order_id))
    assert read_zip(download(service, order_id)).namelist() == first.namelist()  # cached

    order = hostile.orders[order_id]
    assert isinstance(order, dict)
    order["images"][0].update(change)
    hostile.images["a"] = image_answer(OTHER)
    name = f"{change.get('image_name', 'front')}.jpg"
    after = read_zip(download(service, order_id))
    assert after.namelist() == [name]
    assert after.read(name) == OTHER


def test_an_upstream_error_message_utf8_cannot_encode_is_repaired(
    service: UvicornThread, hostile: HostileUpstream
) -> None:
    order_id = add_order(hostile, [image("a", "front")])
    hostile.images["a"] = json_answer(422, {"message": "cannot \udc80 render", "detail": {}})
    response = download(service, order_id)
    assert response.status_code == 422, response.text
    failures = response.json()["detail"]["failures"]
    assert failures[0]["reason"] == "upstream answered 422: cannot \ufffd render"


ORDERS_THAT_ARE_NOT = {
    "HTML": Answer(body=b"<html>maintenance</html>", headers={"Content-Type": "text/html"}),
    "204": Answer(status=204),
    "JSON without an order id": Answer(body=b'{"images": []}'),
    "JSON nested past any parser's depth": Answer(body=b"[" * 60_000 + b"]" * 60_000),
}


@pytest.mark.parametrize("answer", ORDERS_THAT_ARE_NOT.values(), ids=ORDERS_THAT_ARE_NOT.keys())
def test_an_order_that_is_not_an_order_is_a_502(
    service: UvicornThread, hostile: HostileUpstream, answer: Answer
) -> None:
    order_id = str(uuid.uuid4())
    hostile.orders[order_id] = answer
    for path in (f"/orders/{order_id}", f"/orders/{order_id}/images"):
        response = httpx.get(f"{service.url}{path}", timeout=30)
        assert response.status_code == 502, response.text
        assert set(response.json()) == {"error", "detail", "request_id"}
