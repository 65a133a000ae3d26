"""Download options shared by the batch endpoint, jobs and signed links."""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ImageFormat = Literal["jpeg", "png", "webp", "avif", "jxl"]


class DownloadOptions(BaseModel):
    """How each enhanced image is requested from the upstream.

    `preview` defaults to true because full-quality downloads cost credits; `dev_mode` sends
    `x-dev-mode: true` so the purchase flow can be tried without spending any.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: ImageFormat = "jpeg"
    quality: int | None = Field(default=None, ge=1, le=90)
    preview: bool = True
    watermark: bool | None = None
    max_width: int | None = Field(default=None, ge=1, le=20_000)
    scale: float | None = Field(default=None, gt=0, le=1)
    dev_mode: bool = False

    def upstream_params(self) -> dict[str, str]:
        """Query parameters for `GET /images/{id}/enhanced` (booleans as the API spells them)."""
        params: dict[str, str] = {"format": self.format, "preview": _flag(self.preview)}
        if self.quality is not None:
            params["quality"] = str(self.quality)
        if self.watermark is not None:
            params["watermark"] = _flag(self.watermark)
        if self.max_width is not None:
            params["max_width"] = str(self.max_width)
        if self.scale is not None:
            params["scale"] = repr(self.scale)
        return params

    def query(self) -> dict[str, str]:
        """The options as this service's own query string (for links and job URLs)."""
        params = self.upstream_params()
        if self.dev_mode:
            params["dev_mode"] = "true"
        return params

    def fingerprint(self) -> str:
        """A stable short hash of the options, for cache keys."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _flag(value: bool) -> str:
    return "true" if value else "false"
