"""The embedded delivery store: one SQLite file in `DATA_DIR`, shared by the processes of
one machine (WAL mode). An update is a read-modify-write inside `BEGIN IMMEDIATE`, so two
processes never interleave their changes to one delivery."""

from __future__ import annotations

from pathlib import Path

from app.core.files import PrivateSQLite
from app.deliveries.models import DeliveryRecord
from app.deliveries.store import Mutation

SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    delivery_id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    order_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_order ON deliveries (owner, order_id);
"""
# Seconds a writer waits for another process's transaction before failing.
BUSY_TIMEOUT = 30.0


class SQLiteDeliveryStore(PrivateSQLite):
    name = "sqlite"

    def __init__(self, path: Path) -> None:
        # 0600 in a 0700 directory: records carry sealed keys and token hashes.
        super().__init__(path, schema=SCHEMA, busy_timeout=BUSY_TIMEOUT)

    def _write(self, record: DeliveryRecord) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO deliveries (delivery_id, token_hash, owner, order_id,"
            " created_at, data) VALUES (?, ?, ?, ?, ?, ?)",
            (
                record.delivery_id,
                record.token_hash,
                record.owner,
                record.order_id,
                record.created_at,
                record.model_dump_json(),
            ),
        )

    def _one(self, column: str, value: str) -> DeliveryRecord | None:
        row = self._conn.execute(
            f"SELECT data FROM deliveries WHERE {column} = ?", (value,)
        ).fetchone()
        return DeliveryRecord.model_validate_json(row[0]) if row else None

    def _update(self, delivery_id: str, mutate: Mutation) -> DeliveryRecord | None:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            record = self._one("delivery_id", delivery_id)
            if record is not None and mutate(record):
                self._write(record)
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        return record

    def _of_order(self, owner: str, order_id: str) -> list[DeliveryRecord]:
        rows = self._conn.execute(
            "SELECT data FROM deliveries WHERE owner = ? AND order_id = ? ORDER BY created_at",
            (owner, order_id),
        ).fetchall()
        return [DeliveryRecord.model_validate_json(row[0]) for row in rows]

    async def insert(self, record: DeliveryRecord) -> None:
        await self._call(self._write, record)

    async def get(self, delivery_id: str) -> DeliveryRecord | None:
        record: DeliveryRecord | None = await self._call(self._one, "delivery_id", delivery_id)
        return record

    async def by_token(self, token_hash: str) -> DeliveryRecord | None:
        record: DeliveryRecord | None = await self._call(self._one, "token_hash", token_hash)
        return record

    async def update(self, delivery_id: str, mutate: Mutation) -> DeliveryRecord | None:
        record: DeliveryRecord | None = await self._call(self._update, delivery_id, mutate)
        return record

    async def of_order(self, owner: str, order_id: str) -> list[DeliveryRecord]:
        records: list[DeliveryRecord] = await self._call(self._of_order, owner, order_id)
        return records

    async def aclose(self) -> None:
        await self._call(self._conn.close)
