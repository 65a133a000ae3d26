"""GET /presets over a real socket: the built-ins and the operator's file, documented."""

from __future__ import annotations

from pathlib import Path

import httpx

from app.imaging.render import RENDERER_VERSION
from app.main import create_app
from testkit.processes import ROOT
from tests.support import UvicornThread, settings_of


def test_presets_lists_the_built_ins_and_the_operators_own(tmp_path: Path) -> None:
    settings = settings_of(
        presets_file=ROOT / "presets.example.toml",
        data_dir=tmp_path / "data",
        sandbox_processing_delay=0.1,
    )
    with UvicornThread(create_app(settings)) as server:
        response = httpx.get(f"{server.url}/presets")
        schema = httpx.get(f"{server.url}/openapi.json").json()
    assert response.status_code == 200
    body = response.json()
    assert [p["name"] for p in body["presets"]] == ["mls", "web", "print", "paragon", "smartmls"]
    assert body["max_variants"] == 4
    assert body["renderer"] == RENDERER_VERSION
    by_name = {p["name"]: p for p in body["presets"]}
    assert by_name["mls"] == {
        "name": "mls",
        "label": "MLS",
        "description": "JPEG, sRGB, long edge at most 2048 px, at most 4,000,000 bytes",
        "format": "jpeg",
        "original": False,
        "long_edge": 2048,
        "box": None,
        "fit": "contain",
        "max_bytes": 4_000_000,
        "quality": 90,
        "watermark": False,
    }
    assert by_name["print"]["original"] is True
    assert by_name["print"]["quality"] is None
    assert by_name["smartmls"]["box"] == [1024, 768]
    assert by_name["smartmls"]["fit"] == "pad"
    operation = schema["paths"]["/presets"]["get"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PresetsOut"
    }
