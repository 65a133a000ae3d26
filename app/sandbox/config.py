"""Sandbox settings: every knob is a typed field, settable by `SANDBOX_*` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.sandbox.faults import BandwidthFault, Fault, LatencyFault

DEFAULT_SAMPLE_DIR = Path(__file__).resolve().parents[2] / "sample_images"


class SandboxConfig(BaseSettings):
    """Behaviour of the Autoenhance emulator.

    Each field reads `SANDBOX_<FIELD>` from the environment (e.g. `SANDBOX_CREDITS=5`);
    `faults` takes a JSON list of fault objects (see `app.sandbox.faults`).
    """

    model_config = SettingsConfigDict(env_prefix="SANDBOX_", extra="ignore")

    processing_delay: float = Field(
        default=2.0, ge=0, le=3600, description="Seconds an uploaded image spends processing."
    )
    redirect_downloads: bool = Field(
        default=True,
        description="Answer /enhanced with 302 to /assets/<token> (as the real API does) "
        "instead of sending the bytes directly.",
    )
    # The upstream status for downloading an image that is not processed yet is undocumented.
    # 422 matches what the API returns for requests it cannot act on (APIFlask's default for
    # unprocessable requests) and is what third-party clients already treat as "not ready".
    not_ready_status: int = Field(
        default=422,
        ge=400,
        le=599,
        description="HTTP status for /enhanced or /original on a waiting/processing/error image.",
    )
    # Upstream behaviour with no credits left is undocumented; 402 Payment Required says exactly
    # what happened and cannot be confused with an auth (401/403) or ownership (404) failure.
    credits: int = Field(
        default=1000,
        ge=0,
        description="Full-size purchases available; preview=false without dev mode spends one "
        "per image (first download only), 402 when none are left.",
    )
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated accepted keys; empty accepts any non-empty x-api-key.",
    )
    webhook_url: str | None = Field(
        default=None, description="POST image_processed events here when set."
    )
    webhook_auth: str | None = Field(
        default=None, description="Value of the Authorization header on webhook requests."
    )
    latency_ms: int = Field(
        default=0, ge=0, le=600_000, description="Delay added before every API answer."
    )
    bandwidth_bytes_per_s: int | None = Field(
        default=None, ge=1, description="Throttle every response body to this rate."
    )
    faults: list[Fault] = Field(
        default_factory=list, description="Faults active at start (and after a reset)."
    )
    seed_demo: bool = Field(default=True, description="Create the demo order at start-up.")
    sample_dir: Path = Field(
        default=DEFAULT_SAMPLE_DIR, description="Directory of JPEGs used for the demo order."
    )
    preview_max_side: int = Field(
        default=1024, ge=16, description="Longest side in px of preview (default) downloads."
    )
    render_cache_bytes: int = Field(
        default=256 * 1024 * 1024, ge=0, description="Memory budget of the rendered-output LRU."
    )
    max_upload_bytes: int = Field(
        default=100 * 1024 * 1024, ge=1, description="Largest accepted PUT upload, bytes."
    )
    max_orders: int = Field(
        default=1000,
        ge=1,
        description="Orders kept; past it the oldest is forgotten (the demo order never).",
    )
    max_stored_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=0,
        description="Image bytes kept (uploads, synthetic payloads); past it the oldest "
        "orders are forgotten (the demo order and the one just written never).",
    )
    enforce_upload_content_type: bool = Field(
        default=False,
        description="Reject uploads whose Content-Type differs from the declared one with an "
        "S3-style 403 SignatureDoesNotMatch.",
    )
    log_level: str = Field(default="info", description="uvicorn log level for `-m app.sandbox`.")

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    def start_faults(self) -> list[Fault]:
        """Faults implied by the start-up knobs, in the order they are applied."""
        implied: list[Fault] = []
        if self.latency_ms:
            implied.append(LatencyFault(kind="latency", ms=self.latency_ms))
        if self.bandwidth_bytes_per_s:
            implied.append(BandwidthFault(kind="bandwidth", bytes_per_s=self.bandwidth_bytes_per_s))
        return [*implied, *self.faults]
