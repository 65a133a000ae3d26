"""Download presets: the sizes a listing needs, each rendered into its own folder.

Three are built in (`mls`, `web`, `print`); an operator adds or overrides presets in a TOML
file (`PRESETS_FILE`), one table per preset:

    [presets.paragon]
    label = "Paragon"
    box = [1280, 960]
    max_bytes = 125000

A table named like a built-in changes only the fields it gives (a `box` replaces the
built-in's `long_edge` and the other way round); any other name adds a preset. The file is
read once at start-up and a bad one stops the service with a message naming the file, the
preset and the field (`PresetsFileError`).

`parse_variants("mls,print")` turns a caller's list into presets, or a 422 naming what is
unknown.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from app.core.errors import Unprocessable

# A request names at most this many variants: each one is every image of the order again.
MAX_VARIANTS = 4
PRESET_NAME = r"^[a-z0-9][a-z0-9_-]{0,31}$"
# Labels become top-level folder names of the archive: letters, digits, spaces and a few
# punctuation marks, not starting or ending with a dot or space (Windows drops those).
PRESET_LABEL = r"^[A-Za-z0-9]([A-Za-z0-9 ._()&+-]{0,38}[A-Za-z0-9)])?$"
# Largest side any preset may ask for: beyond it nothing is a listing photo.
MAX_SIDE = 10_000


class Preset(BaseModel):
    """One output size of an order's images. `original` presets pass the full-quality JPEG
    through unchanged; all others are rendered to JPEG, sRGB, at most `long_edge` on their
    longer side or within `box` (`contain`: fitted inside; `pad`: fitted, then letterboxed to
    the box's exact size), at most `max_bytes`, at JPEG quality `quality` or the highest
    below it that fits."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=PRESET_NAME, description="What a caller names in `variants=`")
    label: str = Field(pattern=PRESET_LABEL, description="The folder in the archive")
    original: bool = Field(
        default=False, description="The full-quality image as delivered, unchanged"
    )
    long_edge: int | None = Field(default=None, ge=16, le=MAX_SIDE, description="Longest side, px")
    box: tuple[int, int] | None = Field(
        default=None, description="Width and height the image must fit in, px"
    )
    fit: Literal["contain", "pad"] = Field(
        default="contain", description="contain: fit inside; pad: letterbox to the box"
    )
    max_bytes: int | None = Field(
        default=None, ge=10_000, le=100_000_000, description="Largest file, bytes"
    )
    quality: int = Field(default=90, ge=1, le=95, description="JPEG quality ceiling")
    watermark: bool = Field(
        default=False, description="Ask Autoenhance for its watermark (MLS boards forbid it)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.box is not None and not all(16 <= side <= MAX_SIDE for side in self.box):
            raise ValueError(f"box sides must be 16 to {MAX_SIDE} px")
        if self.original:
            if self.long_edge or self.box or self.max_bytes or self.fit != "contain":
                raise ValueError("an original preset takes no size, box, fit or byte cap")
            return self
        if (self.long_edge is None) == (self.box is None):
            raise ValueError("give exactly one of long_edge and box")
        if self.fit == "pad" and self.box is None:
            raise ValueError("fit = 'pad' needs a box")
        return self

    @property
    def description(self) -> str:
        if self.original:
            return "the full-quality JPEG as Autoenhance delivers it"
        size = (
            f"long edge at most {self.long_edge} px"
            if self.long_edge
            else f"{'padded to' if self.fit == 'pad' else 'within'} {self.box[0]}x{self.box[1]} px"
            if self.box
            else ""
        )
        cap = f", at most {self.max_bytes:,} bytes" if self.max_bytes else ""
        return f"JPEG, sRGB, {size}{cap}"


BUILT_IN: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(name="mls", label="MLS", long_edge=2048, max_bytes=4_000_000),
        Preset(name="web", label="Web", long_edge=1600, max_bytes=500_000),
        Preset(name="print", label="Print", original=True),
    )
}


class PresetsFileError(ValueError):
    """The presets file cannot be read or holds an invalid preset."""


class _PresetsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    presets: dict[str, dict[str, Any]] = Field(default_factory=dict)


def load_presets(path: Path | None) -> dict[str, Preset]:
    """The built-in presets with those of the TOML file at `path` added or merged in.

    Raises:
        PresetsFileError: the file is missing, not TOML, or holds an invalid preset (the
            message names the file, the preset and the field), or two presets share a folder.
    """
    presets = dict(BUILT_IN)
    if path is None:
        return presets
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        tables = _PresetsFile.model_validate(raw).presets
    except (OSError, UnicodeDecodeError) as exc:
        raise PresetsFileError(f"PRESETS_FILE {path} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PresetsFileError(f"PRESETS_FILE {path} is not valid TOML: {exc}") from None
    except ValidationError as exc:
        raise PresetsFileError(f"PRESETS_FILE {path}: {_first_error(exc)}") from None
    for name, table in tables.items():
        if "name" in table:
            raise PresetsFileError(
                f"PRESETS_FILE {path}: preset {name!r}: name: the table's name is the preset's"
            )
        try:
            presets[name] = _merged(name, table, presets.get(name))
        except ValidationError as exc:
            raise PresetsFileError(
                f"PRESETS_FILE {path}: preset {name!r}: {_first_error(exc)}"
            ) from None
    _check_labels(path, presets)
    return presets


def _merged(name: str, table: Mapping[str, Any], base: Preset | None) -> Preset:
    fields: dict[str, Any] = base.model_dump() if base is not None else {}
    if "box" in table:
        fields.pop("long_edge", None)
    if "long_edge" in table:
        fields.pop("box", None)
        fields["fit"] = "contain"
    return Preset.model_validate({**fields, **table, "name": name})


def _check_labels(path: Path, presets: Mapping[str, Preset]) -> None:
    # Folder names must differ also on case-insensitive file systems.
    seen: dict[str, str] = {}
    for preset in presets.values():
        other = seen.setdefault(preset.label.casefold(), preset.name)
        if other != preset.name:
            raise PresetsFileError(
                f"PRESETS_FILE {path}: presets {other!r} and {preset.name!r} share the folder "
                f"{preset.label!r}"
            )


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])


def parse_variants(text: str, presets: Mapping[str, Preset]) -> tuple[Preset, ...]:
    """The presets a comma-separated `variants=` value names, in the order given, once each.

    Raises:
        Unprocessable: (code `unknown_variant`) a name this service does not offer, naming it
            and those it offers; (code `invalid_variants`) none, or more than MAX_VARIANTS;
            (code `variants_conflict`) watermarked presets beside presets without one.
    """
    names = list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not names:
        raise Unprocessable("Name at least one variant.", code="invalid_variants")
    if len(names) > MAX_VARIANTS:
        raise Unprocessable(
            f"At most {MAX_VARIANTS} variants can be asked for at once.", code="invalid_variants"
        )
    unknown = [name for name in names if name not in presets]
    if unknown:
        offered = ", ".join(presets)
        raise Unprocessable(
            {
                "message": f"Unknown variant {unknown[0][:40]!r}: this service offers {offered}.",
                "unknown": [name[:40] for name in unknown],
                "offered": list(presets),
            },
            code="unknown_variant",
        )
    chosen = tuple(presets[name] for name in names)
    marked = [preset.name for preset in chosen if preset.watermark]
    if marked and len(marked) < len(chosen):
        # Each photo is fetched once for all its sizes, and the watermark is Autoenhance's:
        # one fetch cannot give a watermarked size and a clean one (an MLS board fines a
        # branded photo).
        clean = [preset.name for preset in chosen if not preset.watermark]
        raise Unprocessable(
            {
                "message": f"{', '.join(marked)} carry Autoenhance's watermark and "
                f"{', '.join(clean)} must not; one download cannot hold both: ask for them "
                "in two.",
                "watermarked": marked,
                "clean": clean,
            },
            code="variants_conflict",
        )
    return chosen
