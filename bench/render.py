"""Rendering speed: images per second per core for the `mls` preset from 12-megapixel JPEGs.

Three renderers resize the same files to a long edge of 2048 px and encode them at JPEG
quality 90 with optimised Huffman tables and 4:2:0 chroma, one core each:

- `service`: this service's renderer (`app.imaging.render`, libvips), exactly as it serves
  `mls`: header checks, streamed decode, Lanczos resize, orientation, sRGB, the output in
  memory, encode;
- `pyvips`: libvips' bare `thumbnail_buffer` straight to `jpegsave_buffer` (the same pipeline
  as `vipsthumbnail`, in process): what the service's checks and copy cost on top of it;
- `vipsthumbnail`: libvips' own command, the ceiling: one process for all files of a round
  (so its start-up is not counted), `VIPS_CONCURRENCY=1`.

CPU seconds are measured (the process's own for the in-process renderers, the child's for
vipsthumbnail), so other load on the machine does not change the figure much; the best of
`--rounds` rounds is kept. The target is at least 0.7 times vipsthumbnail's figure.

    python -m bench.render [--images 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageFilter

from app.imaging.decoding import Budget, DecodingPolicy
from app.imaging.presets import BUILT_IN
from app.imaging.render import CHROMA_SUBSAMPLING, RENDERER_VERSION, Rendered, render
from testkit.processes import ROOT

WIDTH, HEIGHT = 4000, 3000  # 12 megapixels, a common camera size
MLS = BUILT_IN["mls"]
TARGET = 0.7
# vipsthumbnail's output as the service encodes `mls`: quality, Huffman tables, chroma.
VIPSTHUMBNAIL_OUTPUT = f"Q={MLS.quality},optimize_coding,strip,subsample_mode={CHROMA_SUBSAMPLING}"


def photos(count: int, directory: Path) -> list[Path]:
    """`count` 12-megapixel camera-like JPEGs made from the sample photos: scaled up, with
    sensor-like noise so that they compress like real pictures (about 3-5 MB each)."""
    samples = sorted((ROOT / "sample_images").glob("*.jpg"))
    paths = []
    for index in range(count):
        with Image.open(samples[index % len(samples)]) as sample:
            big = sample.convert("RGB").resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC)
        grain = Image.effect_noise((WIDTH, HEIGHT), 18 + index).convert("RGB")
        picture = Image.blend(big, grain, 0.08).filter(ImageFilter.DETAIL)
        path = directory / f"photo-{index:02d}.jpg"
        picture.save(path, "JPEG", quality=92)
        paths.append(path)
    return paths


def measure_in_process(files: list[bytes], work: Callable[[bytes], bytes]) -> tuple[float, int]:
    """CPU seconds of this process for one pass over `files`, and the bytes written."""
    written = 0
    started = time.process_time()
    for data in files:
        written += len(work(data))
    return time.process_time() - started, written


def service(data: bytes) -> bytes:
    result = render(data, MLS, budget=Budget(DecodingPolicy()), max_pixels=64_000_000)
    assert isinstance(result, Rendered)
    return result.content


def pyvips_renderer() -> Callable[[bytes], bytes] | None:
    try:
        import pyvips
    except (ImportError, OSError):
        return None
    pyvips.concurrency_set(1)
    pyvips.cache_set_max(0)

    def thumbnail(data: bytes) -> bytes:
        image = pyvips.Image.thumbnail_buffer(data, MLS.long_edge, height=MLS.long_edge)
        content: bytes = image.jpegsave_buffer(
            Q=MLS.quality, optimize_coding=True, subsample_mode=CHROMA_SUBSAMPLING, keep=0
        )
        return content

    return thumbnail


def measure_vipsthumbnail(paths: list[Path], out: Path) -> tuple[float, int]:
    """CPU seconds of one vipsthumbnail process over `paths`, and the bytes it wrote."""
    size = f"{MLS.long_edge}x{MLS.long_edge}"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        [
            "vipsthumbnail",
            *map(str, paths),
            "--size",
            size,
            "-o",
            f"{out}/%s.jpg[{VIPSTHUMBNAIL_OUTPUT}]",
        ],
        check=True,
        env={**os.environ, "VIPS_CONCURRENCY": "1"},
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, sum(path.stat().st_size for path in out.glob("*.jpg"))


def load_average() -> str:
    """The machine's load average (1, 5, 15 minutes): how shared it was during the figures."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-render-") as scratch:
        root = Path(scratch)
        paths = photos(args.images, root)
        files = [path.read_bytes() for path in paths]
        megabytes = sum(map(len, files)) / 1e6
        print(f"{len(files)} JPEGs of {WIDTH}x{HEIGHT} px ({megabytes:.1f} MB), mls: long edge")
        print(f"{MLS.long_edge} px, quality {MLS.quality}; best of {args.rounds} rounds, 1 core")
        print(f"renderer: {RENDERER_VERSION}; load average {load_average()}\n")
        results: dict[str, float] = {}
        renderers: dict[str, Callable[[bytes], bytes] | None] = {
            "service (libvips)": service,
            "pyvips": pyvips_renderer(),
        }
        for name, work in renderers.items():
            if work is None:
                print(f"{name:<18} not installed")
                continue
            work(files[0])  # warm up: imports, codec tables
            best = min(measure_in_process(files, work) for _ in range(args.rounds))
            results[name] = len(files) / best[0]
            print(f"{name:<18} {results[name]:6.2f} images/s per core  ({best[1] / 1e6:.2f} MB)")
        if shutil.which("vipsthumbnail") is None:
            print("vipsthumbnail      not installed (Debian: libvips-tools)")
            return
        rounds = []
        for round_ in range(args.rounds):
            out = root / f"vips-{round_}"
            out.mkdir()
            rounds.append(measure_vipsthumbnail(paths, out))
        best = min(rounds)
        ceiling = len(files) / best[0]
        print(f"{'vipsthumbnail':<18} {ceiling:6.2f} images/s per core  ({best[1] / 1e6:.2f} MB)")
        print(f"load average {load_average()}\n")
        for name, figure in results.items():
            ratio = figure / ceiling
            verdict = "meets" if ratio >= TARGET else "misses"
            print(f"{name}: {ratio:.2f}x vipsthumbnail ({verdict} the {TARGET}x target)")


if __name__ == "__main__":
    main()
