"""Which files a run uploads: the photos given, and every photo in a folder given.

A photographer thinks in folders (`~/shoots/12-harbour-view`), so a folder stands for the
photos in it: its files in name order — numbers by their value, so `IMG_2` comes before
`IMG_10`, as a file browser shows them — of which those that are not photos by their content
(`notes.txt`, `.DS_Store`) are listed and left out. Folders inside it are not entered. A file
named on the command line is taken as given: one that is not a photo stops the run (see
`check_files`), since the person chose it on purpose.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from app.cli.usage import EXIT_BAD_FILE, CliError
from app.upstream.sniff import SNIFF_BYTES, sniff_image

_DIGITS = re.compile(r"(\d+)")


def name_order(path: Path) -> tuple[tuple[int, int | str], ...]:
    """Sort key: the name case-insensitively, with each run of digits compared as a number."""
    parts = _DIGITS.split(path.name.casefold())
    return tuple((1, int(part)) if part.isdigit() else (0, part) for part in parts)


@dataclass(frozen=True, slots=True)
class Chosen:
    """The photos to upload, in order, and what was left out of the folders given."""

    photos: list[Path]
    left_out: list[Path]
    folders: list[Path]


def _is_photo(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            head = handle.read(SNIFF_BYTES)
    except OSError:
        return False
    return sniff_image(head, filename=path.name) is not None


def choose_photos(paths: Sequence[Path]) -> Chosen:
    """The photos of `paths`: a file as given, a folder as its photos in name order.

    Raises:
        CliError: EXIT_BAD_FILE for a folder that cannot be read or holds no photo.
    """
    photos: list[Path] = []
    left_out: list[Path] = []
    folders: list[Path] = []
    for path in paths:
        if not path.is_dir():
            photos.append(path)
            continue
        folders.append(path)
        try:
            entries = sorted(path.iterdir(), key=name_order)
        except OSError as exc:
            raise CliError(f"cannot read the folder {path}: {exc.strerror}", EXIT_BAD_FILE) from exc
        found = [entry for entry in entries if entry.is_file() and _is_photo(entry)]
        left_out += [entry for entry in entries if entry not in found]
        if not found:
            raise CliError(f"the folder {path} holds no photo", EXIT_BAD_FILE)
        photos += found
    return Chosen(photos=photos, left_out=left_out, folders=folders)
