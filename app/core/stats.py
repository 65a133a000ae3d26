"""Service counters for `/api/stats`, and the ring of recent errors.

Counters are read from the Prometheus metrics, not kept twice: under several workers
(`PROMETHEUS_MULTIPROC_DIR` set) every worker writes its own metric files and `collect_registry`
aggregates them, so the figures are the whole service's whatever worker answers.

Recent errors (answers with status 500 or more, warnings and errors logged by the service,
batches that skipped images after upstream failures) go into a small SQLite table in
`DATA_DIR`, trimmed to the last `capacity` rows. SQLite, because every worker of the machine
sees the same file without another server; the standard library has it. Writes happen only
on errors, with a short lock timeout, and a failed write is dropped: telemetry never fails
a request.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from app.core.files import connect_private_sqlite
from app.core.logging import redact

ERROR_RING_SIZE = 200
MESSAGE_MAX_CHARS = 500
# Seconds a writer waits for another worker's write; errors are rare, a long wait is a bug.
LOCK_TIMEOUT = 0.25
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_mode() -> bool:
    """True when metrics are shared between worker processes through files."""
    return bool(os.environ.get(MULTIPROC_ENV))


def collect_registry() -> CollectorRegistry:
    """The registry holding the whole service's metrics (every worker's, in multiprocess mode)."""
    if not multiprocess_mode():
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceStats:
    orders_processed: int
    images_downloaded: int
    images_failed: int
    archives_served: int
    orders_created: int
    uptime_seconds: float


def _sum_samples(
    registry: CollectorRegistry, sample: str, *, exclude: dict[str, str] | None = None
) -> float:
    total = 0.0
    for family in registry.collect():
        for item in family.samples:
            if item.name != sample:
                continue
            if exclude and any(item.labels.get(k) == v for k, v in exclude.items()):
                continue
            total += item.value
    return total


def service_stats(*, now: float | None = None) -> ServiceStats:
    """The counters the page shows, summed over every worker.

    An order is "processed" when an archive of it was built from its images (streamed or as a
    job); an archive "served" counts copies from the cache too.
    """
    registry = collect_registry()
    started = _min_gauge(registry, "service_start_time_seconds")
    current = now if now is not None else time.time()
    return ServiceStats(
        orders_processed=int(
            _sum_samples(registry, "archives_served_total", exclude={"source": "cache"})
        ),
        images_downloaded=int(_sum_samples(registry, "images_delivered_total")),
        images_failed=int(_sum_samples(registry, "images_skipped_total")),
        archives_served=int(_sum_samples(registry, "archives_served_total")),
        orders_created=int(_sum_samples(registry, "orders_created_total")),
        uptime_seconds=round(max(0.0, current - started), 1) if started else 0.0,
    )


def _min_gauge(registry: CollectorRegistry, name: str) -> float | None:
    values = [
        item.value
        for family in registry.collect()
        for item in family.samples
        if item.name == name and item.value > 0
    ]
    return min(values) if values else None


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorEvent:
    at: float
    kind: str
    status: int | None
    route: str | None
    request_id: str | None
    message: str


class ErrorLog:
    """A bounded ring of recent error events in a SQLite file, shared by the workers."""

    def __init__(self, path: Path, *, capacity: int = ERROR_RING_SIZE) -> None:
        self.path = path
        self.capacity = capacity
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS errors (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                "at REAL, kind TEXT, status INTEGER, route TEXT, request_id TEXT, message TEXT)"
            )

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = connect_private_sqlite(self.path, busy_timeout=LOCK_TIMEOUT)
        try:
            yield db
        finally:
            db.close()

    def record_event(
        self,
        *,
        kind: str,
        message: str,
        status: int | None = None,
        route: str | None = None,
        request_id: str | None = None,
    ) -> None:
        """Append an event (message redacted and cut short); drop it if the file is busy."""
        row = (
            time.time(),
            kind,
            status,
            route,
            request_id,
            redact(message)[:MESSAGE_MAX_CHARS],
        )
        with contextlib.suppress(sqlite3.Error), self._connect() as db:
            db.execute(
                "INSERT INTO errors (at, kind, status, route, request_id, message) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                row,
            )
            db.execute(
                "DELETE FROM errors WHERE id <= (SELECT MAX(id) FROM errors) - ?",
                (self.capacity,),
            )

    def recent(self, limit: int = 50) -> list[ErrorEvent]:
        """The latest events, newest first."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT at, kind, status, route, request_id, message FROM errors "
                "ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            ErrorEvent(at=at, kind=kind, status=status, route=route, request_id=rid, message=msg)
            for at, kind, status, route, rid, msg in rows
        ]


class ErrorLogHandler(logging.Handler):
    """Feeds the error ring from the service's logs.

    Takes warnings and errors, and batch lines whose outcome says images were skipped or the
    archive failed. Unexpected exceptions are left out: the middleware records their 500.
    """

    SKIPPED_LOGGERS = frozenset({"app.errors", "app.access"})

    def __init__(self, error_log: ErrorLog) -> None:
        super().__init__(level=logging.INFO)
        self.error_log = error_log

    def emit(self, record: logging.LogRecord) -> None:
        if record.name in self.SKIPPED_LOGGERS:
            return
        extras: dict[str, Any] = record.__dict__
        is_batch_failure = extras.get("event") == "batch" and extras.get("outcome") in {
            "partial",
            "failed",
        }
        if record.levelno < logging.WARNING and not is_batch_failure:
            return
        request_id = extras.get("request_id")
        self.error_log.record_event(
            kind="batch" if is_batch_failure else record.levelname.lower(),
            message=record.getMessage(),
            route=record.name,
            request_id=request_id if isinstance(request_id, str) and request_id != "-" else None,
        )
