"""Wiring of deliveries into a web process: the store of the job backend's choice (SQLite in
`DATA_DIR`, or Redis when `REDIS_URL` is set) and a callback sender of its own."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from app.core.config import Settings
from app.core.keys import ServiceKeys
from app.core.security import Signer
from app.deliveries.service import DeliveryService
from app.deliveries.store import DeliveryStore
from app.jobs.context import callback_client, callback_sender
from app.jobs.keybox import KeyBox


def open_store(settings: Settings) -> DeliveryStore:
    if settings.redis_url:
        from app.deliveries.redis import RedisDeliveryStore

        return RedisDeliveryStore.from_url(settings.redis_url)
    from app.deliveries.sqlite import SQLiteDeliveryStore

    return SQLiteDeliveryStore(settings.data_dir / "deliveries.sqlite3")


@contextlib.asynccontextmanager
async def open_deliveries(
    settings: Settings, *, keys: ServiceKeys
) -> AsyncIterator[DeliveryService]:
    """The delivery service of a web process; closes its store and callbacks on exit."""
    store = open_store(settings)
    try:
        async with callback_client() as client:
            callbacks = callback_sender(settings, client, keys=keys)
            try:
                yield DeliveryService(
                    settings=settings,
                    store=store,
                    keybox=KeyBox(keys.sealing),
                    signer=Signer(keys.links),
                    callbacks=callbacks,
                )
            finally:
                await callbacks.aclose(grace=settings.callback_timeout)
    finally:
        await store.aclose()
