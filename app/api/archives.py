"""How an archive answer of the downloads service becomes an HTTP response, for every route
that serves one (an order's archive, a delivery's archive).

`pinned_url` names the one version of an archive that a response carries (its
`Content-Location`); `version_gone` is the answer for a pinned URL of an earlier version;
`download_response` matches a `Download` (`app.archive.outcomes`) once and wraps it into the
response that sends it, with the route's presentation headers; `stored_object_response` does
so for a stored object outside the downloads service (a job's archive). The work of deciding
an answer stops when the client leaves first: `app.web.disconnect.until_disconnected` (a quiet
499, `CLIENT_CLOSED_REQUEST`).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode

from fastapi import Request, Response
from starlette.responses import RedirectResponse

from app.api.deps import LinkCheck
from app.api.responses import StoredObjectResponse, TemporaryFileResponse, ZipStreamingResponse
from app.archive.http_rules import Conditions, not_modified_headers
from app.archive.outcomes import (
    BuiltFile,
    Download,
    NoBody,
    Redirect,
    StoredObject,
    Streamed,
    stored_answer,
)
from app.core.errors import Gone
from app.core.security import Signer
from app.storage import ArchiveStore, ObjectInfo

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


def download_response(download: Download, *, headers: Mapping[str, str] | None = None) -> Response:
    """The response that sends what the downloads service decided, with the route's own
    presentation `headers` (file name, image counts, `Content-Location`) added; a 304 keeps
    those a 304 repeats, a redirect none (it presents nothing)."""
    shown = dict(headers or {})
    match download:
        case StoredObject(status=status, headers=own, chunks=chunks):
            return StoredObjectResponse(chunks, status_code=status, headers={**shown, **own})
        case Redirect(url=url):
            return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})
        case Streamed(status=status, headers=own, body=body):
            return ZipStreamingResponse(
                body, status_code=status, headers={**shown, **own}, on_close=download.aclose
            )
        case BuiltFile(status=status, headers=own, path=path, span=span):
            return TemporaryFileResponse(
                path, status_code=status, headers={**shown, **own}, span=span
            )
        case NoBody(status=304, headers=own):
            return Response(status_code=304, headers=not_modified_headers({**shown, **own}))
        case NoBody(status=status, headers=own):
            response = Response(status_code=status, headers={**shown, **own})
            if "Content-Length" not in own:
                # A HEAD of an archive whose size is not known yet: Starlette's "0" of an
                # empty body would tell a client the archive is empty.
                del response.headers["content-length"]
            return response


async def stored_object_response(
    request: Request,
    store: ArchiveStore,
    info: ObjectInfo,
    *,
    headers: Mapping[str, str] | None = None,
    etag: str | None = None,
    redirect_ttl: float | None = None,
) -> Response:
    """Answer `request` (GET or HEAD) with the complete stored object `info` (a job's archive):
    see `app.archive.outcomes.stored_answer` for the rules.

    Raises:
        AppError: 416 when the requested range lies outside the object.
        ObjectMissing: the object is gone (evicted or deleted since `info` was read).
        StoreError: the store failed.
    """
    conditions = Conditions.from_headers(request.method, request.headers)
    answer = await stored_answer(
        store, info, conditions, headers=headers, etag=etag, redirect_ttl=redirect_ttl
    )
    return download_response(answer)
