"""Dependencies of the routes: lifespan state, the download options and the caller's credential."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import APIKeyHeader

from app.api.selection import SelectionDep
from app.core.config import Settings
from app.core.errors import Unauthorized
from app.core.ops import Operations
from app.core.security import OPERATOR, Credential, Signer, same_secret
from app.core.sessions import SessionStore
from app.jobs.service import JobService
from app.services.downloads import Downloads
from app.services.fairness import FairLimiter
from app.storage import ArchiveStore
from app.upstream.client import AutoenhanceClient
from app.upstream.options import DownloadOptions, DownloadQuery

# Key sent to the embedded sandbox on the operator's behalf (it accepts any non-empty key).
SANDBOX_OPERATOR_KEY = "sandbox-operator-key"

service_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="The service's own key (SERVICE_API_KEY), when the operator has set one.",
)
own_key_header = APIKeyHeader(
    name="X-Autoenhance-Key",
    auto_error=False,
    description="Your own Autoenhance API key: used for your upstream calls instead of the "
    "operator's; never logged or stored.",
)


def get_settings(request: Request) -> Settings:
    settings: Settings = request.state.settings
    return settings


def get_upstream(request: Request) -> AutoenhanceClient:
    upstream: AutoenhanceClient = request.state.upstream
    return upstream


def get_limiter(request: Request) -> FairLimiter:
    limiter: FairLimiter = request.state.limiter
    return limiter


def get_downloads(request: Request) -> Downloads:
    downloads: Downloads = request.state.downloads
    return downloads


def get_store(request: Request) -> ArchiveStore:
    store: ArchiveStore = request.state.store
    return store


def get_signer(request: Request) -> Signer:
    signer: Signer = request.state.signer
    return signer


def get_session_signer(request: Request) -> Signer:
    signer: Signer = request.state.session_signer
    return signer


def get_sessions(request: Request) -> SessionStore:
    sessions: SessionStore = request.state.sessions
    return sessions


def get_spool_dir(request: Request) -> Path:
    spool_dir: Path = request.state.spool_dir
    return spool_dir


def get_jobs(request: Request) -> JobService:
    jobs: JobService = request.state.jobs
    return jobs


def get_ops(request: Request) -> Operations:
    ops: Operations = request.state.ops
    return ops


def download_options(
    query: Annotated[DownloadQuery, Query()], images: SelectionDep = None
) -> DownloadOptions:
    """The download options of the query string (`?images=` is checked on its own)."""
    return DownloadOptions(**query.model_dump(), images=images)


SettingsDep = Annotated[Settings, Depends(get_settings)]
UpstreamDep = Annotated[AutoenhanceClient, Depends(get_upstream)]
LimiterDep = Annotated[FairLimiter, Depends(get_limiter)]
DownloadsDep = Annotated[Downloads, Depends(get_downloads)]
StoreDep = Annotated[ArchiveStore, Depends(get_store)]
SignerDep = Annotated[Signer, Depends(get_signer)]  # signed links
SessionSignerDep = Annotated[Signer, Depends(get_session_signer)]
SessionsDep = Annotated[SessionStore, Depends(get_sessions)]
SpoolDirDep = Annotated[Path, Depends(get_spool_dir)]
JobsDep = Annotated[JobService, Depends(get_jobs)]
OpsDep = Annotated[Operations, Depends(get_ops)]
OptionsDep = Annotated[DownloadOptions, Depends(download_options)]


def operator_credential(settings: Settings) -> Credential:
    key = settings.autoenhance_api_key
    return Credential(
        api_key=key.get_secret_value() if key is not None else SANDBOX_OPERATOR_KEY,
        owner=OPERATOR,
    )


# A real Autoenhance key is a short token; anything longer or outside visible ASCII is refused
# before it could reach a header of an upstream request or a log line.
MAX_OWN_KEY_CHARS = 256


def checked_own_key(value: str) -> str:
    """A caller's own Autoenhance key, if it looks like one.

    Raises:
        Unauthorized: too long, or characters outside visible ASCII (never echoed back).
    """
    key = value.strip()
    if len(key) > MAX_OWN_KEY_CHARS or not all("!" <= ch <= "~" for ch in key):
        raise Unauthorized(
            "X-Autoenhance-Key is not a well-formed Autoenhance API key.", code="malformed_key"
        )
    return key


def _signed_link_valid(request: Request, signer: Signer) -> bool:
    # A signed link is something to fetch: it never authorises a change.
    if request.method not in ("GET", "HEAD"):
        return False
    params = dict(request.query_params)
    return "sig" in params and signer.verify(request.url.path, params)


async def get_credential(
    request: Request,
    settings: SettingsDep,
    signer: SignerDep,
    service_key: Annotated[str | None, Depends(service_key_header)],
    own_key: Annotated[str | None, Depends(own_key_header)],
) -> Credential:
    """Which upstream key this request spends.

    A caller's own key (`X-Autoenhance-Key`) always wins. Otherwise the operator's key is used,
    and when `SERVICE_API_KEY` is set the caller must present it in `X-API-Key` (compared in
    constant time) or carry a valid signed link (GET/HEAD only). Keys are only ever read from
    headers: a key in the query string (`?api_key=`, `?X-API-Key=`) is ignored, as it would
    otherwise end up in access logs, browser history and Referer headers.

    Raises:
        Unauthorized: the operator's key is protected and no valid credential was presented,
            or the caller's own key is malformed.
    """
    if own_key and own_key.strip():
        return Credential.own_key(checked_own_key(own_key))
    if settings.service_api_key is not None:
        expected = settings.service_api_key.get_secret_value()
        if not same_secret(service_key, expected) and not _signed_link_valid(request, signer):
            raise Unauthorized(
                "This service needs its API key in the X-API-Key header, or your own "
                "Autoenhance key in X-Autoenhance-Key."
            )
    return operator_credential(settings)


CredentialDep = Annotated[Credential, Depends(get_credential)]
