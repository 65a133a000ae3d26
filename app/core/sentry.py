"""Sentry: error reporting when `SENTRY_DSN` is set, and the project's recent issues.

`init_sentry` turns the SDK on with the environment, release and traces sample rate from the
settings. Personal data stays off (the SDK default), stack frames are sent without their
local variables (an ASGI scope there holds the raw request headers), the SDK's event
scrubber masks credential-named fields wherever they appear, and `scrub_event` also masks
the credential headers this service accepts, cookies, `sig`/`token` values in URLs and
query strings, and the token of a delivery link (`/d/{token}`), which is the recipient's
credential.

`SentryIssues` reads the project's unresolved issues through Sentry's web API
(`SENTRY_AUTH_TOKEN`, `SENTRY_ORG`, `SENTRY_PROJECT`) with its own small HTTP client: the
shared upstream client may be wired to the in-process sandbox.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
import sentry_sdk
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber
from sentry_sdk.transport import Transport

from app.core.config import Settings
from app.core.identity import USER_AGENT

FILTERED = "[Filtered]"
SENSITIVE_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "x-autoenhance-key",
        "x-webhook-token",
    }
)
EXTRA_DENYLIST = ["x-autoenhance-key", "x_autoenhance_key", "x-api-key", "sig", "signing_secret"]
_QUERY_SECRET = re.compile(r"(?i)(^|[?&])(sig|token|api_key|key|secret)=[^&#]*")
# A delivery link's path segment is its bearer token.
_LINK_TOKEN = re.compile(r"(/d/)[^/?#]+")
SENTRY_API_TIMEOUT = httpx.Timeout(5.0, connect=3.0)
ISSUES_SHOWN = 25


def _scrub_query(text: str) -> str:
    text = _LINK_TOKEN.sub(lambda m: f"{m.group(1)}{FILTERED}", text)
    return _QUERY_SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}={FILTERED}", text)


def scrub_event(event: Any, hint: Any = None) -> Any:
    """`before_send`: mask credentials in the request part and breadcrumbs of an event."""
    request = event.get("request")
    if isinstance(request, dict):
        headers = request.get("headers")
        if isinstance(headers, dict):
            for name in list(headers):
                if name.lower() in SENSITIVE_HEADERS:
                    headers[name] = FILTERED
        if "cookies" in request:
            request["cookies"] = FILTERED
        for field in ("query_string", "url"):
            if isinstance(request.get(field), str):
                request[field] = _scrub_query(request[field])
    breadcrumbs = event.get("breadcrumbs")
    values = breadcrumbs.get("values") if isinstance(breadcrumbs, dict) else breadcrumbs
    for crumb in values if isinstance(values, list) else []:
        data = crumb.get("data") if isinstance(crumb, dict) else None
        if isinstance(data, dict) and isinstance(data.get("url"), str):
            data["url"] = _scrub_query(data["url"])
    return event


def init_sentry(settings: Settings, *, transport: type[Transport] | None = None) -> bool:
    """Start the Sentry SDK when `SENTRY_DSN` is set; True when it was started.

    `transport` replaces the network transport (tests capture events with it).
    """
    if settings.sentry_dsn is None:
        return False
    options: dict[str, Any] = {}
    if transport is not None:
        options["transport"] = transport
    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        environment=settings.sentry_environment,
        release=settings.sentry_release,
        traces_sample_rate=settings.sentry_traces_sample_rate,
        # Frame locals hold ASGI scopes whose raw header lists carry keys and cookies.
        include_local_variables=False,
        event_scrubber=EventScrubber(denylist=[*DEFAULT_DENYLIST, *EXTRA_DENYLIST]),
        before_send=scrub_event,
        before_send_transaction=scrub_event,
        **options,
    )
    return True


class SentryIssue(BaseModel):
    """One issue as Sentry's API describes it (the fields an operator needs)."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    id: str
    short_id: str | None = Field(default=None, alias="shortId")
    title: str
    culprit: str | None = None
    level: str | None = None
    status: str | None = None
    count: int = 0
    user_count: int = Field(default=0, alias="userCount")
    first_seen: datetime | None = Field(default=None, alias="firstSeen")
    last_seen: datetime | None = Field(default=None, alias="lastSeen")
    permalink: str | None = None


class SentryApiError(Exception):
    """Sentry's API could not be read; the message says why, without the token."""


class SentryIssues:
    """Reads a project's recent unresolved issues from Sentry's web API."""

    def __init__(
        self,
        *,
        base_url: str,
        org: str | None,
        project: str | None,
        token: str | None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.org = org
        self.project = project
        self._token = token
        self._http = http or httpx.AsyncClient(
            timeout=SENTRY_API_TIMEOUT,
            headers={"User-Agent": USER_AGENT},
            follow_redirects=False,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> SentryIssues:
        token = settings.sentry_auth_token
        return cls(
            base_url=settings.sentry_api_base,
            org=settings.sentry_org,
            project=settings.sentry_project,
            token=token.get_secret_value() if token is not None else None,
        )

    @property
    def missing_settings(self) -> list[str]:
        """Settings still to set before issues can be listed (empty when configured)."""
        values = {
            "SENTRY_AUTH_TOKEN": self._token,
            "SENTRY_ORG": self.org,
            "SENTRY_PROJECT": self.project,
        }
        return [name for name, value in values.items() if not value]

    async def recent(self) -> list[SentryIssue]:
        """The project's unresolved issues of the last 14 days, most recently seen first.

        Raises:
            SentryApiError: not configured, unreachable, refused the token, or answered
                something that is not a list of issues.
        """
        if self.missing_settings:
            raise SentryApiError("not configured: set " + ", ".join(self.missing_settings))
        assert self.org is not None and self.project is not None
        url = (
            f"{self.base_url}/api/0/projects/{quote(self.org, safe='')}/"
            f"{quote(self.project, safe='')}/issues/"
        )
        try:
            response = await self._http.get(
                url,
                params={"query": "is:unresolved", "statsPeriod": "14d", "sort": "date"},
                headers={"Authorization": f"Bearer {self._token}"},
            )
        except httpx.TimeoutException:
            raise SentryApiError("Sentry's API did not answer in time") from None
        except httpx.HTTPError as exc:
            raise SentryApiError(f"Sentry's API is unreachable ({type(exc).__name__})") from None
        if response.status_code in (401, 403):
            raise SentryApiError(f"Sentry refused the auth token ({response.status_code})")
        if response.status_code == 404:
            raise SentryApiError("Sentry knows no such organisation or project")
        if response.status_code >= 400:
            raise SentryApiError(f"Sentry's API answered {response.status_code}")
        try:
            payload = response.json()
            if not isinstance(payload, list):
                raise ValueError("not a list")
            return [SentryIssue.model_validate(item) for item in payload[:ISSUES_SHOWN]]
        except (ValueError, ValidationError):
            raise SentryApiError("Sentry's API answered something unexpected") from None

    async def aclose(self) -> None:
        await self._http.aclose()
