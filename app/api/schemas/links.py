"""Signed links the page hands to a browser's download manager (an order's ZIP, one image)."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, Field

from app.core.security import SignedLink


class DownloadLink(BaseModel):
    url: str = Field(description="Path and query of the signed download; GET it, no key needed")
    expires_at: datetime

    @classmethod
    def of(cls, link: SignedLink) -> DownloadLink:
        return cls(url=link.url, expires_at=datetime.fromtimestamp(link.expires, UTC))
