"""A delivery offers the service's presets: one archive per variant, `mls` in its folder."""

from __future__ import annotations

import io
import zipfile

import httpx
from PIL import Image

from tests.deliveries.conftest import Photographer


def test_a_delivery_of_mls_and_print_downloads_both(photographer: Photographer) -> None:
    order = photographer.order(images=3, image_bytes=30_000)
    created = photographer.deliver(order["order_id"], variants=["mls", "print"])
    link = created["url"]
    page = httpx.get(link, timeout=30)
    assert page.status_code == 200

    archives = {}
    for variant in ("mls", "print"):
        response = httpx.get(f"{link}/archive?variant={variant}", timeout=120)
        assert response.status_code == 200, response.text
        with zipfile.ZipFile(io.BytesIO(response.content)) as zf:
            assert zf.testzip() is None
            archives[variant] = {name: zf.read(name) for name in zf.namelist()}
    names = [image["image_name"] for image in order["images"]]
    assert list(archives["print"]) == [f"{name}.jpg" for name in names]
    assert list(archives["mls"]) == [f"MLS/{name}.jpg" for name in names]
    for data in archives["mls"].values():
        picture = Image.open(io.BytesIO(data))
        assert picture.format == "JPEG"
        assert max(picture.size) <= 2048
        assert len(data) <= 4_000_000

    status = photographer.status(created["delivery_id"])
    assert sorted(a["variant"] for a in status["archives"]) == ["mls", "print"]
