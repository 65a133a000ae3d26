"""`make bench`: time to first byte, total time, throughput and peak memory of the batch
endpoint, against the standalone sandbox with its latency knob, one uvicorn worker.

Scenarios and targets:
  (a) 100 images x 1 MB, 200 ms upstream latency: first byte <= 0.5 s,
      total <= 1.15 x ceil(100/8) x 0.2 s
  (b) 1,000 images x 1 MB, 5 ms: peak RSS growth <= 64 MB
  (c) 10 clients at once, 20 images x 1 MB each, 200 ms: slowest <= 1.3 x a lone client
  (d) 50 images x 10 MB, no latency: >= 300 MB/s through one worker
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from bench.common import (
    MB,
    ROOT,
    RssSampler,
    Transfer,
    create_order,
    curl,
    finish,
    sandbox,
    service,
    set_latency,
)

CONCURRENCY = 8


def run_one(base: str, order_id: str) -> Transfer:
    result = finish(curl(f"{base}/orders/{order_id}/images"))
    if result.status != 200:
        raise RuntimeError(f"download answered {result.status}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", help="comma list of scenarios to run (a,b,c,d)")
    args = parser.parse_args()
    only = set(args.only.split(",")) if args.only else {"a", "b", "c", "d"}
    rows: list[dict[str, object]] = []

    with sandbox() as sb, service(sb, DOWNLOAD_CONCURRENCY=str(CONCURRENCY)) as (base, proc):
        # Warm-up: imports, connection pools and the sandbox's synthetic image cache.
        set_latency(sb, 0)
        run_one(base, create_order(sb, images=10, image_bytes=MB))

        if "a" in only:
            order = create_order(sb, images=100, image_bytes=MB)
            set_latency(sb, 200)
            with RssSampler(proc) as rss:
                t = run_one(base, order)
            target_total = 1.15 * math.ceil(100 / CONCURRENCY) * 0.2
            rows.append(
                {
                    "scenario": "(a) 100 x 1 MB, 200 ms",
                    "ttfb_s": t.ttfb,
                    "total_s": t.total,
                    "mb_s": t.mb_per_s,
                    "rss_growth_mb": rss.growth_mb,
                    "target": f"ttfb <= 0.5 s, total <= {target_total:.2f} s",
                    "met": t.ttfb <= 0.5 and t.total <= target_total,
                }
            )

        if "b" in only:
            order = create_order(sb, images=1000, image_bytes=MB)
            set_latency(sb, 5)
            with RssSampler(proc) as rss:
                t = run_one(base, order)
            rows.append(
                {
                    "scenario": "(b) 1000 x 1 MB, 5 ms",
                    "ttfb_s": t.ttfb,
                    "total_s": t.total,
                    "mb_s": t.mb_per_s,
                    "rss_growth_mb": rss.growth_mb,
                    "target": "RSS growth <= 64 MB",
                    "met": rss.growth_mb <= 64,
                }
            )

        if "c" in only:
            set_latency(sb, 200)
            lone = run_one(base, create_order(sb, images=20, image_bytes=MB))
            orders = [create_order(sb, images=20, image_bytes=MB) for _ in range(10)]
            with RssSampler(proc) as rss:
                started = time.monotonic()
                procs = [curl(f"{base}/orders/{o}/images") for o in orders]
                results = [finish(p) for p in procs]
                wall = time.monotonic() - started
            slowest = max(r.total for r in results)
            rows.append(
                {
                    "scenario": "(c) 10 clients x 20 x 1 MB, 200 ms",
                    "ttfb_s": max(r.ttfb for r in results),
                    "total_s": slowest,
                    "mb_s": sum(r.size for r in results) / MB / wall,
                    "rss_growth_mb": rss.growth_mb,
                    "target": f"slowest <= 1.3 x lone ({lone.total:.2f} s)",
                    "met": slowest <= 1.3 * lone.total and all(r.status == 200 for r in results),
                }
            )

        if "d" in only:
            order = create_order(sb, images=50, image_bytes=10 * MB)
            set_latency(sb, 0)
            run_one(base, order)  # the sandbox renders its 10 MB body once
            with RssSampler(proc) as rss:
                t = run_one(base, order)
            rows.append(
                {
                    "scenario": "(d) 50 x 10 MB, no latency",
                    "ttfb_s": t.ttfb,
                    "total_s": t.total,
                    "mb_s": t.mb_per_s,
                    "rss_growth_mb": rss.growth_mb,
                    "target": ">= 300 MB/s",
                    "met": t.mb_per_s >= 300,
                }
            )

    print()
    print("| scenario | first byte | total | MB/s | peak RSS growth | target | met |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['scenario']} | {row['ttfb_s']:.3f} s | {row['total_s']:.2f} s "
            f"| {row['mb_s']:.0f} | {row['rss_growth_mb']:.1f} MB | {row['target']} "
            f"| {'yes' if row['met'] else 'NO'} |"
        )
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    Path(out / "stream.json").write_text(json.dumps(rows, indent=2, default=str))


if __name__ == "__main__":
    main()
