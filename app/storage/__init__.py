"""One store for everything an archive leaves behind: cached archives, manifests, job archives.

`open_store(settings)` builds the backend `ARCHIVE_STORE` names — a local directory (default
`DATA_DIR/archives`) or S3-compatible object storage (`s3://bucket/prefix`) — with the quotas
of the service: `cache/` and `manifests/` share `ARCHIVE_CACHE_MAX_BYTES` and are evicted least
recently used first; `jobs/` has `JOB_STORAGE_MAX_BYTES` and is never evicted (a job's archive
lives until the job expires). See `app.storage._base` for the guarantees.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from app.storage._base import DEFAULT_MIN_IDLE, ArchiveStore
from app.storage._local import LocalArchiveStore
from app.storage._types import (
    NAMESPACES,
    InvalidKey,
    ObjectInfo,
    ObjectMissing,
    Quota,
    StoreError,
    StoreTimeout,
    Usage,
    check_key,
)
from app.storage._writer import ObjectWriter

if TYPE_CHECKING:
    from app.core.config import Settings

__all__ = [
    "DEFAULT_MIN_IDLE",
    "NAMESPACES",
    "ArchiveStore",
    "InvalidKey",
    "LocalArchiveStore",
    "ObjectInfo",
    "ObjectMissing",
    "ObjectWriter",
    "Quota",
    "StoreError",
    "StoreTimeout",
    "Usage",
    "check_key",
    "open_store",
    "service_quotas",
]


def service_quotas(settings: Settings) -> tuple[Quota, Quota]:
    """The cache quota (evictable; 0 stores nothing) and the jobs quota (0 is unbounded)."""
    return (
        Quota(
            namespaces=("cache", "manifests"),
            max_bytes=settings.archive_cache_max_bytes,
            evictable=True,
        ),
        Quota(
            namespaces=("jobs",),
            max_bytes=settings.job_storage_max_bytes or None,
            evictable=False,
        ),
    )


def _s3_config(settings: Settings) -> dict[str, str]:
    """Credentials and region from the settings (so `.env` works too); what is unset is left
    to obstore, which reads the process environment and instance credentials itself."""
    config: dict[str, str] = {}
    if settings.aws_access_key_id:
        config["access_key_id"] = settings.aws_access_key_id
    for name, secret in (
        ("secret_access_key", settings.aws_secret_access_key),
        ("session_token", settings.aws_session_token),
    ):
        if secret is not None:
            config[name] = secret.get_secret_value()
    if settings.aws_region:
        config["region"] = settings.aws_region
    return config


def open_store(settings: Settings) -> ArchiveStore:
    """The store `ARCHIVE_STORE` names, with the service's quotas.

    Raises:
        StoreError: the directory cannot be created.
    """
    quotas = service_quotas(settings)
    location = settings.archive_store
    if location is not None and location.startswith("s3://"):
        from app.storage._s3 import S3ArchiveStore

        bucket, _, prefix = location.removeprefix("s3://").partition("/")
        try:
            return S3ArchiveStore(
                bucket=bucket,
                prefix=prefix,
                endpoint=settings.s3_endpoint_url,
                quotas=quotas,
                min_idle=settings.archive_store_min_idle,
                config=_s3_config(settings),
                request_timeout=settings.archive_store_request_timeout,
            )
        except Exception as exc:  # obstore reports bad configuration as several types
            raise StoreError(f"ARCHIVE_STORE {location} cannot be used: {exc}") from exc
    root = Path(location) if location else settings.data_dir / "archives"
    try:
        return LocalArchiveStore(
            root,
            quotas=quotas,
            min_idle=settings.archive_store_min_idle,
            request_timeout=settings.archive_store_request_timeout,
        )
    except OSError as exc:
        raise StoreError(f"ARCHIVE_STORE {root} cannot be used: {exc.strerror}") from exc
