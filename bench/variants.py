"""A 40-image order downloaded as `variants=mls,print` beside the same order without variants.

Both downloads fetch the same full-quality images (`preview=false`) from the standalone
sandbox at 200 ms upstream latency, through the service on loopback, with curl as the client
(as in bench/stream.py); the difference is the work variants add: every image rendered for
`MLS/` (decode, resize, sRGB, a byte cap searched) and written twice. The photos are
12-megapixel camera-like JPEGs (bench/render.py makes them), uploaded once through the
sandbox's API; a first full-quality download buys them and fills the sandbox's render cache,
so the runs measure the service, not the sandbox's own enhancing. The two downloads take
turns, best of `--runs` each. Targets: variants within 1.3 x the plain download; the
service's RSS growth within the 64 MB of scenario (b).

    python -m bench.variants [--images 40] [--runs 3] [--latency 200]
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import API_KEY, Timed, sandbox, service, set_latency, through
from bench.render import HEIGHT, WIDTH, photos
from bench.stream import SERVICE_ENV, interleaved, slowest
from testkit.processes import RssSampler

TARGET = 1.3
RSS_BOUND_MB = 64  # scenario (b)'s bound, bench/stream.py
DISTINCT_PHOTOS = 8  # made once, uploaded in turn: making 40 would take longer than the runs


def photo_order(sandbox_root: str, files: list[bytes], count: int) -> str:
    """An order of `count` photos (cycling through `files`) uploaded and processed."""
    with httpx.Client(
        base_url=f"{sandbox_root}/v3", headers={"x-api-key": API_KEY}, timeout=120
    ) as api:
        order_id: str = api.post("/orders/", json={"name": "Bench variants"}).json()["order_id"]
        for index in range(count):
            registered = api.post(
                "/images/",
                json={
                    "order_id": order_id,
                    "image_name": f"photo-{index + 1:02d}",
                    "contentType": "image/jpeg",
                },
            ).raise_for_status()
            httpx.put(
                registered.json()["upload_url"],
                content=files[index % len(files)],
                headers={"Content-Type": "image/jpeg"},
                timeout=120,
            ).raise_for_status()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            images = api.get(f"/orders/{order_id}").json()["images"]
            if all(image["status"] == "processed" for image in images):
                return order_id
            time.sleep(0.2)
    raise RuntimeError(f"order {order_id} was not processed in 300 s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--runs", type=int, default=3, help="runs per download (best is kept)")
    parser.add_argument("--latency", type=int, default=200, help="upstream latency, ms")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="bench-variants-") as scratch,
        sandbox() as sb,
        service(sb, **SERVICE_ENV) as svc,
    ):
        files = [path.read_bytes() for path in photos(DISTINCT_PHOTOS, Path(scratch))]
        order = photo_order(sb, files, args.images)
        base = f"{svc.base}/orders/{order}/images?preview=false"
        urls = {"plain": base, "variants": f"{base}&variants=mls,print"}
        set_latency(sb, 0)
        for url in urls.values():  # buys the photos, fills the sandbox's render cache
            through([url])
        set_latency(sb, args.latency)
        growths: dict[str, list[float]] = {name: [] for name in urls}

        def measure(name: str) -> list[Timed]:
            with RssSampler(svc.process) as rss:
                results = through([urls[name]])
            growths[name].append(rss.growth_mb)
            return results

        best = interleaved(
            args.runs,
            {name: functools.partial(measure, name) for name in urls},
            fastest=slowest,
        )
    plain, variants = slowest(best["plain"]), slowest(best["variants"])
    ratio = variants / plain
    growth = max(growths["variants"])
    print(
        f"{args.images} photos of {WIDTH}x{HEIGHT} px, {args.latency} ms upstream latency, "
        f"best of {args.runs} runs"
    )
    print(f"plain (preview=false):         {plain:6.2f} s  {best['plain'][0].size / 1e6:7.1f} MB")
    print(
        f"variants=mls,print:            {variants:6.2f} s  "
        f"{best['variants'][0].size / 1e6:7.1f} MB"
    )
    print(
        f"ratio variants / plain: {ratio:.2f} ({'meets' if ratio <= TARGET else 'misses'} "
        f"the {TARGET} x target); service RSS growth {growth:.1f} MB "
        f"({'within' if growth <= RSS_BOUND_MB else 'OVER'} {RSS_BOUND_MB} MB)"
    )


if __name__ == "__main__":
    main()
