"""Prometheus metrics of the service.

Metric objects live at module level, as prometheus-client intends; under several uvicorn
workers, `PROMETHEUS_MULTIPROC_DIR` switches the library to its multiprocess mode and
`/metrics` aggregates every worker's files. Labels are bounded: route templates, never raw
paths; upstream endpoint names, never ids.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time until the response started (streamed bodies continue after this)",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
ARCHIVE_TTFB = Histogram(
    "archive_time_to_first_byte_seconds",
    "Time from request to the first archive byte",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
ARCHIVE_BYTES = Counter("archive_bytes_streamed_total", "Archive bytes sent to clients")
ARCHIVES_SERVED = Counter("archives_served_total", "Archives delivered", ["source"])
IMAGES_DELIVERED = Counter("images_delivered_total", "Images written into archives")
IMAGES_SKIPPED = Counter("images_skipped_total", "Images left out of archives", ["reason"])
CLIENT_ABORTS = Counter("client_aborts_total", "Downloads the client abandoned mid-way")
CACHE_LOOKUPS = Counter("archive_cache_lookups_total", "Archive cache lookups", ["result"])
UPSTREAM_REQUESTS = Counter(
    "upstream_requests_total", "Calls to the Autoenhance API", ["endpoint", "outcome"]
)
IMAGE_BODIES = Counter(
    "image_bodies_total", "Image bodies received, by where they went (pool, spool)", ["into"]
)
UPSTREAM_RETRIES = Counter("upstream_retries_total", "Retried upstream calls", ["endpoint"])
ORDERS_CREATED = Counter("orders_created_total", "Orders created through the service")
JOBS = Counter("jobs_total", "Jobs reaching a state", ["state"])
QUEUE_DEPTH = Gauge("job_queue_depth", "Jobs queued or waiting", multiprocess_mode="livemax")
CIRCUIT_OPEN = Gauge(
    "upstream_circuit_open", "1 while the upstream circuit is open", multiprocess_mode="livemax"
)
RATE_LIMITED = Counter("rate_limited_total", "Requests refused by a rate limit", ["rule"])
# The earliest start among the workers since the metrics directory was cleaned: uptime.
STARTED = Gauge(
    "service_start_time_seconds", "Unix time the service started", multiprocess_mode="min"
)
# Read from the worker registry when /metrics is scraped (Redis backend only).
JOB_WORKERS = Gauge(
    "job_workers_alive",
    "Job workers whose last heartbeat is recent (JOB_WORKER_STALE_SECONDS)",
    multiprocess_mode="mostrecent",
)
JOB_WORKER_HEARTBEAT_AGE = Gauge(
    "job_worker_heartbeat_age_seconds",
    "Seconds since the newest heartbeat of any job worker (absent until one was seen)",
    multiprocess_mode="mostrecent",
)
STORE_FAILURES = Counter(
    "archive_store_failures_total",
    "Archive store calls that failed or passed their deadline",
    ["operation", "kind"],
)
# Outcomes: ok, scans / pixels / deadline / unreadable (refused by the decoding policy),
# abandoned (the caller left), busy (the queue was full).
IMAGE_DECODES = Counter("image_decodes_total", "Image decodes by outcome", ["outcome"])
IMAGE_DECODES_PENDING = Gauge(
    "image_decodes_pending", "Image decodes queued or running", multiprocess_mode="livesum"
)
