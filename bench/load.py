"""`make load`: a bounded load run on loopback.

50 concurrent clients download 20-image orders (streamed, the archive cache off so every
request goes through the whole pipeline) from the standalone sandbox with upstream latency,
for a fixed duration and at most a fixed number of requests; then it stops by itself. Every
archive is checked (CRC of every entry, expected entry count). Prints throughput, latency
percentiles, errors and the service's peak RSS.

Targets: zero errors, every archive valid, peak RSS < 512 MB, p99 <= 2 x p50.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import time
import zipfile
from dataclasses import dataclass, field

import httpx

from bench.common import create_order, sandbox, service, set_latency
from testkit.processes import MB, ROOT, RssSampler


@dataclass
class Results:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    invalid: int = 0
    bytes: int = 0


def check_archive(data: bytes, images: int) -> bool:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        return archive.testzip() is None and len(archive.namelist()) == images
    except zipfile.BadZipFile:
        return False


async def client(
    http: httpx.AsyncClient,
    url: str,
    images: int,
    deadline: float,
    budget: list[int],
    results: Results,
) -> None:
    while time.monotonic() < deadline and budget[0] > 0:
        budget[0] -= 1
        started = time.monotonic()
        try:
            response = await http.get(url)
        except httpx.HTTPError as exc:
            results.errors.append(type(exc).__name__)
            continue
        elapsed = time.monotonic() - started
        if response.status_code != 200:
            results.errors.append(f"HTTP {response.status_code}")
            continue
        results.latencies.append(elapsed)
        results.bytes += len(response.content)
        if not await asyncio.to_thread(check_archive, response.content, images):
            results.invalid += 1


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def run(args: argparse.Namespace) -> dict[str, object]:
    settings = dict(item.split("=", 1) for item in args.service_env)
    with sandbox() as sb, service(sb, **settings) as svc:
        base, proc = svc.base, svc.process
        set_latency(sb, 0)
        orders = [
            create_order(sb, images=args.images, image_bytes=args.image_bytes)
            for _ in range(args.orders)
        ]
        set_latency(sb, args.latency_ms)
        results = Results()
        budget = [args.max_requests]
        limits = httpx.Limits(max_connections=args.clients)
        async with httpx.AsyncClient(timeout=120, limits=limits) as http:
            with RssSampler(proc) as rss:
                started = time.monotonic()
                deadline = started + args.duration
                await asyncio.gather(
                    *(
                        client(
                            http,
                            f"{base}/orders/{orders[i % len(orders)]}/images",
                            args.images,
                            deadline,
                            budget,
                            results,
                        )
                        for i in range(args.clients)
                    )
                )
                wall = time.monotonic() - started
        lat = sorted(results.latencies)
        summary: dict[str, object] = {
            "clients": args.clients,
            "duration_s": round(wall, 1),
            "requests": len(lat) + len(results.errors),
            "archives_per_s": round(len(lat) / wall, 2),
            "mb_per_s": round(results.bytes / MB / wall, 1),
            "p50_s": round(percentile(lat, 50), 3) if len(lat) > 1 else None,
            "p95_s": round(percentile(lat, 95), 3) if len(lat) > 1 else None,
            "p99_s": round(percentile(lat, 99), 3) if len(lat) > 1 else None,
            "errors": len(results.errors),
            "error_kinds": sorted(set(results.errors)),
            "invalid_archives": results.invalid,
            "peak_rss_mb": round(rss.peak / MB, 1),
            "rss_growth_mb": round(rss.growth_mb, 1),
        }
        return summary


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds")
    parser.add_argument("--max-requests", type=int, default=20_000)
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--image-bytes", type=int, default=100_000)
    parser.add_argument("--orders", type=int, default=10)
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument(
        "--service-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of the service under load, e.g. IMAGE_POOL_BYTES=0 (repeatable)",
    )
    args = parser.parse_args()
    summary = asyncio.run(run(args))
    p50, p99, peak = summary["p50_s"], summary["p99_s"], summary["peak_rss_mb"]
    tail_ok = isinstance(p50, float) and isinstance(p99, float) and p99 <= 2 * p50
    checks = {
        "zero errors": summary["errors"] == 0,
        "every archive valid": summary["invalid_archives"] == 0,
        "peak RSS < 512 MB": isinstance(peak, float) and peak < 512,
        "p99 <= 2 x p50": tail_ok,
    }
    print()
    for key, value in summary.items():
        print(f"{key:>18}: {value}")
    for name, met in checks.items():
        print(f"{name:>18}: {'met' if met else 'NOT MET'}")
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "load.json").write_text(json.dumps({**summary, "targets": checks}, indent=2))


if __name__ == "__main__":
    main()
