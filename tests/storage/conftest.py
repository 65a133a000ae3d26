"""Fixtures of the store suite: every store test runs on a local directory and on a real
S3-protocol server (moto on loopback, a fresh bucket per test)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from app.storage import ArchiveStore, LocalArchiveStore, Quota
from app.storage._s3 import S3ArchiveStore
from testkit.s3 import S3Server
from tests.storage.support import StoreFactory


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make_store(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[StoreFactory]:
    """Stores over ONE location (a directory or a bucket): several stores made by one factory
    are several nodes sharing it."""
    stores: list[ArchiveStore] = []
    location: dict[str, Any] = {}
    if backend == "local":
        location["root"] = tmp_path / "archives"
    else:
        server: S3Server = request.getfixturevalue("s3_server")
        location.update(bucket=server.bucket(), server=server)

    def factory(*, quotas: tuple[Quota, ...] = (), min_idle: float = 0.0) -> ArchiveStore:
        store: ArchiveStore
        if backend == "local":
            store = LocalArchiveStore(location["root"], quotas=quotas, min_idle=min_idle)
        else:
            server = location["server"]
            store = S3ArchiveStore(
                bucket=location["bucket"],
                prefix="service/archives",
                endpoint=server.endpoint,
                quotas=quotas,
                min_idle=min_idle,
                config=server.credentials,
            )
        stores.append(store)
        return store

    factory.location = location  # type: ignore[attr-defined]
    yield factory
    for store in stores:
        await store.settle()
        await store.aclose()
