"""How an archive answer of the downloads service becomes an HTTP response, for every route
that serves one (an order's archive, a delivery's archive).

`pinned_url` names the one version of an archive that a response carries (its
`Content-Location`); `version_gone` is the answer for a pinned URL of an earlier version;
`download_response` wraps a `Download` into the response that sends it. The work of deciding
an answer stops when the client leaves first: `app.web.disconnect.until_disconnected` (a quiet
499, `CLIENT_CLOSED_REQUEST`).
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import Request, Response

from app.api.deps import LinkCheck
from app.api.responses import (
    STREAMING_HEADERS,
    ZIP_MEDIA_TYPE,
    TemporaryFileResponse,
    ZipStreamingResponse,
    stored_object_response,
)
from app.archive.downloads import Downloads
from app.archive.outcomes import Download
from app.core.errors import Gone
from app.core.security import Signer

# The query parameter that pins an archive URL to one version of the order.
VERSION_PARAM = "version"


def pinned_url(
    request: Request,
    version: str,
    *,
    signer: Signer | None = None,
    link: LinkCheck = LinkCheck.ABSENT,
) -> str:
    """This request's path and query with `version` (path-absolute: right behind any proxy).

    A signed link stays signed: the pinned one is signed again with the same expiry.
    """
    params = [(k, v) for k, v in request.query_params.multi_items() if k != VERSION_PARAM]
    if link is LinkCheck.VALID and signer is not None:
        kept = {k: v for k, v in params if k not in ("sig", "expires")}
        expires = int(request.query_params["expires"])
        return signer.sign_until(request.url.path, {**kept, VERSION_PARAM: version}, expires).url
    return request.url.path + "?" + urlencode([*params, (VERSION_PARAM, version)])


def version_gone(current_url: str) -> Gone:
    """A pinned URL whose version is no longer the order's: its bytes are not served."""
    return Gone(
        {
            "message": "This URL names an earlier version of this order's archive; the order "
            "has changed since, so those bytes no longer exist. A partial file of it cannot be "
            "continued: download the current archive from current_url.",
            "current_url": current_url,
        },
        code="archive_version_gone",
    )


async def download_response(
    request: Request, downloads: Downloads, download: Download, *, redirect: bool = True
) -> Response:
    """Wrap what the downloads service decided into the response that sends it.

    `redirect=False` keeps a stored archive's bytes passing through this service (a delivery
    counts them) instead of a presigned redirect.
    """
    if download.stored is not None:
        assert downloads.store is not None  # where it was found
        return await stored_object_response(
            request,
            downloads.store,
            download.stored,
            headers=download.headers,
            etag=download.headers["ETag"],
            last_modified=download.last_modified,
            redirect_ttl=downloads.redirect_ttl if redirect else None,
        )
    if download.path is not None:
        return TemporaryFileResponse(
            download.path,
            status_code=download.status,
            headers=download.headers,
            span=download.span,
        )
    if download.body is not None:
        return ZipStreamingResponse(
            download.body,
            status_code=download.status,
            headers={**STREAMING_HEADERS, **download.headers},
            on_close=download.aclose,
        )
    if download.status == 304:
        return Response(status_code=304, headers=download.headers)
    response = Response(
        status_code=download.status,
        media_type=ZIP_MEDIA_TYPE,
        headers={**STREAMING_HEADERS, **download.headers},
    )
    if "Content-Length" not in download.headers:
        # A HEAD of an archive whose size is not known yet: Starlette's "0" of an empty body
        # would tell a client the archive is empty.
        del response.headers["content-length"]
    return response
