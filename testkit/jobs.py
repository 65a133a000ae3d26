"""Job processes for tests and benchmarks: fast job settings, their environment, the job worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

from testkit.processes import ROOT, stop

SIGNING_SECRET = "jobs-test-signing-secret-0123456789"
WEBHOOK_TOKEN = "jobs-test-webhook-token"
OPERATOR_KEY = "operator-test-key"

# Short intervals so a test sees claims, cancellations, lapsed leases and sweeps in ~1 s.
FAST_JOBS: dict[str, Any] = {
    "job_poll_interval": 0.1,
    "job_lease_seconds": 2.0,
    "job_sweep_interval": 0.3,
    "job_wait_poll_min": 30.0,  # long: a waiting job must be started by the webhook
    "job_wait_poll_max": 60.0,
    "callback_allow_private": True,
    "webhook_auth_token": WEBHOOK_TOKEN,
    "signing_secret": SIGNING_SECRET,
    "upstream_retry_max_wait": 0.2,
    "upstream_read_timeout": 5.0,
    # wait_state polls every 50 ms: far more often than any real client may.
    "rate_limit_job_status": "100000/minute",
}

WORKERS_KEY = "jobs:workers"


def job_env(sandbox_url: str, data_dir: Path, **overrides: Any) -> dict[str, str]:
    """Environment of a service or worker process with the fast job settings."""
    values = {
        **FAST_JOBS,
        "autoenhance_api_key": OPERATOR_KEY,
        "autoenhance_api_base": sandbox_url,
        "data_dir": str(data_dir),
        **overrides,
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOB_", "REDIS_"))}
    env.update(
        {
            key.upper(): str(value).lower() if isinstance(value, bool) else str(value)
            for key, value in values.items()
        }
    )
    env["PYTHONPATH"] = str(ROOT)
    return env


def registered_pids(redis_url: str) -> set[int]:
    """Pids of the workers registered in Redis (their heartbeats, whatever their age)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        entries = cast(dict[bytes, bytes], client.hgetall(WORKERS_KEY))
    finally:
        client.close()
    return {int(json.loads(raw)["pid"]) for raw in entries.values()}


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[Any]:
    """`python -m app.jobs.worker`, waiting until it has registered in Redis."""
    import redis

    client = redis.Redis.from_url(env["REDIS_URL"])
    before = client.hlen(WORKERS_KEY)
    with log.open("ab") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.jobs.worker"],
            cwd=ROOT,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 20
        while process.pid not in registered_pids(env["REDIS_URL"]):
            if process.poll() is not None or time.monotonic() > deadline:
                stop(process)
                raise RuntimeError(
                    f"arq worker did not start ({before} registered before):\n"
                    + log.read_text(errors="replace")
                )
            time.sleep(0.05)
    finally:
        client.close()
    return process
