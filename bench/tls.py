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
import datetime
import ipaddress
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bench.common import (
    GB,
    NGINX,
    cpu_seconds,
    create_order,
    sandbox,
    service,
    set_latency,
    through,
)
from testkit.processes import MB, free_port, running

IMAGES, IMAGE_BYTES = 50, 10 * MB
VARIANTS = {"spool": "0", "pool": str(40 * MB)}


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by its own key: (certificate, key) PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@contextlib.contextmanager
def tls_proxy(upstream: str, cert: Path, key: Path) -> Iterator[str]:
    """nginx terminating TLS in front of `upstream` (keep-alive to it); yields its https root."""
    port, ready = free_port(), free_port()
    host = upstream.removeprefix("http://")
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as prefix:
        conf = Path(prefix) / "nginx.conf"
        temp_paths = "".join(
            f"    {kind}_temp_path {prefix}/{kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        conf.write_text(
            f"daemon off;\nworker_processes 1;\npid {prefix}/nginx.pid;\n"
            f"error_log {prefix}/error.log warn;\n"
            "events { worker_connections 256; }\n"
            "http {\n    access_log off;\n"
            f"{temp_paths}"
            f"    upstream sandbox {{ server {host}; keepalive 32; }}\n"
            f"    server {{\n        listen 127.0.0.1:{ready};\n"
            "        location = /ready { return 200; }\n    }\n"
            f"    server {{\n        listen 127.0.0.1:{port} ssl;\n"
            f"        ssl_certificate {cert};\n        ssl_certificate_key {key};\n"
            "        location / {\n            proxy_pass http://sandbox;\n"
            "            proxy_http_version 1.1;\n"
            '            proxy_set_header Connection "";\n'
            "            proxy_buffering off;\n        }\n    }\n}\n"
        )
        args = [NGINX, "-e", f"{prefix}/error.log", "-p", prefix, "-c", str(conf)]
        with running(args, ready_url=f"http://127.0.0.1:{ready}/ready"):
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
