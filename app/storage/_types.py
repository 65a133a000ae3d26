"""Values and errors of the archive store (see `app.storage._base` for the guarantees)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

NAMESPACES = ("cache", "manifests", "jobs")
# Every segment starts with a letter or digit: no "..", no hidden names, no empty segments.
_KEY = re.compile(r"(?:cache|manifests|jobs)(?:/[A-Za-z0-9][A-Za-z0-9._=-]{0,199}){1,4}")


class StoreError(Exception):
    """The storage backend failed."""


class StoreTimeout(StoreError):
    """The backend did not answer within the store's request deadline."""


class ObjectMissing(StoreError):
    """No object under this key."""

    def __init__(self, key: str) -> None:
        super().__init__(f"no stored object {key!r}")
        self.key = key


class InvalidKey(ValueError):
    """The key is outside the store's namespaces or has unsafe characters."""


def check_key(key: str) -> str:
    """Return `key` if it is a valid store key.

    Raises:
        InvalidKey: it is not (`cache/<name>`, `manifests/<name>`, `jobs/<name>`; names of
            letters, digits, `.`, `_`, `=`, `-`, not starting with a dot, up to 4 levels).
    """
    if not _KEY.fullmatch(key):
        raise InvalidKey(f"invalid store key {key!r}")
    return key


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectInfo:
    """A stored object: `etag` is an opaque version token (unquoted) that changes with content."""

    key: str
    size: int
    last_modified: datetime  # aware, UTC
    etag: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Quota:
    """A byte bound over the keys under `namespaces`. `max_bytes=None` means unbounded."""

    namespaces: tuple[str, ...]
    max_bytes: int | None
    evictable: bool

    def covers(self, key: str) -> bool:
        return key.split("/", 1)[0] in self.namespaces


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    """One object as eviction sees it: `accessed` is the last read or write, epoch seconds."""

    key: str
    size: int
    accessed: float
