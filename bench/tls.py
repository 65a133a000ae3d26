"""(d) over TLS: 50 x 10 MB images from an https upstream, with pooled image bodies and without.

    .venv/bin/python -m bench.tls --runs 5

The sandbox is put behind nginx terminating TLS (a self-signed certificate for 127.0.0.1 made
here, trusted by the service through `SSL_CERT_FILE`), as a CDN or S3 would serve the assets:
the upstream's TLS costs nginx, not the measured service. The service runs twice, taking turns
run by run: `IMAGE_POOL_BYTES=0` (the spool, aiohttp's TLS) and the pool (asyncio's SSL
transport under `app.upstream.bodyreader`). Printed per variant: the best throughput, the best
and the median service CPU-seconds per GB, and the load average.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.common import (
    GB,
    NGINX,
    cpu_seconds,
    create_order,
    nginx_running,
    sandbox,
    service,
    set_latency,
    through,
)
from testkit.processes import MB, free_port
from testkit.tls import self_signed

IMAGES, IMAGE_BYTES = 50, 10 * MB
VARIANTS = {"spool": "0", "pool": str(40 * MB)}


@contextlib.contextmanager
def tls_proxy(upstream: str, cert: Path, key: Path) -> Iterator[str]:
    """nginx terminating TLS in front of `upstream` (keep-alive to it); yields its https root."""
    port, ready = free_port(), free_port()
    host = upstream.removeprefix("http://")
    body = (
        f"    upstream sandbox {{ server {host}; keepalive 32; }}\n"
        f"    server {{\n        listen 127.0.0.1:{ready};\n"
        "        location = /ready { return 200; }\n    }\n"
        f"    server {{\n        listen 127.0.0.1:{port} ssl;\n"
        f"        ssl_certificate {cert};\n        ssl_certificate_key {key};\n"
        "        location / {\n            proxy_pass http://sandbox;\n"
        "            proxy_http_version 1.1;\n"
        '            proxy_set_header Connection "";\n'
        "            proxy_buffering off;\n        }\n    }\n"
    )
    with nginx_running(body, ready_url=f"http://127.0.0.1:{ready}/ready"):
        yield f"https://127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5, help="runs per variant")
    args = parser.parse_args()
    if not Path(NGINX).exists():
        raise SystemExit(f"{NGINX} is missing (make system-deps installs it)")
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
    with (
        tempfile.TemporaryDirectory(prefix="bench-tls-cert-") as certs,
        sandbox() as sb,
    ):
        cert, key = self_signed(Path(certs))
        set_latency(sb, 0)
        order = create_order(sb, images=IMAGES, image_bytes=IMAGE_BYTES)
        with tls_proxy(sb, cert, key) as https, contextlib.ExitStack() as stack:
            services = {
                name: stack.enter_context(
                    service(
                        sb,
                        AUTOENHANCE_API_BASE=f"{https}/v3",
                        SSL_CERT_FILE=str(cert),
                        IMAGE_POOL_BYTES=pool,
                    )
                )
                for name, pool in VARIANTS.items()
            }
            for svc in services.values():
                through([f"{svc.base}/orders/{order}/images"])  # warm: connections, pool
            for _ in range(args.runs):
                for name, svc in services.items():
                    before, started = cpu_seconds(svc.process), time.monotonic()
                    (done,) = through([f"{svc.base}/orders/{order}/images"])
                    wall = time.monotonic() - started
                    cpu = cpu_seconds(svc.process) - before
                    results[name].append((done.size / MB / wall, cpu / (done.size / GB)))
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"(d) over TLS, {IMAGES} x {IMAGE_BYTES // MB} MB, {args.runs} runs, load {load}")
    for name, runs in results.items():
        cpus = [cpu for _, cpu in runs]
        print(
            f"  {name:5}  best {max(mb for mb, _ in runs):6.0f} MB/s   CPU {min(cpus):.2f} s/GB"
            f" best, {statistics.median(cpus):.2f} median"
        )


if __name__ == "__main__":
    main()
