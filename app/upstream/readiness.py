"""Readiness: can this instance serve downloads right now?

It lives beside the upstream client because its main check is a probe of the Autoenhance API
sent with the client's own headers; the other parts it checks (the archive store, Redis) are
handed in as callables, so this module imports nothing above the upstream layer.

Four checks, each named in the answer:

- `upstream`: the Autoenhance API answers. The probe lists one order with the operator's key
  (`GET /orders/?per_page=1`): cheap, read-only, and it spends no credit. Any HTTP answer
  below 500 counts as reachable (a refused key is reported, but the API is up and callers
  who bring their own key are served). The result is reused for `ttl` seconds, and
  concurrent checks share one probe, so a load balancer polling every second costs the API
  one call per `ttl`.
- `circuit`: the shared upstream circuit is not open. While it is open this instance fails
  every download fast, so a load balancer should send callers elsewhere; half-open (a trial
  call may go through) counts as ready. Circuits of single keys (429/401 for one caller's
  key) do not count: they harm no other caller.
- `archive_store`: `DATA_DIR` accepts a new file (spool files live there) and keeps
  `data_dir_min_free` bytes free (below it jobs fail: the answer says how full it is), and the
  archive store (`ARCHIVE_STORE`, e.g. an S3 bucket) answers with the configured credentials
  (on S3 a one-key listing); the answer is reused for `ttl` seconds like the upstream probe.
- `redis`: the rate-limit storage answers, only when `REDIS_URL` is set.
"""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from app.upstream.breaker import CircuitBreaker
from app.upstream.client import api_headers

PROBE_TIMEOUT = httpx.Timeout(3.0)
REDIS_TIMEOUT = 2.0  # seconds


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


class Readiness:
    """Runs the readiness checks (see the module docstring)."""

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        upstream_base: str,
        api_key: str | None,
        api_version: str,
        data_dir: Path,
        data_dir_min_free: int = 0,
        redis_check: Callable[[], Awaitable[bool]] | None = None,
        store_check: Callable[[], Awaitable[None]] | None = None,
        store_name: str = "",
        breaker: CircuitBreaker | None = None,
        ttl: float = 10.0,
    ) -> None:
        self._http = http
        self._url = upstream_base.rstrip("/") + "/orders/"
        self._headers = api_headers(api_version=api_version, api_key=api_key)
        self._data_dir = data_dir
        self._min_free = data_dir_min_free
        self._redis_check = redis_check
        self._store_check = store_check
        self._store_name = store_name
        self._store_cached: tuple[float, Check] | None = None
        self._breaker = breaker
        self._ttl = ttl
        self._lock = asyncio.Lock()
        self._cached: tuple[float, Check] | None = None

    async def check(self) -> list[Check]:
        """Every check's result; the instance is ready when all are ok."""
        local = self._archive_store()
        checks = [await self._upstream(), await self._store() if local.ok else local]
        if self._breaker is not None:
            checks.insert(1, self._circuit(self._breaker))
        if self._redis_check is not None:
            checks.append(await self._redis())
        return checks

    async def _upstream(self) -> Check:
        async with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < self._ttl:
                return self._cached[1]
            result = await self._probe()
            self._cached = (time.monotonic(), result)
            return result

    async def _probe(self) -> Check:
        try:
            response = await self._http.get(
                self._url, params={"per_page": "1"}, headers=self._headers, timeout=PROBE_TIMEOUT
            )
            await response.aclose()
        except httpx.TimeoutException:
            return Check("upstream", False, "the Autoenhance API did not answer in time")
        except httpx.HTTPError as exc:
            return Check(
                "upstream", False, f"the Autoenhance API is unreachable ({type(exc).__name__})"
            )
        status = response.status_code
        if status >= 500:
            return Check("upstream", False, f"the Autoenhance API answered {status}")
        if status in (401, 403):
            return Check("upstream", True, f"reachable, but it refused the operator key ({status})")
        return Check("upstream", True, f"reachable ({status})")

    @staticmethod
    def _circuit(breaker: CircuitBreaker) -> Check:
        if breaker.state == "open":
            return Check(
                "circuit",
                False,
                f"open after repeated upstream failures; next trial call in "
                f"{math.ceil(breaker.retry_after)} s",
            )
        return Check("circuit", True, breaker.state)

    def _archive_store(self) -> Check:
        try:
            self._data_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self._data_dir, prefix=".ready-") as handle:
                handle.write(b"ok")
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            return Check("archive_store", False, f"DATA_DIR is not writable ({exc.strerror})")
        free = shutil.disk_usage(self._data_dir).free
        if free < self._min_free:
            return Check(
                "archive_store",
                False,
                f"DATA_DIR is full: {free} bytes free, below DATA_DIR_MIN_FREE_BYTES "
                f"({self._min_free}); jobs fail until space is freed",
            )
        return Check("archive_store", True, "writable")

    async def _store(self) -> Check:
        if self._store_check is None:
            return Check("archive_store", True, "writable")
        now = time.monotonic()
        if self._store_cached is not None and now - self._store_cached[0] < self._ttl:
            return self._store_cached[1]
        try:
            await asyncio.wait_for(self._store_check(), PROBE_TIMEOUT.read or 3.0)
            result = Check("archive_store", True, f"{self._store_name} answers")
        except TimeoutError:
            result = Check("archive_store", False, f"{self._store_name} did not answer in time")
        except Exception as exc:  # any failure of the store means "not usable"
            result = Check("archive_store", False, f"{self._store_name} is unusable ({exc})")
        self._store_cached = (time.monotonic(), result)
        return result

    async def _redis(self) -> Check:
        assert self._redis_check is not None
        try:
            ok = await asyncio.wait_for(self._redis_check(), REDIS_TIMEOUT)
        except Exception as exc:  # any failure of the client means "not reachable"
            return Check("redis", False, f"Redis is unreachable ({type(exc).__name__})")
        return Check("redis", ok, "reachable" if ok else "Redis did not answer")
