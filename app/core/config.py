"""Service settings, read once from the environment (and `.env`).

Every field is typed, defaulted and described (with its unit) here, once: `docs/configuration.md`
and `.env.example` are generated from these fields (`make docs`, `app.core.settings_doc`). Unsafe
combinations are refused at start-up by `Settings.check_safety` with a message that names the
setting to change.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Literal, Self

from limits import parse_many
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_API_BASE = "https://api.autoenhance.ai/v3"
# The API version the official SDKs pin; accounts may be pinned to another one.
DEFAULT_API_VERSION = "2025-01-01"

CommaList = Annotated[list[str], NoDecode]
# S3 bucket names: 3-63 lower-case letters, digits, dots and hyphens.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")

# Secrets this service checks callers against or signs with: guessing one must be hopeless.
# (Keys of other services, such as CHAT_API_KEY or SENTRY_AUTH_TOKEN, are theirs to define.)
OWN_SECRETS = (
    "service_api_key",
    "admin_token",
    "signing_secret",
    "callback_secret",
    "webhook_auth_token",
    "metrics_token",
)
MIN_SECRET_CHARS = 16
# Default decode workers at most: each holds a render's memory, so a large host's core count
# must not set it alone.
DEFAULT_DECODE_WORKERS_CAP = 8


def usable_cores(*, cap: int) -> int:
    """The CPUs this process may run on (its affinity: a container's cpuset, not the host's
    count), at most `cap`."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # platforms without affinity
        cores = os.cpu_count() or 1
    return max(1, min(cap, cores))


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """All configuration of the service. Field names map to upper-case environment variables."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        # `KEY=` (as in .env.example) means "unset", not an empty key or token.
        env_ignore_empty=True,
    )

    # --- Upstream (Autoenhance API) -------------------------------------------------------
    autoenhance_api_key: SecretStr | None = Field(
        default=None,
        description="The operator's Autoenhance API key. Unset: sandbox mode (the built-in "
        "emulator answers; nothing is charged).",
    )
    autoenhance_api_base: str = Field(
        default=DEFAULT_API_BASE,
        description="Base URL of the Autoenhance API (point it at `python -m app.sandbox` for "
        "local development).",
    )
    autoenhance_api_version: str = Field(
        default=DEFAULT_API_VERSION,
        description="Sent as `x-api-version`: accounts are pinned to a version, this asks for "
        "another one.",
    )
    download_concurrency: int = Field(
        default=8, ge=1, le=64, description="Images fetched at once for one request."
    )
    upstream_max_connections: int = Field(
        default=64,
        ge=1,
        le=1024,
        description="Image fetches at once across all requests, shared round-robin between "
        "downloads.",
    )
    upstream_connect_timeout: float = Field(
        default=5.0, gt=0, description="Seconds to connect to the API before a call fails."
    )
    upstream_read_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds of silence from the API while reading before a call fails.",
    )
    upstream_image_deadline: float = Field(
        default=300.0,
        gt=0,
        description="Seconds one attempt at one image may take, redirects and body included: "
        "an upstream that trickles bytes just inside UPSTREAM_READ_TIMEOUT cannot hold a "
        "download longer. Past it the image is skipped (named in the download report), not "
        "retried.",
    )
    upstream_image_max_bytes: int = Field(
        default=512 * 1024 * 1024,
        gt=0,
        description="Bytes one delivered image may have (Content-Length or what arrives); a "
        "larger one is skipped, named in the download report, before it fills the spool.",
    )
    upstream_retries: int = Field(
        default=3,
        ge=0,
        le=10,
        description="Extra attempts after the first on connect errors, timeouts, 5xx and 429.",
    )
    upstream_retry_max_wait: float = Field(
        default=10.0,
        ge=0,
        description="Seconds one backoff or `Retry-After` wait may last at most.",
    )
    upstream_max_redirects: int = Field(
        default=5,
        ge=0,
        le=20,
        description="Redirects followed (http/https only; the key never leaves the API's origin).",
    )
    upstream_download_client: Literal["aiohttp", "httpx"] = Field(
        default="aiohttp",
        description="The HTTP/1.1 implementation under image downloads that spool "
        "(`IMAGE_POOL_BYTES=0`): `aiohttp` (C parser) or `httpx` (pure Python); API calls "
        "always use httpx.",
    )
    image_pool_bytes: int = Field(
        default=40 * 1024**2,
        ge=0,
        le=1024**3,
        description="Bytes of pooled buffers per process that image bodies with a "
        "Content-Length are received into straight from the socket instead of a spool "
        "(replaces `UPSTREAM_DOWNLOAD_CLIENT` for downloads); 0 turns this off: every image "
        "then spools through `UPSTREAM_DOWNLOAD_CLIENT`.",
    )
    image_pool_request_bytes: int = Field(
        default=32 * 1024**2,
        ge=1024**2,
        description="Bytes of the pool one request may hold at once (a slow client cannot "
        "take the rest).",
    )
    image_pool_max_image_bytes: int = Field(
        default=16 * 1024**2,
        ge=1,
        description="Bytes of the largest image body pooled; larger ones are spooled.",
    )
    image_pool_wait: float = Field(
        default=0.5,
        ge=0,
        description="Seconds an image waits for its turn and a buffer before it is spooled "
        "instead.",
    )
    circuit_failure_threshold: int = Field(
        default=20,
        ge=1,
        description="Consecutive failures that open a circuit: the shared one counts 5xx, "
        "timeouts and connection errors; one key's own counts 429 and 401/403 for that key.",
    )
    circuit_cooldown: float = Field(
        default=15.0, gt=0, description="Seconds a circuit stays open before a trial call."
    )
    circuit_max_credentials: int = Field(
        default=10_000,
        ge=1,
        description="Keys whose recent failures are remembered (hashed; the oldest is "
        "forgotten first).",
    )
    upstream_max_json_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=64 * 1024,
        description="Bytes of the largest JSON answer read from the API (an order with all its "
        "images); past it 502.",
    )

    # --- Sandbox (embedded emulator, used when no upstream key is set) ---------------------
    sandbox_processing_delay: float = Field(
        default=3.0,
        ge=0,
        description='Seconds the embedded emulator takes to "enhance" an uploaded image.',
    )

    # --- Archives ---------------------------------------------------------------------------
    data_dir: Path = Field(
        default=Path("var"),
        description="Directory of local state: spooled images, SQLite databases, the archive "
        "store by default, the generated signing secret.",
    )
    data_dir_min_free_bytes: int = Field(
        default=128 * 1024 * 1024,
        ge=0,
        description="Bytes `DATA_DIR` must keep free: below it jobs fail with the reason and "
        "`/ready` answers 503 (so that a failure can still be recorded).",
    )
    spool_memory_bytes: int = Field(
        default=1024 * 1024,
        ge=0,
        description="Bytes of one image kept in memory before it spools to a temporary file "
        "(at most 64 MiB).",
    )
    max_images_per_order: int = Field(
        default=10_000,
        ge=1,
        description="Images one synchronous archive may hold (bigger orders: use a job).",
    )
    archive_cache_max_bytes: int = Field(
        default=2 * 1024**3,
        ge=0,
        description="Bytes for cached finished archives and their manifests (least recently "
        "used out); 0 disables the cache.",
    )
    archive_build_max_bytes: int = Field(
        default=2 * 1024**3,
        ge=0,
        description="Bytes one request may build before answering (`stream=false`, or the rest "
        "of an archive a resume must fetch to know its size); 0 means no bound.",
    )
    archive_store: str | None = Field(
        default=None,
        description="Where archives, manifests and job archives live: a directory every node "
        "reaches, or `s3://bucket/prefix` (S3 or S3-compatible). Unset: `DATA_DIR/archives`.",
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        description="Endpoint of an S3-compatible service (MinIO, R2, B2), e.g. "
        "`http://127.0.0.1:9000`. Unset: AWS.",
    )
    aws_access_key_id: str | None = Field(
        default=None,
        description="S3 access key (the standard AWS variable). Unset: obstore's own lookup "
        "(environment, instance role).",
    )
    aws_secret_access_key: SecretStr | None = Field(
        default=None, description="S3 secret key (the standard AWS variable)."
    )
    aws_session_token: SecretStr | None = Field(
        default=None, description="S3 session token (the standard AWS variable)."
    )
    aws_region: str | None = Field(
        default=None, description="S3 region (the standard AWS variable)."
    )
    archive_store_min_idle: float = Field(
        default=300.0,
        ge=0,
        description="Seconds an object any node read or wrote is safe from eviction (protects "
        "downloads in flight).",
    )
    archive_redirect: bool = Field(
        default=False,
        description="Answer complete archives on S3 with a 302 to a presigned URL (S3 serves "
        "the bytes); needs `ARCHIVE_STORE=s3://...`.",
    )
    archive_redirect_ttl: int = Field(
        default=60,
        ge=10,
        le=7 * 86400,
        description="Seconds a presigned URL stays valid: anyone holding it may download, with "
        "no access check, until then.",
    )
    archive_store_request_timeout: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="Seconds one store call on a request path may take (a stat, opening a read, "
        "each chunk, a manifest, a delete); past it downloads stream afresh and job routes "
        "answer 503.",
    )

    # --- Images (thumbnails and renderings) -------------------------------------------------
    decode_workers: int = Field(
        default=0,
        ge=0,
        le=64,
        description="Threads decoding and rendering images, per process (each render uses one "
        "core and holds up to ~50 MB at its peak); 0: one per CPU this process may run on "
        f"(its affinity, not the host's count), at most {DEFAULT_DECODE_WORKERS_CAP}.",
    )
    decode_queue: int = Field(
        default=32,
        ge=0,
        le=10_000,
        description="Decodes that may wait for a thread; past it 503 `decoder_busy`.",
    )
    decode_deadline: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description="Seconds one decode may take before it is stopped (502 for a thumbnail).",
    )
    decode_max_scans: int = Field(
        default=100,
        ge=1,
        le=1_000_000,
        description="Progressive scans (SOS markers) a JPEG may have; a normal one has about ten.",
    )
    render_max_pixels: int = Field(
        default=64_000_000,
        ge=1_000_000,
        le=89_000_000,
        description="Pixels of the largest picture a rendering decodes (memory: about 3 bytes "
        "a pixel at most).",
    )
    presets_file: Path | None = Field(
        default=None,
        description="TOML file adding or overriding download presets (see `presets.example.toml`).",
    )

    # --- Access control ---------------------------------------------------------------------
    service_api_key: SecretStr | None = Field(
        default=None,
        description="When set (16+ characters), callers must send it in the `X-API-Key` "
        "header to spend the operator's key; never accepted in a query string. Unset: open.",
    )
    admin_token: SecretStr | None = Field(
        default=None,
        description="Administrator token (16+ characters): `Authorization: Bearer <token>`, or "
        "exchanged for a session cookie at `POST /api/admin/session`. Unset: no administrators.",
    )
    signing_secret: SecretStr | None = Field(
        default=None,
        description="Root secret (16+ characters) the keys of signed links, sessions, callback "
        "signatures and sealed job keys are derived from, one per purpose. Unset: generated "
        "once into `DATA_DIR/signing.key`; set it when several machines serve the same links.",
    )
    download_link_ttl: int = Field(
        default=600,
        ge=10,
        le=7 * 86400,
        description="Seconds a signed download link stays valid.",
    )
    admin_session_ttl: int = Field(
        default=8 * 3600,
        ge=60,
        description="Seconds a signed-in administrator session lasts (signing out ends it at "
        "once).",
    )
    allowed_origins: CommaList = Field(
        default=[],
        description="Extra origins (comma-separated) trusted for cookie-authorised changes and "
        "allowed by CORS; the service's own origin always is. `*` is refused.",
    )
    trusted_proxies: CommaList = Field(
        default=[],
        description="Proxies (IPs or CIDRs, comma-separated) whose `X-Forwarded-For` is "
        "believed; the start commands also pass it to uvicorn's `--forwarded-allow-ips`.",
    )

    # --- Order creation -----------------------------------------------------------------------
    max_upload_files: int = Field(
        default=50, ge=1, description="Files one `POST /api/create-order` may carry."
    )
    max_upload_bytes: int = Field(
        default=20 * 1024 * 1024, ge=1, description="Bytes of one uploaded file at most."
    )
    upload_concurrency: int = Field(
        default=4,
        ge=1,
        le=32,
        description="Images registered and uploaded at once while creating an order.",
    )

    # --- Jobs ---------------------------------------------------------------------------------
    redis_url: str | None = Field(
        default=None,
        description="Redis URL. Set: the scale-out job backend (run `make worker` processes), "
        "and sessions and rate-limit counters shared by every process. Unset: embedded SQLite "
        "jobs, limits in memory.",
    )
    redis_timeout: float = Field(
        default=1.5,
        gt=0,
        le=30,
        description="Seconds one Redis call (jobs, sessions, rate limits) may take, connecting "
        "included; past it job routes and sign-in answer 503 and rate limits let the request "
        "through.",
    )
    job_ttl: int = Field(
        default=3600,
        ge=60,
        description="Seconds a finished (or failed, cancelled) job and its archive are kept.",
    )
    job_storage_max_bytes: int = Field(
        default=20 * 1024**3,
        ge=0,
        description="Bytes job archives may take in the archive store; a job exceeding it "
        "fails. 0 means no bound.",
    )
    job_wait_timeout: int = Field(
        default=3600,
        ge=1,
        description="Seconds a `wait=true` job waits for its order to finish processing before "
        "it fails.",
    )
    callback_secret: SecretStr | None = Field(
        default=None,
        description="Root of the callback keys (16+ characters, not `SIGNING_SECRET`): each "
        "job's callbacks are signed with a key derived from it for that job. Unset: a root "
        "derived from `SIGNING_SECRET` (`python -m app.core.keys callback-secret`).",
    )
    callback_allow_private: bool = Field(
        default=False,
        description="Allow callback URLs on loopback and private networks (tests, the "
        "sandbox); keep false in production.",
    )
    callback_timeout: float = Field(
        default=5.0,
        gt=0,
        description="Seconds one callback attempt may take in all: connect, redirects, answer "
        "(three attempts).",
    )
    webhook_auth_token: SecretStr | None = Field(
        default=None,
        description="What Autoenhance sends to `POST /webhooks/autoenhance` (16+ characters). "
        "Unset: the webhook is off.",
    )
    job_concurrency: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Archives built at once by one process (a web process without Redis, or "
        "an arq worker).",
    )
    job_poll_interval: float = Field(
        default=0.5,
        gt=0,
        le=10,
        description="Seconds between a running job's checks of its record (cancellation, "
        "progress).",
    )
    job_lease_seconds: float = Field(
        default=30.0,
        ge=1,
        description="Seconds of a running job's heartbeat lease; a job whose process died runs "
        "again once it lapses.",
    )
    job_max_attempts: int = Field(
        default=3,
        ge=1,
        le=10,
        description="Runs of one job before a job whose process keeps dying fails.",
    )
    job_sweep_interval: float = Field(
        default=10.0,
        gt=0,
        description="Seconds between sweeps (lapsed leases, expired and orphaned archives, "
        "dead workers).",
    )
    job_wait_poll_min: float = Field(
        default=2.0,
        gt=0,
        description="Seconds of the first pause between re-reads of an order a `wait=true` job "
        "waits for.",
    )
    job_wait_poll_max: float = Field(
        default=60.0, gt=0, description="Seconds of the longest such pause (the backoff's cap)."
    )
    job_worker_stale_seconds: float = Field(
        default=30.0,
        ge=3,
        description="Seconds without a heartbeat after which an arq worker counts as gone "
        "(`/ready`, `/metrics`) and leaves the worker registry.",
    )
    job_orphan_grace: float = Field(
        default=3600.0,
        ge=0,
        description="Seconds a job archive whose job record is gone (Redis restarted empty) is "
        "kept before the sweeper deletes it.",
    )

    # --- Deliveries -----------------------------------------------------------------------------
    delivery_default_ttl: int = Field(
        default=30 * 86400,
        ge=60,
        description="Seconds a delivery link lives when its creator gives no `expires_at` "
        "(30 days).",
    )
    delivery_max_ttl: int = Field(
        default=365 * 86400,
        ge=60,
        description="Seconds a delivery link may live at most; a later `expires_at` is refused "
        "(365 days).",
    )
    delivery_pin_attempts: int = Field(
        default=5,
        ge=1,
        le=100,
        description="Wrong PINs in a row before a delivery link refuses every PIN for "
        "`DELIVERY_PIN_LOCKOUT`.",
    )
    delivery_pin_lockout: int = Field(
        default=900,
        ge=1,
        description="Seconds a delivery link refuses PINs after `DELIVERY_PIN_ATTEMPTS` wrong "
        "ones.",
    )

    # --- Operations -------------------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Log level: `DEBUG`, `INFO`, `WARNING` or `ERROR`."
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="Log format: `text`, or `json` (one object per line, with every field).",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="When set (16+ characters), `/metrics` needs it as "
        "`Authorization: Bearer <METRICS_TOKEN>`.",
    )
    rate_limit_downloads: str = Field(
        default="60/minute",
        description="Requests per client address (and per own key, hashed, when one is sent) "
        "to `GET /orders/{id}/images`, in the `limits` notation (e.g. `60/minute;1000/day`); "
        "`off` means no limit.",
    )
    rate_limit_lookups: str = Field(
        default="120/minute",
        description="Requests per client to `GET /orders`, `GET /orders/{id}` and "
        "`HEAD /orders/{id}/images`.",
    )
    rate_limit_create_orders: str = Field(
        default="10/minute",
        description="Order creations per client address (and per own key).",
    )
    rate_limit_jobs: str = Field(
        default="30/minute", description="Requests per client to `POST/GET /orders/{id}/jobs`."
    )
    rate_limit_job_status: str = Field(
        default="120/minute", description="Requests per client to `GET/DELETE /jobs/{id}`."
    )
    rate_limit_job_downloads: str = Field(
        default="60/minute",
        description="Requests per client to `GET/HEAD /jobs/{id}/download`.",
    )
    rate_limit_links: str = Field(
        default="60/minute",
        description="Requests per client to `POST /orders/{id}/download-link` and "
        "`POST /jobs/{id}/download-link`.",
    )
    rate_limit_thumbnails: str = Field(
        default="600/minute",
        description="Requests per client to `GET /orders/{id}/images/{image_id}/thumbnail` "
        "(one grid of an order loads dozens at once).",
    )
    max_request_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="Bytes of the largest request body (uploads to `/api/create-order` have "
        "their own, larger limit).",
    )
    request_header_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a connection may take to send a request's headers before it is "
        "closed.",
    )
    request_body_idle_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds a request body may pause between parts before a 408.",
    )
    request_body_timeout: float = Field(
        default=900.0,
        gt=0,
        description="Seconds a whole request body may take (a 1 GB upload at about 1.2 MB/s) "
        "before a 408.",
    )
    shutdown_grace_seconds: float = Field(
        default=30.0,
        ge=0,
        description="Seconds downloads in flight may take to finish after SIGTERM (passed to "
        "uvicorn by `make run`).",
    )
    sentry_dsn: SecretStr | None = Field(
        default=None, description="Sentry error reporting: on only when this is set."
    )
    sentry_environment: str = Field(default="production", description="Sentry's environment tag.")
    sentry_release: str | None = Field(default=None, description="Sentry's release tag.")
    sentry_traces_sample_rate: float = Field(
        default=0.2, ge=0, le=1, description="Share of requests traced (0 to 1)."
    )
    sentry_auth_token: SecretStr | None = Field(
        default=None,
        description="Token (with `project:read`) of Sentry's web API, for "
        "`GET /api/sentry/issues`.",
    )
    sentry_org: str | None = Field(default=None, description="Sentry organisation slug.")
    sentry_project: str | None = Field(default=None, description="Sentry project slug.")
    sentry_api_base: str = Field(
        default="https://sentry.io",
        description="Base URL of Sentry's web API (self-hosted: your URL).",
    )
    readiness_cache_seconds: float = Field(
        default=10.0,
        ge=0,
        description="Seconds one probe of the Autoenhance API by `/ready` is reused.",
    )
    chat_api_url: str | None = Field(
        default=None,
        description="Assistant endpoint the Ask tab forwards questions to (from the server). "
        "Unset: answers from the docs.",
    )
    chat_api_key: SecretStr | None = Field(
        default=None, description="Sent as `Authorization: Bearer` to `CHAT_API_URL`."
    )
    chat_timeout: float = Field(
        default=15.0, gt=0, le=120, description="Seconds allowed for one assistant answer."
    )
    ask_rate_limit: str = Field(
        default="20/minute",
        description="Questions per client address (docs or assistant), in the `limits` notation.",
    )

    _split = field_validator("allowed_origins", "trusted_proxies", mode="before")(_split_commas)

    @field_validator(
        "rate_limit_downloads",
        "rate_limit_lookups",
        "rate_limit_create_orders",
        "rate_limit_jobs",
        "rate_limit_job_status",
        "rate_limit_job_downloads",
        "rate_limit_links",
        "rate_limit_thumbnails",
        "ask_rate_limit",
    )
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        # "off" switches a limit off; anything else must parse, e.g. "60/minute;1000/day".
        value = value.strip()
        if value.lower() in {"", "off"}:
            return ""
        parse_many(value)
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)
        return value

    @field_validator("autoenhance_api_base")
    @classmethod
    def _check_base(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("AUTOENHANCE_API_BASE must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("archive_store")
    @classmethod
    def _check_store(cls, value: str | None) -> str | None:
        # A directory, or s3://bucket[/prefix]; any other URL is a mistake, caught at start.
        if value is None:
            return None
        value = value.strip()
        if "://" not in value:
            return value or None
        scheme, _, rest = value.partition("://")
        bucket, _, prefix = rest.partition("/")
        if scheme.lower() != "s3":
            raise ValueError(
                f"ARCHIVE_STORE must be a directory or s3://bucket/prefix, not a {scheme}:// URL"
            )
        if not _BUCKET.fullmatch(bucket):
            raise ValueError(f"ARCHIVE_STORE names an invalid S3 bucket {bucket!r}")
        prefix = prefix.strip("/")
        if prefix and any(part in ("", ".", "..") for part in prefix.split("/")):
            raise ValueError(f"ARCHIVE_STORE has an invalid prefix {prefix!r}")
        return f"s3://{bucket}/{prefix}".rstrip("/")

    @field_validator("s3_endpoint_url")
    @classmethod
    def _check_endpoint(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("S3_ENDPOINT_URL must be an http:// or https:// URL")
        return value.rstrip("/") if value else None

    @model_validator(mode="after")
    def check_safety(self) -> Self:
        """Refuse combinations that would expose the operator's key or lose data."""
        if "*" in self.allowed_origins:
            raise ValueError(
                "ALLOWED_ORIGINS='*' would let any web site spend the operator's credits; "
                "list the origins of your own pages instead"
            )
        for name in OWN_SECRETS:
            secret = getattr(self, name)
            if secret is not None and len(secret.get_secret_value()) < MIN_SECRET_CHARS:
                raise ValueError(
                    f"{name.upper()} must be at least {MIN_SECRET_CHARS} characters long"
                )
        if (
            self.callback_secret is not None
            and self.signing_secret is not None
            and self.callback_secret.get_secret_value() == self.signing_secret.get_secret_value()
        ):
            raise ValueError(
                "CALLBACK_SECRET must differ from SIGNING_SECRET: callback receivers hold it"
            )
        if self.archive_redirect and not (self.archive_store or "").startswith("s3://"):
            raise ValueError("ARCHIVE_REDIRECT=true needs ARCHIVE_STORE=s3://bucket/prefix")
        if self.delivery_default_ttl > self.delivery_max_ttl:
            raise ValueError("DELIVERY_DEFAULT_TTL must not exceed DELIVERY_MAX_TTL")
        if self.spool_memory_bytes > 64 * 1024 * 1024:
            raise ValueError("SPOOL_MEMORY_BYTES above 64 MiB defeats constant-memory streaming")
        if self.decode_workers == 0:
            self.decode_workers = usable_cores(cap=DEFAULT_DECODE_WORKERS_CAP)
        return self

    @property
    def sandbox_mode(self) -> bool:
        """True when no upstream key is configured: the embedded emulator answers instead."""
        return self.autoenhance_api_key is None

    @property
    def spool_dir(self) -> Path:
        """Where images wait to be written and archives are built: `DATA_DIR/spool`."""
        return self.data_dir / "spool"

    @property
    def mode(self) -> Literal["sandbox", "live"]:
        return "sandbox" if self.sandbox_mode else "live"
