"""Names a person understands: an order's title, a preview archive's name, a photo's name."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.archive.naming import MAX_DOWNLOAD_NAME_BYTES, archive_filename, photo_title
from app.services.overview import archive_name, order_title
from app.upstream.models import Image, Order
from app.upstream.options import DownloadOptions

ORDER_ID = "d45dcede-9b61-4c1e-9a39-3b4e2c1d0f00"
MADE = datetime(2025, 7, 5, 9, 30, tzinfo=UTC)


def _order(name: str | None, *image_names: str | None, created: datetime | None = MADE) -> Order:
    images = [
        Image(image_id=f"i{n}", image_name=image_name, status="processed")
        for n, image_name in enumerate(image_names)
    ]
    return Order(order_id=ORDER_ID, name=name, created_at=created, images=images)


@pytest.mark.parametrize(
    ("order", "title"),
    [
        (_order("14 Maple Street", "a.jpg"), "14 Maple Street"),
        (_order("  ", "shoot/front.JPG", "garden.jpg"), "2025-07-05 front"),
        (_order(None, None, "garden.png"), "2025-07-05 garden"),
        (_order(None), "2025-07-05 order d45dcede"),
        (_order(None, "garden.jpg", created=None), "garden"),
    ],
)
def test_an_order_is_titled_by_its_name_or_its_date_and_first_photo(
    order: Order, title: str
) -> None:
    assert order_title(order) == title


def test_a_preview_archive_says_so_and_full_quality_does_not() -> None:
    order = _order("14 Maple Street", "a.jpg")
    assert archive_name(order, DownloadOptions()) == "14 Maple Street (preview).zip"
    assert archive_name(order, DownloadOptions(preview=False)) == "14 Maple Street.zip"
    assert archive_name(_order(None, "front.jpg"), DownloadOptions(preview=False)) == (
        "2025-07-05 front.zip"
    )


def test_an_archive_of_sizes_names_them_so_two_size_sets_are_two_files() -> None:
    order = _order("14 Maple Street", "a.jpg")
    sizes = DownloadOptions(preview=False, variants="mls,print")
    assert archive_name(order, sizes) == "14 Maple Street (mls, print).zip"
    web = DownloadOptions(preview=False, variants="web")
    assert archive_name(order, web) == "14 Maple Street (web).zip"
    name = archive_filename("é" * 500, ORDER_ID, variants=("mls", "print"))
    assert name.endswith("é (mls, print).zip")
    assert len(name.encode()) <= MAX_DOWNLOAD_NAME_BYTES


def test_sizes_named_too_long_for_any_name_leave_the_order_its_name() -> None:
    long_sizes = tuple(c * 32 for c in "abcd")  # four presets of the longest names
    name = archive_filename("14 Maple Street", ORDER_ID, preview=True, variants=long_sizes)
    assert name == "14 Maple Street (preview).zip"
    for preview in (False, True):
        for order_name in ("", "é" * 200):
            name = archive_filename(order_name, ORDER_ID, preview=preview, variants=long_sizes)
            assert name.endswith(".zip")
            assert len(name.encode()) <= MAX_DOWNLOAD_NAME_BYTES


def test_the_preview_mark_survives_a_name_cut_to_length() -> None:
    name = archive_filename("é" * 500, ORDER_ID, preview=True)
    assert name.endswith("é (preview).zip")
    assert len(name.encode()) <= MAX_DOWNLOAD_NAME_BYTES


@pytest.mark.parametrize(
    ("image_name", "title"),
    [("garden.jpg", "garden"), ("shoots/12/IMG_0042.CR3", "IMG_0042"), ("notes", "notes")],
)
def test_a_photo_is_named_without_folders_or_image_extension(image_name: str, title: str) -> None:
    assert photo_title(image_name) == title
