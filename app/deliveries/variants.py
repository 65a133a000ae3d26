"""Which variants a delivery may offer, and what each one downloads.

A delivery's variants are the service's presets (`GET /presets`: built-in `mls`, `web` and
`print`, and the operator's `PRESETS_FILE`). `print`, the full-quality image as Autoenhance
delivers it, downloads the ordinary full-quality archive (as it did before presets existed,
so its archives keep their bytes and ETags); every other variant downloads the archive with
that one variant (`variants=<name>`: its images in the preset's folder). `variant_options()`
is the one place a variant becomes download options.
"""

from __future__ import annotations

from collections.abc import Mapping

from app.imaging.presets import Preset
from app.upstream.options import DownloadOptions

PRINT = "print"
# What the recipient's page calls the variant that is the photos themselves.
PRINT_LABEL = "Print (full quality)"


class UnknownVariant(ValueError):
    """A variant name this service does not offer."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def checked_variants(names: list[str], presets: Mapping[str, Preset]) -> list[str]:
    """`names` deduplicated in their order, each one of `presets`.

    Raises:
        UnknownVariant: the first name that is not a preset.
    """
    for name in names:
        if name not in presets:
            raise UnknownVariant(name)
    return list(dict.fromkeys(names))


def variant_label(name: str, presets: Mapping[str, Preset]) -> str:
    """What the recipient's page calls variant `name`."""
    if name == PRINT:
        return PRINT_LABEL
    preset = presets.get(name)
    return f"{preset.label} ({preset.description})" if preset is not None else name


def variant_options(
    name: str, images: tuple[str, ...] | None, presets: Mapping[str, Preset]
) -> DownloadOptions:
    """The download options of variant `name` for the selection `images` (None: every image).

    Raises:
        UnknownVariant: `name` is not one of `presets`.
    """
    if name not in presets:
        raise UnknownVariant(name)
    if name == PRINT:
        return DownloadOptions(format="jpeg", preview=False, images=images)
    return DownloadOptions(format="jpeg", preview=False, images=images, variants=(name,))
