"""Which variants a delivery may offer, and what each one downloads.

Today one variant exists: `print`, the full-quality image as Autoenhance delivers it (the
ordinary archive with `preview=false`). `known_variants()` is the registry the presets of
"Deliverables" will replace; `variant_options()` is the one place a variant becomes download
options.
"""

from __future__ import annotations

from app.upstream.options import DownloadOptions

PRINT = "print"
# What the recipient's page calls each variant.
LABELS = {PRINT: "Print (full quality)"}


class UnknownVariant(ValueError):
    """A variant name this service does not offer."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def known_variants() -> frozenset[str]:
    """The variant names this service can serve."""
    return frozenset({PRINT})


def checked_variants(names: list[str]) -> list[str]:
    """`names` deduplicated in their order, each known.

    Raises:
        UnknownVariant: the first name that is not a known variant.
    """
    known = known_variants()
    for name in names:
        if name not in known:
            raise UnknownVariant(name)
    return list(dict.fromkeys(names))


def variant_label(name: str) -> str:
    return LABELS.get(name, name)


def variant_options(name: str, images: tuple[str, ...] | None) -> DownloadOptions:
    """The download options of variant `name` for the selection `images` (None: every image).

    Raises:
        UnknownVariant: `name` is not a known variant.
    """
    if name not in known_variants():
        raise UnknownVariant(name)
    return DownloadOptions(format="jpeg", preview=False, images=images)
