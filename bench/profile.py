"""Where the service's CPU goes in one scenario: py-spy samples it while curl downloads.

    .venv/bin/python -m bench.profile --scenario d     # 50 x 10 MB, no latency
    .venv/bin/python -m bench.profile --scenario g     # a cached 500 MB archive served again
    .venv/bin/python -m bench.profile --scenario b     # 300 x 1 MB, no latency
    .venv/bin/python -m bench.profile --scenario s     # 1000 x 50 kB: the fixed cost per image
    .venv/bin/python -m bench.profile --scenario d --native --service-env IMAGE_POOL_BYTES=0

Starts the sandbox and the service (one worker), downloads the scenario's archive with curl
for at most `--seconds` (and at most `--max-downloads` times) while `py-spy record` samples the
service, then writes a flame graph (`bench-results/profile-<scenario>.svg`), the collapsed
stacks beside it, and prints the functions with the most samples of their own and the share of
samples under a few frames worth watching.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.common import create_order, sandbox, service, set_latency, through
from testkit.processes import MB, ROOT

# Images and bytes per image of each scenario's order.
ORDERS = {"d": (50, 10 * MB), "g": (50, 10 * MB), "b": (300, MB), "s": (1000, 50_000)}
# Frames whose inclusive share says which part of the pipeline costs what.
WATCHED = (
    "h11",
    "httpcore",
    "httpx",
    "httptools_impl.py",
    "h11_impl.py",
    "tempfile.py",
    "zlib",
    "middleware",
    "anyio",
    "starlette/responses.py",
    "app/archive/stream.py",
    "app/upstream/client.py",
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenario", choices=tuple(ORDERS), default="d")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--max-downloads", type=int, default=20)
    parser.add_argument("--rate", type=int, default=200, help="samples per second")
    parser.add_argument(
        "--native", action="store_true", help="sample C frames too (py-spy --native)"
    )
    parser.add_argument(
        "--service-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of the profiled service, e.g. IMAGE_POOL_BYTES=41943040 (repeatable)",
    )
    args = parser.parse_args()
    settings = dict(item.split("=", 1) for item in args.service_env)
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    raw = out / f"profile-{args.scenario}.txt"
    svg = out / f"profile-{args.scenario}.svg"
    cache = str(2 * 1024**3) if args.scenario == "g" else "0"

    with sandbox() as sb, service(sb, **{"ARCHIVE_CACHE_MAX_BYTES": cache, **settings}) as svc:
        set_latency(sb, 0)
        images, image_bytes = ORDERS[args.scenario]
        order = create_order(sb, images=images, image_bytes=image_bytes)
        url = f"{svc.base}/orders/{order}/images"
        through([url])  # warm (and, for g, fill the cache)
        downloads = 0
        for fmt, target in (("raw", raw), ("flamegraph", svg)):
            recorder = subprocess.Popen(
                [
                    py_spy,
                    "record",
                    "--pid",
                    str(svc.process.pid),
                    "--rate",
                    str(args.rate),
                    "--format",
                    fmt,
                    "--output",
                    str(target),
                    # py-spy reads C frames only while the process is stopped.
                    *(["--native"] if args.native else ["--nonblocking"]),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                deadline = time.monotonic() + args.seconds / 2
                n = 0
                while time.monotonic() < deadline and n < args.max_downloads // 2:
                    through([url])
                    n += 1
                downloads += n
            finally:
                recorder.send_signal(signal.SIGINT)  # py-spy writes its output and exits
                try:
                    recorder.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    recorder.kill()
                    recorder.wait()

    summarise(raw, downloads)
    print(f"\nflame graph: {svg}\ncollapsed stacks: {raw}")


def summarise(raw: Path, downloads: int) -> None:
    own: collections.Counter[str] = collections.Counter()
    under: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = stack.split(";")
        own[frames[-1]] += samples
        for watched in WATCHED:
            if any(watched in frame for frame in frames):
                under[watched] += samples
    if not total:
        print("no samples")
        return
    print(f"{total} samples over {downloads} downloads\n\nmost samples of their own:")
    for frame, samples in own.most_common(20):
        print(f"  {100 * samples / total:5.1f}%  {frame}")
    print("\nsamples under:")
    for watched, samples in under.most_common():
        print(f"  {100 * samples / total:5.1f}%  {watched}")


if __name__ == "__main__":
    main()
