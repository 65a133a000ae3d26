"""Service settings, read once from the environment (and `.env`).

Every field is typed, defaulted and documented in `.env.example` and the README. Unsafe
combinations are refused at start-up by `Settings.check_safety` with a message that names the
setting to change.
"""

from __future__ import annotations

import ipaddress
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
    autoenhance_api_key: SecretStr | None = None
    autoenhance_api_base: str = DEFAULT_API_BASE
    autoenhance_api_version: str = DEFAULT_API_VERSION
    download_concurrency: int = Field(default=8, ge=1, le=64)
    upstream_max_connections: int = Field(default=64, ge=1, le=1024)
    upstream_connect_timeout: float = Field(default=5.0, gt=0)  # seconds
    upstream_read_timeout: float = Field(default=30.0, gt=0)  # seconds between bytes
    upstream_retries: int = Field(default=3, ge=0, le=10)  # extra attempts after the first
    upstream_retry_max_wait: float = Field(default=10.0, ge=0)  # seconds; caps Retry-After
    upstream_max_redirects: int = Field(default=5, ge=0, le=20)
    # The HTTP/1.1 implementation under image downloads: aiohttp (C parser) or httpx's own.
    upstream_download_client: Literal["aiohttp", "httpx"] = "aiohttp"
    # Bytes of pooled buffers per process that image bodies with a Content-Length are received
    # into straight from the socket (no spool); 0 turns this off: every image is spooled.
    image_pool_bytes: int = Field(default=0, ge=0, le=1024**3)
    image_pool_request_bytes: int = Field(default=32 * 1024**2, ge=1024**2)  # one request's
    image_pool_max_image_bytes: int = Field(default=16 * 1024**2, ge=1)  # larger: spooled
    image_pool_wait: float = Field(default=0.5, ge=0)  # seconds for a buffer, then spooled
    circuit_failure_threshold: int = Field(default=20, ge=1)  # consecutive failures that open it
    circuit_cooldown: float = Field(default=15.0, gt=0)  # seconds before a trial call
    circuit_max_credentials: int = Field(default=10_000, ge=1)  # keys with a failure remembered
    # Largest JSON answer read from the API (an order with all its images), bytes; past it 502.
    upstream_max_json_bytes: int = Field(default=32 * 1024 * 1024, ge=64 * 1024)

    # --- Sandbox (embedded emulator, used when no upstream key is set) ---------------------
    sandbox_processing_delay: float = Field(default=3.0, ge=0)  # seconds per uploaded image

    # --- Archives ---------------------------------------------------------------------------
    data_dir: Path = Path("var")
    # Bytes DATA_DIR must keep free: below it jobs fail with the reason and /ready says so
    # (kept so that a failure can still be recorded; the disk is never written full).
    data_dir_min_free_bytes: int = Field(default=128 * 1024 * 1024, ge=0)
    spool_memory_bytes: int = Field(default=1024 * 1024, ge=0)  # per image, then to disk
    max_images_per_order: int = Field(default=10_000, ge=1)
    archive_cache_max_bytes: int = Field(default=2 * 1024**3, ge=0)  # 0 disables the cache
    # Bytes one request may build before answering (stream=false, a resume that must fetch
    # the rest of the archive to know its size); 0 means no bound.
    archive_build_max_bytes: int = Field(default=2 * 1024**3, ge=0)
    # Where archives, manifests and job archives live: a directory, or s3://bucket/prefix.
    archive_store: str | None = None  # default DATA_DIR/archives
    s3_endpoint_url: str | None = None  # S3-compatible services (MinIO, R2, B2); unset = AWS
    # The standard AWS variables; unset = obstore's own lookup (environment, instance role).
    aws_access_key_id: str | None = None
    aws_secret_access_key: SecretStr | None = None
    aws_session_token: SecretStr | None = None
    aws_region: str | None = None
    archive_store_min_idle: float = Field(default=300.0, ge=0)  # seconds safe from eviction
    archive_redirect: bool = False  # answer complete archives on S3 with a presigned 302
    # Seconds a presigned URL works: a client follows a redirect at once, and the URL opens
    # the archive to anyone holding it, with no access check, until it expires.
    archive_redirect_ttl: int = Field(default=60, ge=10, le=7 * 86400)  # seconds
    # Seconds one store call on a request path may take (a stat, opening a read, each chunk of
    # it, a manifest, a delete); past it the call fails as the store being unavailable.
    archive_store_request_timeout: float = Field(default=2.0, gt=0, le=60)

    # --- Images (thumbnails and renderings) -------------------------------------------------
    decode_workers: int = Field(default=2, ge=1, le=64)  # threads decoding images, per process
    decode_queue: int = Field(default=32, ge=0, le=10_000)  # decodes waiting; past it 503
    decode_deadline: float = Field(default=10.0, gt=0, le=600)  # seconds one decode may take
    # Progressive scans (SOS markers) a JPEG may have; a normal one has about ten.
    decode_max_scans: int = Field(default=100, ge=1, le=1_000_000)
    # Largest picture a rendering decodes, pixels (memory: ~3 bytes a pixel at most).
    render_max_pixels: int = Field(default=64_000_000, ge=1_000_000, le=89_000_000)
    presets_file: Path | None = None  # TOML file adding or overriding download presets

    # --- Access control ---------------------------------------------------------------------
    service_api_key: SecretStr | None = None
    admin_token: SecretStr | None = None
    signing_secret: SecretStr | None = None  # generated and kept in DATA_DIR when unset
    download_link_ttl: int = Field(default=600, ge=10, le=7 * 86400)  # seconds
    admin_session_ttl: int = Field(default=8 * 3600, ge=60)  # seconds
    allowed_origins: CommaList = []
    trusted_proxies: CommaList = []

    # --- Order creation -----------------------------------------------------------------------
    max_upload_files: int = Field(default=50, ge=1)
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, ge=1)  # per file
    upload_concurrency: int = Field(default=4, ge=1, le=32)

    # --- Jobs ---------------------------------------------------------------------------------
    redis_url: str | None = None
    # Seconds one Redis call (jobs, sessions, rate limits) may take, connecting included;
    # past it jobs and sign-in answer 503 and rate limits let the request through.
    redis_timeout: float = Field(default=1.5, gt=0, le=30)
    job_ttl: int = Field(default=3600, ge=60)  # seconds a finished archive stays downloadable
    job_storage_max_bytes: int = Field(default=20 * 1024**3, ge=0)
    job_wait_timeout: int = Field(default=3600, ge=1)  # seconds a wait=true job waits
    callback_secret: SecretStr | None = None  # HMAC key for callbacks; signing_secret if unset
    callback_allow_private: bool = False  # allow callbacks to loopback/private networks
    callback_timeout: float = Field(default=5.0, gt=0)
    webhook_auth_token: SecretStr | None = None  # what Autoenhance sends to /webhooks/autoenhance
    job_concurrency: int = Field(default=2, ge=1, le=64)  # archives built at once per process
    job_poll_interval: float = Field(default=0.5, gt=0, le=10)  # seconds between state checks
    job_lease_seconds: float = Field(default=30.0, ge=1)  # heartbeat lease of a running job
    job_max_attempts: int = Field(default=3, ge=1, le=10)  # runs before a dying job fails
    job_sweep_interval: float = Field(default=10.0, gt=0)  # seconds between expiry sweeps
    job_wait_poll_min: float = Field(default=2.0, gt=0)  # first re-check of a waited-for order
    job_wait_poll_max: float = Field(default=60.0, gt=0)  # backoff cap of those re-checks
    # Seconds without a heartbeat after which an arq worker counts as gone (Redis backend).
    job_worker_stale_seconds: float = Field(default=30.0, ge=3)
    # Seconds a job archive with no job record is kept before the sweeper deletes it.
    job_orphan_grace: float = Field(default=3600.0, ge=0)

    # --- Deliveries -----------------------------------------------------------------------------
    delivery_default_ttl: int = Field(default=30 * 86400, ge=60)  # seconds a new link lives
    delivery_max_ttl: int = Field(default=365 * 86400, ge=60)  # seconds a link may live at most
    delivery_pin_attempts: int = Field(default=5, ge=1, le=100)  # wrong PINs before a lock-out
    delivery_pin_lockout: int = Field(default=900, ge=1)  # seconds a link refuses PINs after

    # --- Operations -------------------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    metrics_token: SecretStr | None = None
    rate_limit_downloads: str = "60/minute"  # GET /orders/{id}/images
    rate_limit_lookups: str = "120/minute"  # GET /orders, /orders/{id}; HEAD /orders/{id}/images
    rate_limit_create_orders: str = "10/minute"
    rate_limit_jobs: str = "30/minute"  # POST/GET /orders/{id}/jobs
    rate_limit_job_status: str = "120/minute"  # GET/DELETE /jobs/{id}
    rate_limit_job_downloads: str = "60/minute"  # GET/HEAD /jobs/{id}/download
    rate_limit_links: str = "60/minute"  # POST /orders/{id}/download-link, /jobs/{id}/...
    # GET /orders/{id}/images/{image_id}/thumbnail: one grid of an order loads dozens at once
    rate_limit_thumbnails: str = "600/minute"
    max_request_body_bytes: int = Field(default=1024 * 1024, ge=1024)  # non-upload routes
    request_header_timeout: float = Field(default=10.0, gt=0)  # seconds to send the headers
    request_body_idle_timeout: float = Field(default=30.0, gt=0)  # seconds between body parts
    request_body_timeout: float = Field(default=900.0, gt=0)  # seconds for a whole body
    shutdown_grace_seconds: float = Field(default=30.0, ge=0)
    sentry_dsn: SecretStr | None = None
    sentry_environment: str = "production"
    sentry_release: str | None = None
    sentry_traces_sample_rate: float = Field(default=0.2, ge=0, le=1)
    sentry_auth_token: SecretStr | None = None
    sentry_org: str | None = None
    sentry_project: str | None = None
    sentry_api_base: str = "https://sentry.io"  # Sentry's web API (self-hosted: your URL)
    readiness_cache_seconds: float = Field(default=10.0, ge=0)  # upstream probe reused this long
    chat_api_url: str | None = None
    chat_api_key: SecretStr | None = None
    chat_timeout: float = Field(default=15.0, gt=0, le=120)  # seconds for one assistant answer
    ask_rate_limit: str = "20/minute"  # questions per client address (docs or assistant)

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
        return self

    @property
    def sandbox_mode(self) -> bool:
        """True when no upstream key is configured: the embedded emulator answers instead."""
        return self.autoenhance_api_key is None

    @property
    def mode(self) -> Literal["sandbox", "live"]:
        return "sandbox" if self.sandbox_mode else "live"
