"""Images per second one arq job worker sustains (quoted in docs/operations.md, "Scaling out").

    .venv/bin/python -m bench.jobs [--images 200] [--image-bytes 1000000] [--jobs 2]

Starts the standalone sandbox (no latency), a throw-away redis-server, one arq worker and the
web service, creates a synthetic order, submits `--jobs` jobs for it at once and reports the
wall time from submission until all are complete. Needs redis-server.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx

from testkit.jobs import job_env, start_worker
from testkit.processes import redis_server, sandbox_process, start_web, stop_group


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--image-bytes", type=int, default=1_000_000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2, help="JOB_CONCURRENCY")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-jobs-"))
    try:
        with (
            sandbox_process("--processing-delay", "0", "--log-level", "warning") as root,
            redis_server(shutil.which("redis-server") or "redis-server") as redis,
        ):
            order = httpx.post(
                f"{root}/_sandbox/orders",
                json={"images": args.images, "image_bytes": args.image_bytes},
                timeout=120,
            ).json()
            env = job_env(
                f"{root}/v3",
                work / "data",
                redis_url=redis,
                archive_store=work / "store",
                job_concurrency=args.concurrency,
                job_storage_max_bytes=0,
            )
            worker = start_worker(env, work / "worker.log")
            web, url = start_web(env)
            try:
                with httpx.Client(base_url=url, timeout=60) as client:
                    started = time.monotonic()
                    jobs = [
                        client.post(f"/orders/{order['order_id']}/jobs").json()
                        for _ in range(args.jobs)
                    ]
                    states = set()
                    for job in jobs:
                        while (state := client.get(job["status_url"]).json())["state"] in {
                            "queued",
                            "running",
                        }:
                            time.sleep(0.05)
                        states.add(state["state"])
                    elapsed = time.monotonic() - started
            finally:
                stop_group(web)
                stop_group(worker)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    images = args.images * args.jobs
    megabytes = images * args.image_bytes / 1e6
    sys.stdout.write(
        f"{args.jobs} jobs x {args.images} images x {args.image_bytes} B, one worker "
        f"(JOB_CONCURRENCY={args.concurrency}): {elapsed:.2f} s, {images / elapsed:.0f} images/s, "
        f"{megabytes / elapsed:.0f} MB/s, states={sorted(states)}\n"
    )


if __name__ == "__main__":
    main()
