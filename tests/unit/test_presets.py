"""Download presets: the built-ins, the operator's file, and variant names."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.errors import Unprocessable
from app.imaging.presets import (
    BUILT_IN,
    MAX_VARIANTS,
    Preset,
    PresetsFileError,
    load_presets,
    parse_variants,
)
from app.main import create_app
from testkit.processes import ROOT
from tests.support import settings_of

EXAMPLE = ROOT / "presets.example.toml"


def test_the_built_ins_are_what_listings_need() -> None:
    assert list(BUILT_IN) == ["mls", "web", "print"]
    mls, web, print_ = BUILT_IN["mls"], BUILT_IN["web"], BUILT_IN["print"]
    assert (mls.label, mls.long_edge, mls.max_bytes, mls.watermark) == (
        "MLS",
        2048,
        4_000_000,
        False,
    )
    assert (web.label, web.long_edge, web.max_bytes) == ("Web", 1600, 500_000)
    assert (print_.label, print_.original, print_.max_bytes) == ("Print", True, None)


def test_without_a_file_the_built_ins_are_offered() -> None:
    assert load_presets(None) == BUILT_IN


def test_the_example_file_adds_two_mls_boards() -> None:
    presets = load_presets(EXAMPLE)
    assert list(presets) == ["mls", "web", "print", "paragon", "smartmls"]
    assert presets["paragon"] == Preset(
        name="paragon", label="Paragon", box=(1280, 960), max_bytes=125_000
    )
    assert presets["smartmls"] == Preset(
        name="smartmls", label="SmartMLS", box=(1024, 768), fit="pad"
    )


def test_the_api_docs_show_the_example_file() -> None:
    assert EXAMPLE.read_text() in (ROOT / "docs" / "api.md").read_text()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "presets.toml"
    path.write_text(text)
    return path


def test_a_table_named_like_a_built_in_changes_only_what_it_gives(tmp_path: Path) -> None:
    presets = load_presets(write(tmp_path, "[presets.web]\nmax_bytes = 300000\nquality = 80\n"))
    assert presets["web"] == BUILT_IN["web"].model_copy(
        update={"max_bytes": 300_000, "quality": 80}
    )
    assert presets["mls"] == BUILT_IN["mls"]


def test_a_box_replaces_a_built_in_long_edge(tmp_path: Path) -> None:
    presets = load_presets(write(tmp_path, '[presets.mls]\nbox = [1920, 1080]\nfit = "pad"\n'))
    assert presets["mls"].box == (1920, 1080)
    assert presets["mls"].long_edge is None
    assert presets["mls"].label == "MLS"


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("[presets.web\n", "is not valid TOML"),
        ("[presets.x]\nlabel = 'X'\nlong_edge = 100\nsharpen = true\n", "preset 'x': sharpen"),
        ("[presets.x]\nlabel = 'X'\nbox = [100, 100]\nlong_edge = 50\n", "exactly one"),
        ("[presets.x]\nlabel = 'X'\nlong_edge = 800\nfit = 'pad'\n", "needs a box"),
        ("[presets.x]\nlabel = 'X'\n", "exactly one"),
        ("[presets.x]\nlabel = '../up'\nlong_edge = 800\n", "preset 'x': label"),
        ("[presets.X]\nlabel = 'X'\nlong_edge = 800\n", "preset 'X': name"),
        ("[presets.x]\nlabel = 'mls'\nlong_edge = 800\n", "share the folder 'mls'"),
        ("[presets.x]\nlabel = 'X'\nlong_edge = 800\nmax_bytes = 'big'\n", "max_bytes"),
        ("[presets.x]\nlabel = 'X'\nbox = [100, 100000]\n", "box sides"),
        ("[presets.print]\nlong_edge = 800\n", "an original preset"),
        ("[presets.x]\nname = 'y'\nlabel = 'X'\nlong_edge = 800\n", "preset 'x': name"),
        ("[board]\nlabel = 'X'\n", "board"),
    ],
)
def test_an_invalid_file_is_refused_with_its_reason(
    tmp_path: Path, text: str, complaint: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PresetsFileError) as refused:
        load_presets(path)
    assert str(path) in str(refused.value)
    assert complaint in str(refused.value)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PresetsFileError, match="cannot be read"):
        load_presets(tmp_path / "nowhere.toml")


def test_the_service_does_not_start_with_an_invalid_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[presets.x]\nlabel = 'X'\n")
    settings = settings_of(presets_file=path, data_dir=tmp_path / "data")
    with pytest.raises(PresetsFileError, match="exactly one"):
        create_app(settings)


def test_variants_are_named_presets_in_order_once_each() -> None:
    presets = load_presets(EXAMPLE)
    chosen = parse_variants(" print,mls ,print,paragon", presets)
    assert [preset.name for preset in chosen] == ["print", "mls", "paragon"]


def test_an_unknown_variant_is_a_422_naming_it() -> None:
    with pytest.raises(Unprocessable) as refused:
        parse_variants("mls,billboard", BUILT_IN)
    assert refused.value.status_code == 422
    assert refused.value.code == "unknown_variant"
    assert "'billboard'" in refused.value.detail["message"]
    assert refused.value.detail["unknown"] == ["billboard"]
    assert refused.value.detail["offered"] == ["mls", "web", "print"]


def test_a_watermarked_size_beside_a_clean_one_is_a_422_before_any_fetch() -> None:
    branded = Preset(name="social", label="Social", long_edge=1080, watermark=True)
    presets = {**BUILT_IN, "social": branded}
    with pytest.raises(Unprocessable) as refused:
        parse_variants("mls,social", presets)
    assert refused.value.code == "variants_conflict"
    assert refused.value.detail["watermarked"] == ["social"]
    assert refused.value.detail["clean"] == ["mls"]
    assert parse_variants("social", presets) == (branded,)


@pytest.mark.parametrize("text", ["", " , ", ",".join(["mls", "web", "print", "a", "b"])])
def test_no_variant_or_too_many_is_a_422(text: str) -> None:
    presets = {**BUILT_IN, **{n: Preset(name=n, label=n.upper(), long_edge=800) for n in "ab"}}
    with pytest.raises(Unprocessable) as refused:
        parse_variants(text, presets)
    assert refused.value.code == "invalid_variants"
    assert MAX_VARIANTS == 4
