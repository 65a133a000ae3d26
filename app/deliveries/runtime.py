"""Wiring of deliveries into a web process: the store of the job backend's choice (SQLite in
`DATA_DIR`, or Redis when `REDIS_URL` is set) and the process's callback sender."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from app.core.config import Settings
from app.core.keys import ServiceKeys
from app.core.security import Signer
from app.deliveries.service import DeliveryService
from app.deliveries.store import DeliveryStore
from app.jobs.callbacks import CallbackSender
from app.jobs.keybox import KeyBox


def open_store(settings: Settings) -> DeliveryStore:
    if settings.redis_url:
        from app.deliveries.redis import RedisDeliveryStore

        return RedisDeliveryStore.from_url(settings.redis_url, timeout=settings.redis_timeout)
    from app.deliveries.sqlite import SQLiteDeliveryStore

    return SQLiteDeliveryStore(settings.data_dir / "deliveries.sqlite3")


@contextlib.asynccontextmanager
async def open_deliveries(
    settings: Settings, *, keys: ServiceKeys, callbacks: CallbackSender
) -> AsyncIterator[DeliveryService]:
    """The delivery service of a web process; closes its store on exit.

    Pending callbacks are drained first (they record their outcome in the store), which stops
    `callbacks` for the whole process: open deliveries before anything else that sends, so
    that they close after it.
    """
    store = open_store(settings)
    try:
        yield DeliveryService(
            settings=settings,
            store=store,
            keybox=KeyBox(keys.sealing),
            signer=Signer(keys.links),
            callbacks=callbacks,
        )
    finally:
        try:
            await callbacks.aclose(grace=settings.callback_timeout)
        finally:
            await store.aclose()
