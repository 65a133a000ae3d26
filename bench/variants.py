"""A 40-image order downloaded as `variants=mls,print` beside the same order without variants.

Both downloads fetch the same full-quality images (`preview=false`) from the standalone
sandbox at 200 ms upstream latency, through the service on loopback, with curl as the client
(as in bench/stream.py); the difference is the work variants add: every image rendered for
`MLS/` (decode, resize, sRGB, a byte cap searched) and written twice. The photos are
12-megapixel camera-like JPEGs (bench/render.py makes them), uploaded once through the
sandbox's API; a first full-quality download buys them and fills the sandbox's render cache,
so the runs measure the service, not the sandbox's own enhancing. The two downloads take
turns, best of `--runs` each; the service's CPU seconds (the least of the runs) say what a
download costs whatever else the machine does. Targets: variants within 1.3 x the plain
download; the service's RSS growth within the 64 MB of scenario (b).

Beside them, the ceiling: the same `mls` renders done by `vipsthumbnail` (libvips' own
command, the same size and quality) on the images the plain archive holds, one process per
core (`VIPS_CONCURRENCY=1` each), all at once, best of `--runs`. The plain download plus that
is what this machine needs at best for the variant archive when rendering cannot hide behind
the upstream's latency; the larger of the two when it can. And the floor of this service's
own renderer: the CPU seconds the variant download took, spread over every core.

    python -m bench.variants [--images 40] [--runs 3] [--latency 200]
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import subprocess
import tempfile
import time
import zipfile
from pathlib import Path

import httpx

from bench.common import API_KEY, Timed, sandbox, service, set_latency, through
from bench.render import HEIGHT, MLS, VIPSTHUMBNAIL_OUTPUT, WIDTH, load_average, photos
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


def vipsthumbnail_ceiling(archive: Path, scratch: Path, *, runs: int) -> float | None:
    """Seconds `vipsthumbnail` takes for the `mls` renders of every image of `archive`, one
    process per core, all at once (best of `runs`); None without `vipsthumbnail`."""
    if shutil.which("vipsthumbnail") is None:
        return None
    source = scratch / "ceiling"
    source.mkdir()
    with zipfile.ZipFile(archive) as zipped:
        names = [name for name in zipped.namelist() if name.lower().endswith(".jpg")]
        paths = [source / f"{index:03d}.jpg" for index in range(len(names))]
        for name, path in zip(names, paths, strict=True):
            path.write_bytes(zipped.read(name))
    cores = os.cpu_count() or 1
    size = f"{MLS.long_edge}x{MLS.long_edge}"
    best = float("inf")
    for run in range(runs):
        out = scratch / f"ceiling-{run}"
        out.mkdir()
        started = time.monotonic()
        procs = [
            subprocess.Popen(
                [
                    "vipsthumbnail",
                    *map(str, paths[core::cores]),
                    "--size",
                    size,
                    "-o",
                    f"{out}/%s.jpg[{VIPSTHUMBNAIL_OUTPUT}]",
                ],
                env={**os.environ, "VIPS_CONCURRENCY": "1"},
            )
            for core in range(cores)
        ]
        if any(proc.wait() != 0 for proc in procs):
            raise RuntimeError("vipsthumbnail failed")
        best = min(best, time.monotonic() - started)
    return best


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
        archive = Path(scratch) / "plain.zip"
        through([urls["plain"]], output=str(archive))  # buys the photos, fills the cache
        through([urls["variants"]])
        set_latency(sb, args.latency)
        load_before = load_average()
        growths: dict[str, list[float]] = {name: [] for name in urls}
        cpu: dict[str, list[float]] = {name: [] for name in urls}

        def cpu_seconds() -> float:
            times = svc.process.cpu_times()
            return float(times.user + times.system)

        def measure(name: str) -> list[Timed]:
            before = cpu_seconds()
            with RssSampler(svc.process) as rss:
                results = through([urls[name]])
            cpu[name].append(cpu_seconds() - before)
            growths[name].append(rss.growth_mb)
            return results

        best = interleaved(
            args.runs,
            {name: functools.partial(measure, name) for name in urls},
            fastest=slowest,
        )
        load_after = load_average()
        ceiling = vipsthumbnail_ceiling(archive, Path(scratch), runs=args.runs)
    plain, variants = slowest(best["plain"]), slowest(best["variants"])
    ratio = variants / plain
    growth = max(growths["variants"])
    print(
        f"{args.images} photos of {WIDTH}x{HEIGHT} px, {args.latency} ms upstream latency, "
        f"best of {args.runs} runs; load average {load_before} before, {load_after} after"
    )
    print(
        f"plain (preview=false):         {plain:6.2f} s  {best['plain'][0].size / 1e6:7.1f} MB"
        f"  service CPU {min(cpu['plain']):5.2f} s"
    )
    print(
        f"variants=mls,print:            {variants:6.2f} s  "
        f"{best['variants'][0].size / 1e6:7.1f} MB  service CPU {min(cpu['variants']):5.2f} s"
    )
    print(
        f"ratio variants / plain: {ratio:.2f} ({'meets' if ratio <= TARGET else 'misses'} "
        f"the {TARGET} x target); service RSS growth {growth:.1f} MB "
        f"({'within' if growth <= RSS_BOUND_MB else 'OVER'} {RSS_BOUND_MB} MB)"
    )
    cores = os.cpu_count() or 1
    floor = min(cpu["variants"]) / cores
    print(
        f"floor: the service's CPU for variants spread over {cores} cores, {floor:.2f} s "
        f"({floor / plain:.2f} x plain)"
    )
    if ceiling is None:
        print("ceiling: vipsthumbnail not installed (Debian: libvips-tools)")
        return
    print(
        f"ceiling: vipsthumbnail, the {args.images} mls renders on {cores} cores: "
        f"{ceiling:.2f} s; plain + renders {plain + ceiling:.2f} s "
        f"({(plain + ceiling) / plain:.2f} x plain), overlapped at best "
        f"{max(plain, ceiling):.2f} s ({max(plain, ceiling) / plain:.2f} x plain)"
    )


if __name__ == "__main__":
    main()
