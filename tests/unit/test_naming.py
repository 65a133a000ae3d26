"""Entry names built from hostile upstream image names, and the Content-Disposition header."""

from __future__ import annotations

import unicodedata
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.archive.naming import (
    MAX_DOWNLOAD_NAME_BYTES,
    archive_filename,
    content_disposition,
    extension_for_format,
    safe_entry_names,
)

WINDOWS_ILLEGAL = set('<>:"/\\|?*')
DEVICES = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"} | {
    f"{port}{digit}" for port in ("COM", "LPT") for digit in "123456789¹²³"
}


def one(name: str | None, image_id: str = "img-1", extension: str = "jpg") -> str:
    [result] = safe_entry_names([(name, image_id)], extension=extension)
    return result


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("../../etc/passwd.jpg", "passwd.jpg"),
        ("/etc/passwd", "passwd.jpg"),
        ("C:\\x\\y.png", "y.jpg"),
        ("C:y.png", "Cy.jpg"),
        ("a/b\\c", "c.jpg"),
        ("photos/..", "photos.jpg"),
        ("photos/./", "photos.jpg"),
        ("CON.jpg", "CON_.jpg"),
        ("aux", "aux_.jpg"),
        ("Lpt9.tar.gz", "Lpt9_.tar.gz.jpg"),
        ("com¹.png", "com¹_.jpg"),
        ("CON .jpg", "CON_.jpg"),
        ("CONSOLE.jpg", "CONSOLE.jpg"),
        (".hidden", "hidden.jpg"),
        ("..  .hidden.png", "hidden.jpg"),
        ("name.", "name.jpg"),
        ("name. . ", "name.jpg"),
        ("kitchen .JPEG", "kitchen.jpg"),
        ("living room.webp", "living room.jpg"),
        ("scan.tiff", "scan.jpg"),
        ("raw.CR2", "raw.jpg"),
        ("report.pdf", "report.pdf.jpg"),
        ("a\x00b\x1fc\x7fd\x85e\x9ff.jpg", "abcdef.jpg"),
        ("line\nbreak\r\t.jpg", "linebreak.jpg"),
        ('what<>:"|?*.jpg', "what.jpg"),
        ("photo\u202egpj.exe", "photogpj.exe.jpg"),
        ("Cafe\u0301.jpg", "Café.jpg"),
        ("東京タワー.heic", "東京タワー.jpg"),
    ],
)
def test_explicit_names(raw: str, expected: str) -> None:
    assert one(raw) == expected


@pytest.mark.parametrize("raw", [None, "", "   ", "...", "../..", "/", "\\", "\x00\x01", "../ /."])
def test_unusable_names_fall_back_to_the_image_id(raw: str | None) -> None:
    assert one(raw, image_id="5f2c-91ab") == "5f2c-91ab.jpg"


def test_image_id_is_sanitised_too() -> None:
    assert one(None, image_id="../../x:y") == "xy.jpg"
    assert one(None, image_id="\x00") == "image.jpg"
    assert one("", image_id="nul") == "nul_.jpg"


def test_extension_follows_the_delivered_format() -> None:
    assert one("photo.jpg", extension="png") == "photo.png"
    assert one("photo.PNG", extension="WEBP") == "photo.webp"
    for bad in ("", ".jpg", "jp g", "x" * 17, "jpé"):
        with pytest.raises(ValueError, match="extension"):
            one("photo", extension=bad)


def test_long_multibyte_names_are_cut_on_character_boundaries() -> None:
    result = one("é" * 300 + ".jpg")
    assert result == "é" * 125 + ".jpg"
    assert len(result.encode()) == 254
    result = one("a" + "東" * 100)
    assert len(result.encode()) <= 255
    assert result == "a" + "東" * 83 + ".jpg"
    assert one("x" * 300).encode() == b"x" * 251 + b".jpg"


def test_cut_never_leaves_a_trailing_dot_or_space() -> None:
    result = one("a" * 250 + " . b" + "c" * 20)
    assert result == "a" * 250 + ".jpg"


def test_duplicates_differing_by_case_are_numbered_in_order() -> None:
    items = [("Photo.jpg", "1"), ("photo.JPG", "2"), ("PHOTO.png", "3"), ("other", "4")]
    assert safe_entry_names(items, extension="jpg") == [
        "Photo.jpg",
        "photo (1).jpg",
        "PHOTO (2).jpg",
        "other.jpg",
    ]


def test_renamed_duplicate_never_takes_a_later_original_name() -> None:
    items = [("a.jpg", "1"), ("a.jpg", "2"), ("a (1).jpg", "3"), ("a (2)", "4"), ("A (1)", "5")]
    assert safe_entry_names(items, extension="jpg") == [
        "a.jpg",
        "a (3).jpg",
        "a (1).jpg",
        "a (2).jpg",
        "A (1) (1).jpg",
    ]


def test_reserved_names_are_avoided() -> None:
    items = [("_download_report", "1"), ("report", "2"), ("_DOWNLOAD_REPORT", "3")]
    result = safe_entry_names(items, extension="txt", reserved=["_download_report.txt"])
    assert result == ["_download_report (1).txt", "report.txt", "_DOWNLOAD_REPORT (2).txt"]


def test_duplicates_of_long_names_stay_within_255_bytes() -> None:
    result = safe_entry_names([("é" * 300, "1"), ("é" * 300, "2")], extension="jpg")
    assert result == ["é" * 125 + ".jpg", "é" * 123 + " (1).jpg"]


def test_result_is_deterministic_and_in_input_order() -> None:
    items = [(f"name {index % 7}", str(index)) for index in range(40)]
    first = safe_entry_names(items, extension="jpg")
    assert first == safe_entry_names(list(items), extension="jpg")
    assert first[:8] == [f"name {index}.jpg" for index in range(7)] + ["name 0 (1).jpg"]


# The small alphabet makes collisions, numbered names and dot/space runs frequent.
raw_names = st.one_of(st.none(), st.text(max_size=300), st.text(alphabet="aAß .(1)/", max_size=8))
name_lists = st.lists(st.tuples(raw_names, st.text(max_size=40)), max_size=25)
reserved_lists = st.lists(st.text(min_size=1, max_size=20).map(lambda s: s + ".jpg"), max_size=3)


@settings(max_examples=300, deadline=None)
@given(items=name_lists, reserved=reserved_lists)
def test_properties_of_any_names(items: list[tuple[str | None, str]], reserved: list[str]) -> None:
    result = safe_entry_names(items, extension="jpg", reserved=reserved)
    assert len(result) == len(items)
    keys = [name.casefold() for name in result]
    assert len(set(keys)) == len(keys)
    assert not set(keys) & {name.casefold() for name in reserved}
    for name in result:
        assert name.endswith(".jpg")
        assert len(name) > len(".jpg")
        assert len(name.encode("utf-8")) <= 255
        assert unicodedata.is_normalized("NFC", name)
        assert not set(name) & WINDOWS_ILLEGAL
        assert all(unicodedata.category(char) not in {"Cc", "Cs"} for char in name)
        assert name[0] not in ". "
        assert name[-5] not in ". "
        assert name.split(".")[0].rstrip(" ").upper() not in DEVICES
    assert safe_entry_names(items, extension="jpg", reserved=reserved) == result


@settings(max_examples=200, deadline=None)
@given(name=st.text(max_size=60))
def test_names_already_safe_are_kept(name: str) -> None:
    [safe] = safe_entry_names([(name, "id")], extension="jpg")
    assert safe_entry_names([(safe, "other")], extension="jpg") == [safe]


@pytest.mark.parametrize(
    ("fmt", "extension"),
    [("jpeg", "jpg"), ("JPEG", "jpg"), ("jpg", "jpg"), ("png", "png"), ("webp", "webp")]
    + [("avif", "avif"), (" jxl ", "jxl")],
)
def test_extension_for_format(fmt: str, extension: str) -> None:
    assert extension_for_format(fmt) == extension


@pytest.mark.parametrize("fmt", ["", "gif", "image/jpeg", ".jpg"])
def test_extension_for_unknown_format_raises(fmt: str) -> None:
    with pytest.raises(ValueError, match="unsupported"):
        extension_for_format(fmt)


def test_content_disposition_ascii() -> None:
    assert content_disposition("order-42.zip") == (
        "attachment; filename=\"order-42.zip\"; filename*=UTF-8''order-42.zip"
    )


def test_content_disposition_non_ascii_and_unsafe_characters() -> None:
    value = content_disposition('Résidence "Les Pins" 東京\\%.zip')
    assert value == (
        'attachment; filename="Residence _Les Pins_ DongJing__.zip"; '
        "filename*=UTF-8''R%C3%A9sidence%20_Les%20Pins_%20%E6%9D%B1%E4%BA%AC_%25.zip"
    )


def test_content_disposition_fallback_is_a_readable_transliteration() -> None:
    value = content_disposition("Demo order — 12 Harbour View.zip")
    assert 'filename="Demo order - 12 Harbour View.zip"' in value
    assert 'filename="Cafe Muller - Strasse.zip"' in content_disposition("Café Müller – Straße.zip")
    assert 'filename="Dom u morya.zip"' in content_disposition("Дом у моря.zip")


def test_content_disposition_cannot_inject_header_lines() -> None:
    value = content_disposition("a\r\nSet-Cookie: x=1.zip")
    assert "\r" not in value
    assert "\n" not in value
    assert 'filename="aSet-Cookie_ x=1.zip"' in value
    assert content_disposition("") == "attachment; filename=\"download\"; filename*=UTF-8''download"


def test_archive_filename_is_bounded_flat_and_falls_back_to_the_id() -> None:
    name = archive_filename("../..\r\nSet-Cookie: x=1\0\u202egpj.exe" + "é" * 200_000, "id")
    assert name.startswith("_..Set-Cookie_ x=1gpj.exeé")
    assert name.endswith("é.zip")
    assert len(name.encode()) <= MAX_DOWNLOAD_NAME_BYTES
    assert archive_filename("Smith/Jones\\Lee", "id") == "Smith_Jones_Lee.zip"
    assert archive_filename("a\udc80b", "id") == "a\ufffdb.zip"
    for unusable in (None, "", "..", " . ", "\u202e\u2066", "\0\r\n"):
        assert archive_filename(unusable, "8f5c2a4e") == "8f5c2a4e.zip"
    assert archive_filename("CON", "id") == "CON_.zip"


@settings(max_examples=200, deadline=None)
@given(filename=st.text())
def test_content_disposition_of_any_text_is_safe_and_bounded(filename: str) -> None:
    value = content_disposition(filename)
    assert value.isascii()
    fallback = value.split('filename="', 1)[1].split('"; filename*=', 1)[0]
    assert fallback
    assert all(" " <= char <= "~" and char not in '"\\%/:*?<>|' for char in fallback)
    encoded = value.split("filename*=UTF-8''", 1)[1]
    assert all(char.isalnum() or char in "!#$&+-.^_`|~%" for char in encoded)
    exact = unquote(encoded, errors="strict")
    assert 0 < len(exact.encode("utf-8")) <= MAX_DOWNLOAD_NAME_BYTES
    assert exact == unicodedata.normalize("NFC", exact)
    assert exact[0] not in " ."
    assert exact[-1] not in " ."
    assert not any(unicodedata.category(char) in {"Cc", "Cs"} for char in exact)
    assert not set(exact) & set('/\\<>:"|?*\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069')


@settings(max_examples=100, deadline=None)
@given(stem=st.text(max_size=30, alphabet=st.characters(categories=("L", "N", "Zs"))))
def test_content_disposition_keeps_a_safe_name_exactly(stem: str) -> None:
    name = f"Order {stem}x.zip"  # never a device name, never blank at the ends
    encoded = content_disposition(name).split("filename*=UTF-8''", 1)[1]
    assert unquote(encoded, errors="strict") == unicodedata.normalize("NFC", name)
