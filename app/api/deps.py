"""Dependencies of the routes: lifespan state, the download options and the caller's credential."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import APIKeyHeader

from app.api.selection import SelectionDep, VariantsDep
from app.archive.downloads import Downloads
from app.archive.fairness import FairLimiter
from app.archive.rendering import Renderer
from app.core.config import Settings
from app.core.errors import Unauthorized, Unprocessable
from app.core.security import Credential, Signer, operator_credential, same_secret
from app.core.sessions import SessionStore
from app.imaging.pool import DecodePool
from app.jobs.service import JobService
from app.upstream.client import AutoenhanceClient
from app.upstream.options import DownloadOptions, DownloadQuery, variants_problem
from app.web.ops import Operations

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


def get_decoder(request: Request) -> DecodePool:
    decoder: DecodePool = request.state.decoder
    return decoder


def get_renderer(request: Request) -> Renderer:
    renderer: Renderer = request.state.renderer
    return renderer


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
    query: Annotated[DownloadQuery, Query()],
    images: SelectionDep = None,
    variants: VariantsDep = None,
) -> DownloadOptions:
    """The download options of the query string (`?images=` and `?variants=` are checked on
    their own).

    Raises:
        Unprocessable: variants with options they cannot go with (code `variants_not_allowed`:
            a preview without dev_mode, another format, a size or quality of the caller's).
    """
    if variants and (problem := variants_problem(query)) is not None:
        raise Unprocessable(problem, code="variants_not_allowed")
    return DownloadOptions(**query.model_dump(), images=images, variants=variants)


SettingsDep = Annotated[Settings, Depends(get_settings)]
UpstreamDep = Annotated[AutoenhanceClient, Depends(get_upstream)]
LimiterDep = Annotated[FairLimiter, Depends(get_limiter)]
DownloadsDep = Annotated[Downloads, Depends(get_downloads)]
DecoderDep = Annotated[DecodePool, Depends(get_decoder)]
RendererDep = Annotated[Renderer, Depends(get_renderer)]
SignerDep = Annotated[Signer, Depends(get_signer)]  # signed links
SessionSignerDep = Annotated[Signer, Depends(get_session_signer)]
SessionsDep = Annotated[SessionStore, Depends(get_sessions)]
SpoolDirDep = Annotated[Path, Depends(get_spool_dir)]
JobsDep = Annotated[JobService, Depends(get_jobs)]
OpsDep = Annotated[Operations, Depends(get_ops)]
OptionsDep = Annotated[DownloadOptions, Depends(download_options)]


# A real Autoenhance key is a short token; anything longer or outside visible ASCII is refused
# before it could reach a header of an upstream request or a log line.
MAX_OWN_KEY_CHARS = 256

SERVICE_KEY_NEEDED = (
    "This service needs its API key in the X-API-Key header, or your own Autoenhance key in "
    "X-Autoenhance-Key."
)

ServiceKeyDep = Annotated[str | None, Depends(service_key_header)]
OwnKeyDep = Annotated[str | None, Depends(own_key_header)]


def own_key_credential(own_key: str | None) -> Credential | None:
    """The credential of the caller's own Autoenhance key, if one was sent.

    Raises:
        Unauthorized: too long, or characters outside visible ASCII (never echoed back).
    """
    if not own_key or not own_key.strip():
        return None
    key = own_key.strip()
    if len(key) > MAX_OWN_KEY_CHARS or not all("!" <= ch <= "~" for ch in key):
        raise Unauthorized(
            "X-Autoenhance-Key is not a well-formed Autoenhance API key.", code="malformed_key"
        )
    return Credential.own_key(key)


def service_key_accepted(settings: Settings, service_key: str | None) -> bool:
    """True when no `SERVICE_API_KEY` is set or `service_key` is it (constant time)."""
    expected = settings.service_api_key
    return expected is None or same_secret(service_key, expected.get_secret_value())


class LinkCheck(enum.Enum):
    """What a request's `sig` query parameter proves."""

    ABSENT = "absent"
    VALID = "valid"
    INVALID = "invalid"  # forged, expired, or on a method a link never authorises


def signed_link(request: Request, signer: SignerDep) -> LinkCheck:
    """Verify the signed link the request may be (see `Signer`)."""
    params = dict(request.query_params)
    if "sig" not in params:
        return LinkCheck.ABSENT
    # A signed link is something to fetch: it never authorises a change.
    if request.method not in ("GET", "HEAD"):
        return LinkCheck.INVALID
    return LinkCheck.VALID if signer.verify(request.url.path, params) else LinkCheck.INVALID


SignedLinkDep = Annotated[LinkCheck, Depends(signed_link)]


async def get_credential(
    settings: SettingsDep, link: SignedLinkDep, service_key: ServiceKeyDep, own_key: OwnKeyDep
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
    own = own_key_credential(own_key)
    if own is not None:
        return own
    if not service_key_accepted(settings, service_key) and link is not LinkCheck.VALID:
        raise Unauthorized(SERVICE_KEY_NEEDED)
    return operator_credential(settings)


CredentialDep = Annotated[Credential, Depends(get_credential)]
