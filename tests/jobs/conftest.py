"""Fixtures of the jobs suite: the service with either backend, Redis, an arq worker."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import redis

from app.main import create_app
from testkit.jobs import FAST_JOBS, job_env, start_worker
from testkit.processes import redis_server, stop
from tests.conftest import SettingsFactory
from tests.support import UvicornThread, require_tool


@dataclass
class JobsApi:
    """The service under test and where its job state lives."""

    url: str
    backend: str
    data_dir: Path
    store_dir: Path
    operator_key: str
    redis_url: str | None = None

    def stored_bytes(self) -> bytes:
        """Everything the backend stores about jobs, raw (to look for secrets in it)."""
        if self.redis_url is None:
            return b"".join(p.read_bytes() for p in self.data_dir.glob("jobs.sqlite3*"))
        client = redis.Redis.from_url(self.redis_url)
        try:
            chunks: list[bytes] = []
            for key in client.scan_iter("*"):
                kind = client.type(key)
                if kind == b"string":
                    chunks.append(cast(bytes | None, client.get(key)) or b"")
                elif kind == b"set":
                    chunks.extend(cast(set[bytes], client.smembers(key)))
                elif kind == b"zset":
                    chunks.extend(cast(list[bytes], client.zrange(key, 0, -1)))
            return b"".join(chunks)
        finally:
            client.close()


@dataclass
class RedisWorker:
    url: str
    store_dir: Path
    process: subprocess.Popen[Any]
    operator_key: str


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with redis_server(require_tool("redis-server")) as url:
        yield url


@pytest.fixture(scope="session")
def redis_worker(
    redis_url: str, sandbox_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RedisWorker]:
    """One arq worker for the contract suite (database 1 of the shared redis-server)."""
    root = tmp_path_factory.mktemp("arq")
    url = f"{redis_url}/1"
    # The worker outlives every test, so its key is its own: the log it leaves is read by key.
    key = f"operator-arq-{uuid.uuid4().hex[:12]}"
    env = job_env(
        sandbox_url,
        root / "worker",
        redis_url=url,
        archive_store=root / "store",
        autoenhance_api_key=key,
    )
    process = start_worker(env, root / "worker.log")
    yield RedisWorker(url=url, store_dir=root / "store", process=process, operator_key=key)
    stop(process)


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def jobs_api(
    request: pytest.FixtureRequest, make_settings: SettingsFactory, operator_key: str
) -> Iterator[JobsApi]:
    """The service with the embedded backend, or web-only against Redis and an arq worker."""
    overrides: dict[str, Any] = dict(FAST_JOBS)
    redis_url = None
    store_dir: Path | None = None
    if request.param == "redis":
        worker: RedisWorker = request.getfixturevalue("redis_worker")
        redis_url = worker.url
        store_dir = worker.store_dir
        operator_key = worker.operator_key
        overrides.update(
            redis_url=redis_url, archive_store=str(store_dir), autoenhance_api_key=operator_key
        )
    settings = make_settings(**overrides)
    with UvicornThread(create_app(settings)) as server:
        yield JobsApi(
            url=server.url,
            backend=request.param,
            data_dir=settings.data_dir,
            store_dir=store_dir or settings.data_dir / "archives",  # the default ARCHIVE_STORE
            operator_key=operator_key,
            redis_url=redis_url,
        )
