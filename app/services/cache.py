"""A finished archive as a file on disk (job archives until they move to the archive store).

Cached archives of the download endpoint live in the archive store (`app.storage`, keys
`cache/…`), managed by `app.services.downloads`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class CachedArchive:
    path: Path
    size: int
    etag: str
    last_modified: datetime
    meta: dict[str, Any]
