"""`make bench`: the batch endpoint against this machine's ceiling, measured in the same run.

Everything runs on loopback: the standalone sandbox with its latency knob, the service (one
uvicorn worker unless said), and curl as the client of both, so a Python client does not bound
the figures. The ceiling of a streamed scenario is `curl --parallel` (8 connections per client,
as many as the service opens for one request) fetching the same images straight from the same
sandbox with the same latency, the 302 hop included; the ceiling of a cached archive is nginx
serving the same file. Every figure is the best of `--runs` (3) runs — noise on a shared machine
only slows a run down — with the service and its ceiling taking turns, so both see the same
drift in load; RSS growth is the worst of the runs. Times are wall clock from spawning
curl to its exit, for the service and the ceiling alike.

Scenarios and targets:
  (a) 100 x 1 MB, 200 ms: first byte <= 0.5 s, total <= 1.15 x ceil(100/8) x 0.2 s
  (b) 1,000 x 1 MB, 5 ms: peak RSS growth <= 64 MB
  (c) 10 clients x 20 x 1 MB, 200 ms, beside a 1,000-image order that keeps streaming: the
      slowest client <= 1.2 x the direct time for the same 200 images and <= 1.2 x the fastest
  (d) 50 x 10 MB, no latency: >= 0.8 x the direct ceiling, >= 0.9 x the Go peer (zipstreamer,
      a column of its own when ZIPSTREAMER_SRC names its source; see bench/peer.py), and
      <= 0.8 service CPU-s per GB
  (e) resume: measured by bench/resume.py when it exists (see `resume_rows`)
  (g) a cached 50 x 10 MB archive served again: >= 0.9 x nginx serving the same file
  (h) four concurrent 50 x 10 MB downloads: `--workers 2` >= 1.6 x one worker
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import importlib.util
import json
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import peer as go_peer
from bench.common import (
    GB,
    NGINX_TUNINGS,
    Service,
    Timed,
    cpu_seconds,
    create_order,
    curl,
    direct,
    nginx,
    sandbox,
    service,
    set_latency,
    through,
)
from testkit.processes import MB, ROOT, RssSampler

CONCURRENCY = 8
# (c) runs eleven downloads at once (ten clients and the 1,000-image order). The ceiling's
# clients open 8 connections each, so the service may open 8 per download too; at the default
# of 64 for all downloads together, the fair share would be under 6 each.
SERVICE_ENV: dict[str, Any] = {
    "DOWNLOAD_CONCURRENCY": str(CONCURRENCY),
    "UPSTREAM_MAX_CONNECTIONS": str(11 * CONCURRENCY),
}
SCENARIOS = ("a", "b", "c", "d", "e", "g", "h")
MET = {True: "yes", False: "NO", None: "not measured"}


@dataclass
class Row:
    scenario: str
    figure: str  # what was measured, in words
    service: float  # seconds (or MB/s where `unit` says so)
    ceiling: float | None
    unit: str
    target: str
    met: bool | None  # None: not measured
    notes: list[str] = field(default_factory=list)
    peer: float | None = None  # the Go peer's figure, in `unit`, where it was measured

    @property
    def ratio(self) -> float | None:
        """Service as a fraction of the ceiling: 1.0 is as fast as the ceiling."""
        if self.ceiling is None or not self.service:
            return None
        if self.unit == "MB/s":
            return self.service / self.ceiling
        return self.ceiling / self.service

    @property
    def peer_ratio(self) -> float | None:
        """Service as a fraction of the Go peer (throughput rows only)."""
        if self.peer is None or not self.service or self.unit != "MB/s":
            return None
        return self.service / self.peer


def archive_url(svc: Service, order_id: str) -> str:
    return f"{svc.base}/orders/{order_id}/images"


def slowest(results: list[Timed]) -> float:
    return max(r.wall for r in results)


def aggregate_mb_s(results: list[Timed]) -> float:
    return sum(r.size for r in results) / MB / slowest(results)


Measure = Callable[[], list[Timed]]
Key = Callable[[list[Timed]], float]


def interleaved(runs: int, measures: dict[str, Measure], *, fastest: Key) -> dict[str, list[Timed]]:
    """Run every measure `runs` times, taking turns (the order rotates each round), and keep
    each one's best run: the load of a shared machine drifts, and taking turns gives the
    service and its ceiling the same drift."""
    best: dict[str, list[Timed]] = {}
    names = list(measures)
    for round_ in range(runs):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            result = measures[name]()
            if name not in best or fastest(result) < fastest(best[name]):
                best[name] = result
    return best


def by_throughput(results: list[Timed]) -> float:
    return -aggregate_mb_s(results)


class Bench:
    def __init__(
        self,
        sandbox_root: str,
        svc: Service,
        workdir: Path,
        runs: int,
        *,
        peer: go_peer.Peer | str,
    ) -> None:
        self.sb = sandbox_root
        self.svc = svc
        self.workdir = workdir
        self.runs = runs
        self.peer = peer  # the running Go peer, or why it is not measured
        self.growths: list[float] = []
        # CPU the service spends per GB moved: unlike throughput, it barely moves with the
        # load other processes put on the machine, so it shows what a change bought.
        self.cpu_per_gb: list[float] = []

    def through_service(self, urls: list[str], svc: Service | None = None) -> Measure:
        """A measure of `urls` through the service that records its RSS growth."""
        process = (svc or self.svc).process

        def measure() -> list[Timed]:
            cpu = cpu_seconds(process)
            with RssSampler(process) as rss:
                results = through(urls)
            self.growths.append(rss.growth_mb)
            moved = sum(r.size for r in results) / GB
            self.cpu_per_gb.append((cpu_seconds(process) - cpu) / moved)
            return results

        return measure

    def cpu_note(self) -> str:
        return f"service CPU {min(self.cpu_per_gb):.2f} s/GB"

    def straight(self, orders: list[str]) -> Measure:
        return lambda: direct(self.sb, orders, workdir=self.workdir)

    def versus(
        self, urls: list[str], orders: list[str], *, fastest: Key = slowest
    ) -> tuple[list[Timed], list[Timed], float]:
        """Best service run, best ceiling run, and the worst RSS growth of the service's runs."""
        self.growths, self.cpu_per_gb = [], []
        best = interleaved(
            self.runs,
            {"service": self.through_service(urls), "ceiling": self.straight(orders)},
            fastest=fastest,
        )
        return best["service"], best["ceiling"], max(self.growths)

    def a(self) -> list[Row]:
        order = create_order(self.sb, images=100, image_bytes=MB)
        set_latency(self.sb, 200)
        (t,), (c,), growth = self.versus([archive_url(self.svc, order)], [order])
        limit = 1.15 * math.ceil(100 / CONCURRENCY) * 0.2
        assert t.ttfb is not None
        return [
            Row(
                "(a) 100 x 1 MB, 200 ms",
                "total",
                t.wall,
                c.wall,
                "s",
                f"first byte <= 0.5 s (was {t.ttfb:.3f} s), total <= {limit:.2f} s",
                t.ttfb <= 0.5 and t.wall <= limit,
                notes=[f"RSS growth {growth:.1f} MB", self.cpu_note()],
            )
        ]

    def b(self) -> list[Row]:
        order = create_order(self.sb, images=1000, image_bytes=MB)
        set_latency(self.sb, 5)
        (t,), (c,), growth = self.versus([archive_url(self.svc, order)], [order])
        return [
            Row(
                "(b) 1000 x 1 MB, 5 ms",
                "total",
                t.wall,
                c.wall,
                "s",
                f"RSS growth <= 64 MB (worst run {growth:.1f} MB)",
                growth <= 64,
                notes=[self.cpu_note()],
            )
        ]

    def c(self) -> list[Row]:
        set_latency(self.sb, 0)
        big = create_order(self.sb, images=1000, image_bytes=MB)
        orders = [create_order(self.sb, images=20, image_bytes=MB) for _ in range(10)]
        set_latency(self.sb, 200)
        background = curl(archive_url(self.svc, big))
        kept_streaming = True
        measure = self.through_service([archive_url(self.svc, o) for o in orders])

        def beside() -> list[Timed]:
            nonlocal kept_streaming
            results = measure()
            kept_streaming = kept_streaming and background.poll() is None
            return results

        self.growths, self.cpu_per_gb = [], []
        try:
            best = interleaved(
                self.runs, {"service": beside, "ceiling": self.straight(orders)}, fastest=slowest
            )
        finally:
            background.terminate()
            background.wait(timeout=10)
        slow = slowest(best["service"])
        fast = min(r.wall for r in best["service"])
        ceiling = slowest(best["ceiling"])
        return [
            Row(
                "(c) 10 clients x 20 x 1 MB, 200 ms, beside a 1000-image order",
                "slowest client",
                slow,
                ceiling,
                "s",
                f"slowest <= 1.2 x direct and <= 1.2 x fastest ({fast:.2f} s)",
                slow <= 1.2 * ceiling and slow <= 1.2 * fast and kept_streaming,
                notes=[
                    f"RSS growth {max(self.growths):.1f} MB",
                    self.cpu_note(),
                    "the 1000-image order kept streaming"
                    if kept_streaming
                    else "the 1000-image order ENDED before the clients did",
                ],
            )
        ]

    def d(self) -> list[Row]:
        order = create_order(self.sb, images=50, image_bytes=10 * MB)
        set_latency(self.sb, 0)
        url = archive_url(self.svc, order)
        through([url])  # warm: pools, the sandbox's 10 MB body
        self.growths, self.cpu_per_gb = [], []
        measures = {"service": self.through_service([url]), "ceiling": self.straight([order])}
        peer_cpu: list[float] = []
        if isinstance(self.peer, go_peer.Peer):
            measures["peer"] = functools.partial(
                go_peer.through_peer, self.peer, self.sb, order, self.workdir, peer_cpu
            )
        best = interleaved(self.runs, measures, fastest=by_throughput)
        served, direct_mb_s = aggregate_mb_s(best["service"]), aggregate_mb_s(best["ceiling"])
        cpu = min(self.cpu_per_gb)
        notes = [f"RSS growth {max(self.growths):.1f} MB", self.cpu_note()]
        peer_mb_s = aggregate_mb_s(best["peer"]) if "peer" in best else None
        if peer_mb_s is None:
            notes.append(str(self.peer))
        else:
            notes.append(f"Go peer CPU {min(peer_cpu):.2f} s/GB")
        return [
            Row(
                "(d) 50 x 10 MB, no latency",
                "throughput",
                served,
                direct_mb_s,
                "MB/s",
                ">= 0.8 x direct, >= 0.9 x Go, <= 0.8 CPU-s/GB",
                served >= 0.8 * direct_mb_s
                and (peer_mb_s is None or served >= 0.9 * peer_mb_s)
                and cpu <= 0.8,
                notes=notes,
                peer=peer_mb_s,
            )
        ]

    def h(self, svc2: Service) -> list[Row]:
        set_latency(self.sb, 0)
        orders = [create_order(self.sb, images=50, image_bytes=10 * MB) for _ in range(4)]
        one_urls = [archive_url(self.svc, o) for o in orders]
        two_urls = [archive_url(svc2, o) for o in orders]
        through(one_urls)  # warm every worker's pools
        through(two_urls)
        workers = [  # uvicorn's workers, not multiprocessing's resource tracker
            c for c in svc2.process.children() if "resource_tracker" not in " ".join(c.cmdline())
        ]
        shares: list[list[float]] = []
        two_measure = self.through_service(two_urls, svc2)

        def two_workers() -> list[Timed]:
            """Also records how the CPU split between the workers: the kernel hands each
            connection to whichever worker accepts first, which need not be an even split."""
            before = [cpu_seconds(w) for w in workers]
            results = two_measure()
            spent = [cpu_seconds(w) - b for w, b in zip(workers, before, strict=True)]
            shares.append([x / (sum(spent) or 1) for x in spent])
            return results

        best = interleaved(
            self.runs,
            {
                "one": self.through_service(one_urls),
                "two": two_workers,
                "ceiling": self.straight(orders),
            },
            fastest=by_throughput,
        )
        one, two = aggregate_mb_s(best["one"]), aggregate_mb_s(best["two"])
        split = ", ".join("/".join(f"{100 * x:.0f}" for x in run) for run in shares)
        ceiling = aggregate_mb_s(best["ceiling"])
        return [
            Row(
                "(h) 4 x 50 x 10 MB at once, 1 worker",
                "throughput",
                one,
                ceiling,
                "MB/s",
                "(reference for --workers 2)",
                True,
            ),
            Row(
                "(h) 4 x 50 x 10 MB at once, --workers 2",
                "throughput",
                two,
                ceiling,
                "MB/s",
                f">= 1.6 x one worker (was {two / one:.2f} x)",
                two >= 1.6 * one,
                notes=[f"CPU split between the workers, per run: {split} %"],
            ),
        ]


def cached(sandbox_root: str, workdir: Path, runs: int) -> list[Row]:
    """(g): the second download of an order is a cache hit; nginx serves the same bytes (the
    ceiling is the better of its two ways of sending a file)."""
    set_latency(sandbox_root, 0)
    order = create_order(sandbox_root, images=50, image_bytes=10 * MB)
    # nginx started as root serves as `nobody`: the file's directory must be world-readable.
    files = workdir / "static"
    files.mkdir()
    for directory in (workdir, files):
        directory.chmod(0o755)
    copy = files / "archive.zip"
    with (
        service(sandbox_root, ARCHIVE_CACHE_MAX_BYTES=str(2 * 1024**3)) as svc,
        contextlib.ExitStack() as servers,
    ):
        url = archive_url(svc, order)
        (first,) = through([url], output=str(copy))
        copy.chmod(0o644)
        if "etag" not in httpx.head(url, timeout=30).headers:
            raise RuntimeError("the second request was not served from the archive cache")
        cpu_per_gb: list[float] = []

        def served_again() -> list[Timed]:
            cpu = cpu_seconds(svc.process)
            results = through([url])
            cpu_per_gb.append((cpu_seconds(svc.process) - cpu) / (results[0].size / GB))
            return results

        measures: dict[str, Measure] = {"service": served_again}
        for directives in NGINX_TUNINGS:
            static = servers.enter_context(nginx(files, directives=directives))
            measures[directives] = functools.partial(through, [f"{static}/archive.zip"])
        best = interleaved(runs, measures, fastest=by_throughput)
    served = aggregate_mb_s(best.pop("service"))
    ceilings = {directives: aggregate_mb_s(r) for directives, r in best.items()}
    ceiling = max(ceilings.values())
    return [
        Row(
            "(g) cached 500 MB archive served again",
            "throughput",
            served,
            ceiling,
            "MB/s",
            ">= 0.9 x nginx",
            served >= 0.9 * ceiling,
            notes=[
                f"service CPU {min(cpu_per_gb):.2f} s/GB",
                f"first (streamed) download {first.mb_per_s:.0f} MB/s",
                "nginx: " + ", ".join(f"{c:.0f} MB/s ({d})" for d, c in ceilings.items()),
            ],
        )
    ]


def resume_rows(sandbox_root: str, base: str) -> list[Row]:
    """(e) resume, measured by `bench/resume.py` (written with the resumable downloads):
    `measure(sandbox_root, base, reference)` returns its figures; `reference` is a second
    service with a store of its own. Until that module exists the table says so."""
    scenario = "(e) 100 x 1 MB, 200 ms, broken at half, resumed"
    target = "no image before the offset fetched again, first byte <= 0.5 s"
    if importlib.util.find_spec("bench.resume") is None:
        return [Row(scenario, "not measured: no bench/resume.py", 0.0, None, "s", target, None)]
    resume = importlib.import_module("bench.resume")
    with service(sandbox_root, **SERVICE_ENV) as reference:
        figures = resume.measure(sandbox_root, base, reference.base)
    first, again = figures["resume"], figures["resume_again"]
    return [
        Row(
            scenario,
            "first byte of the resumed request",
            float(first["ttfb_s"]),
            None,
            "s",
            target,
            bool(figures["met"]),
            notes=[
                f"images fetched again before the offset: {first['refetched_before_offset']}",
                f"upstream image requests: {first['upstream_image_requests']}",
                f"byte-identical: {first['identical']}",
                f"resumed again: first byte {float(again['ttfb_s']):.3f} s, "
                f"{again['upstream_image_requests']} image requests",
            ],
        )
    ]


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    return f"{value:.0f} MB/s" if unit == "MB/s" else f"{value:.2f} s"


def table(rows: list[Row], runs: int) -> str:
    lines = [
        f"Best of {runs} runs per figure (RSS growth: worst run). Ratio = service / ceiling "
        "in speed (1.00 = as fast as the ceiling).",
        "",
        "| scenario | figure | service | ceiling | ratio | Go peer | ratio to Go | target | met "
        "| notes |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ratio = f"{row.ratio:.2f}" if row.ratio is not None else "—"
        peer_ratio = f"{row.peer_ratio:.2f}" if row.peer_ratio is not None else "—"
        lines.append(
            f"| {row.scenario} | {row.figure} "
            f"| {fmt(row.service if row.met is not None else None, row.unit)} "
            f"| {fmt(row.ceiling, row.unit)} | {ratio} | {fmt(row.peer, row.unit)} "
            f"| {peer_ratio} | {row.target} "
            f"| {MET[row.met]} | {'; '.join(row.notes)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", help=f"comma list of scenarios ({','.join(SCENARIOS)})")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (best is kept)")
    parser.add_argument(
        "--service-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of the measured service, e.g. IMAGE_POOL_BYTES=41943040 (repeatable)",
    )
    args = parser.parse_args()
    SERVICE_ENV.update(item.split("=", 1) for item in args.service_env)
    only = set(args.only.split(",")) if args.only else set(SCENARIOS)
    rows: list[Row] = []
    load = Path("/proc/loadavg").read_text().split()[:3]
    started = time.monotonic()

    with (
        tempfile.TemporaryDirectory(prefix="bench-") as tmp,
        sandbox() as sb,
        contextlib.ExitStack() as stack,
    ):
        workdir = Path(tmp)
        svc = stack.enter_context(service(sb, **SERVICE_ENV))
        binary = go_peer.build(workdir) if "d" in only else "Go peer: only measured in (d)"
        peer = stack.enter_context(go_peer.peer(binary)) if isinstance(binary, Path) else binary
        if isinstance(peer, str):
            print(peer, flush=True)
        bench = Bench(sb, svc, workdir, args.runs, peer=peer)
        set_latency(sb, 0)
        through([archive_url(svc, create_order(sb, images=10, image_bytes=MB))])  # warm-up

        def add(new: list[Row]) -> None:
            for row in new:  # as it comes, so a later failure loses nothing
                print(
                    json.dumps({**asdict(row), "ratio": row.ratio, "peer_ratio": row.peer_ratio}),
                    flush=True,
                )
            rows.extend(new)

        for name in ("a", "b", "c", "d"):
            if name in only:
                add(getattr(bench, name)())
        if "e" in only:
            add(resume_rows(sb, svc.base))
        if "g" in only:
            add(cached(sb, workdir, args.runs))
        if "h" in only:
            svc2 = stack.enter_context(service(sb, workers=2, **SERVICE_ENV))
            add(bench.h(svc2))

    print()
    print(table(rows, args.runs))
    end_load = Path("/proc/loadavg").read_text().split()[:3]
    print(
        f"\nload average at start {' '.join(load)}, at end {' '.join(end_load)}; "
        f"{time.monotonic() - started:.0f} s"
    )
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "stream.json").write_text(
        json.dumps(
            [{**asdict(r), "ratio": r.ratio, "peer_ratio": r.peer_ratio} for r in rows], indent=2
        )
    )


if __name__ == "__main__":
    main()
