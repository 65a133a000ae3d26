"""Settings are documented once, on their fields: the generated lists agree with them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field

from app.core import settings_doc
from app.core.config import Settings

ROOT = Path(__file__).resolve().parents[2]

# A setting named like this measures in this unit, and its description must say so.
UNIT_SUFFIXES = {
    "_bytes": "Bytes",
    "_timeout": "Seconds",
    "_ttl": "Seconds",
    "_seconds": "Seconds",
    "_interval": "Seconds",
    "_delay": "Seconds",
    "_wait": "Seconds",
    "_grace": "Seconds",
    "_lockout": "Seconds",
    "_idle": "Seconds",
    "_pixels": "Pixels",
}


@pytest.mark.parametrize("relative", sorted(settings_doc.outputs(), key=str))
def test_the_generated_file_agrees_with_settings(relative: Path) -> None:
    expected = settings_doc.outputs()[relative]
    assert (ROOT / relative).read_text() == expected, (
        f"{relative} disagrees with Settings: run `make docs`"
    )


def test_every_setting_says_what_it_is_and_its_unit() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description, f"Settings.{name} has no description"
        unit = next((u for s, u in UNIT_SUFFIXES.items() if name.endswith(s)), None)
        if unit is not None:
            assert unit.lower() in field.description.lower(), f"{name}: no unit ({unit})"


def test_every_setting_is_in_both_files() -> None:
    env = (ROOT / ".env.example").read_text()
    page = (ROOT / "docs/configuration.md").read_text()
    for name in Settings.model_fields:
        assert f"\n{name.upper()}=" in env
        assert f"| `{name.upper()}` |" in page


def test_a_new_setting_lands_in_its_group_and_a_second_run_changes_nothing(
    tmp_path: Path,
) -> None:
    class Extended(Settings):
        zz_new_limit: int = Field(default=7, description="Widgets at once, per process.")

    groups = settings_doc.grouped(Extended)
    assert groups[-1][0] == "Operations"
    assert groups[-1][1][-1] == settings_doc.Setting(
        "ZZ_NEW_LIMIT", "7", "Widgets at once, per process."
    )
    assert (
        "| `ZZ_NEW_LIMIT` | `7` | Widgets at once, per process. |"
        in settings_doc.configuration_md(Extended)
    )
    assert "# Widgets at once, per process.\nZZ_NEW_LIMIT=7\n" in settings_doc.env_example(Extended)

    (tmp_path / "docs").mkdir()
    assert settings_doc.main(["--root", str(tmp_path)]) == 0
    written = {p: (tmp_path / p).read_text() for p in settings_doc.outputs()}
    assert settings_doc.main(["--root", str(tmp_path), "--check"]) == 0
    assert {p: (tmp_path / p).read_text() for p in settings_doc.outputs()} == written
    (tmp_path / ".env.example").write_text("STALE=1\n")
    assert settings_doc.main(["--root", str(tmp_path), "--check"]) == 1


def test_a_setting_without_a_description_is_refused() -> None:
    class Undocumented(Settings):
        zz_mystery: int = 1

    with pytest.raises(ValueError, match="zz_mystery"):
        settings_doc.grouped(Undocumented)
