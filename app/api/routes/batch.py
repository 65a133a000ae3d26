"""GET/HEAD /orders/{order_id}/images: every enhanced image of an order as one ZIP."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request, Response

from app.api.deps import (
    CredentialDep,
    DownloadsDep,
    LinkCheck,
    OptionsDep,
    SettingsDep,
    SignedLinkDep,
    SignerDep,
    UpstreamDep,
)
from app.api.responses import (
    STREAMING_HEADERS,
    ZIP_MEDIA_TYPE,
    ZIP_RESPONSE_DOC,
    TemporaryFileResponse,
    ZipStreamingResponse,
    stored_object_response,
)
from app.api.selection import planned
from app.api.upstream_errors import checked_order_id, fetch_order
from app.core.errors import Gone, NotFound, Unprocessable, error_responses
from app.core.security import Signer
from app.services.answers import Download
from app.services.conditions import VERSION_PATTERN, archive_version
from app.services.downloads import Downloads
from app.services.naming import archive_filename, content_disposition
from app.services.plan import BatchPlan, NothingToDeliver
from app.services.ranges import Conditions
from app.storage import ObjectMissing
from app.web.ratelimit import rate_limit

router = APIRouter(tags=["download"])


def archive_headers(plan: BatchPlan) -> dict[str, str]:
    filename = archive_filename(plan.order.name, plan.order.order_id)
    return {
        "Content-Disposition": content_disposition(filename),
        "X-Total-Images": str(len(plan.images)),
        "X-Ready-Images": str(len(plan.deliverable)),
    }


IMAGES_PATH = "/orders/{order_id}/images"
# The query parameter that pins an archive URL to one version of the order.
VERSION_PARAM = "version"


def pinned_url(request: Request, version: str, *, signer: Signer, link: LinkCheck) -> str:
    """This request's path and query with `version` (path-absolute: right behind any proxy).

    A signed link stays signed: the pinned one is signed again with the same expiry.
    """
    params = [(k, v) for k, v in request.query_params.multi_items() if k != VERSION_PARAM]
    if link is LinkCheck.VALID:
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


@router.get(
    IMAGES_PATH,
    response_class=ZipStreamingResponse,
    responses={
        **ZIP_RESPONSE_DOC,
        304: {"description": "If-None-Match names the current archive"},
        **error_responses(400, 401, 404, 410, 416, 422, 429, 502, 503, 507),
    },
    summary="Download every enhanced image of an order as one ZIP",
    operation_id="download_order_images",
    dependencies=[Depends(rate_limit("downloads"))],
)
async def download_order_images(
    order_id: str,
    request: Request,
    options: OptionsDep,
    credential: CredentialDep,
    settings: SettingsDep,
    upstream: UpstreamDep,
    downloads: DownloadsDep,
    signer: SignerDep,
    link: SignedLinkDep,
    stream: Annotated[
        bool,
        Query(
            description="false = build first, then answer with Content-Length, "
            "X-Downloaded and X-Failed"
        ),
    ] = True,
    version: Annotated[
        str | None,
        Query(
            pattern=VERSION_PATTERN,
            description="Pin the URL to one version of the order (the Content-Location of "
            "every archive answer carries it): once the order changed, 410 instead of bytes "
            "of another version",
        ),
    ] = None,
) -> Response:
    """Stream a ZIP of the order's enhanced images, in order; a report lists skipped images."""
    order_id = checked_order_id(order_id)
    order = await fetch_order(upstream, order_id, credential)
    if not order.images and options.images is None:
        raise NotFound("This order has no images yet.", code="empty_order")
    plan = planned(order, options)
    current = archive_version(plan)
    location = pinned_url(request, current, signer=signer, link=link)
    if version is not None and version != current:
        raise version_gone(location)
    if len(plan.images) > settings.max_images_per_order:
        raise Unprocessable(
            f"This archive would hold {len(plan.images)} images; the limit per archive is "
            f"{settings.max_images_per_order}. Use an async job or select fewer images."
        )
    conditions = Conditions.from_headers(request.method, request.headers)
    headers = {**archive_headers(plan), "Content-Location": location}

    def answer(use_cache: bool) -> Awaitable[Download]:
        return downloads.answer(
            plan,
            owner=credential.owner,
            api_key=credential.api_key,
            conditions=conditions,
            headers=headers,
            stream=stream,
            use_cache=use_cache,
        )

    try:
        # Nothing is sent until the answer is decided (the first image, a resume's rest, a
        # whole stream=false build): a client that leaves meanwhile stops that work.
        download = await until_disconnected(request, answer(True))
        if download is None:
            return Response(status_code=CLIENT_CLOSED_REQUEST)
        try:
            return await download_response(request, downloads, download)
        except ObjectMissing:  # the cached copy was evicted since it was looked up
            download = await answer(False)
            return await download_response(request, downloads, download)
    except NothingToDeliver as exc:
        raise _nothing_to_deliver(exc) from None


router.add_api_route(
    IMAGES_PATH,
    download_order_images,
    methods=["HEAD"],
    response_class=ZipStreamingResponse,
    responses={
        200: {"description": "The headers the same GET would get, without fetching images"},
        304: {"description": "If-None-Match names the current archive"},
        **error_responses(400, 401, 404, 410, 416, 422, 429, 502, 503),
    },
    summary="Look at the download's headers without fetching images",
    operation_id="head_order_images",
    dependencies=[Depends(rate_limit("lookups"))],
)


def _nothing_to_deliver(exc: NothingToDeliver) -> Unprocessable:
    failures = [
        {"image_id": s.image_id, "image_name": s.image_name, "reason": s.reason}
        for s in exc.failures
    ]
    return Unprocessable(
        {
            "message": "No image of this order could be delivered. Images that are still "
            "processing become available once the order is processed; retry then.",
            "failures": failures,
        },
        code="nothing_to_deliver",
    )


async def download_response(request: Request, downloads: Downloads, download: Download) -> Response:
    """Wrap what the downloads service decided into the response that sends it."""
    if download.stored is not None:
        assert downloads.store is not None  # where it was found
        return await stored_object_response(
            request,
            downloads.store,
            download.stored,
            headers=download.headers,
            etag=download.headers["ETag"],
            last_modified=download.last_modified,
            redirect_ttl=downloads.redirect_ttl,
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


# What the access log and metrics show for a request whose client left before any answer
# (nginx's convention); nothing is sent.
CLIENT_CLOSED_REQUEST = 499


async def until_disconnected(request: Request, work: Awaitable[Download]) -> Download | None:
    """Await `work`; None (and `work` cancelled, and waited for) if the client disconnects
    first.

    Used while nothing has been sent yet (`stream=false` builds the whole archive first, a
    resume may fetch the rest of the archive): without it, a client that leaves would still
    have those images fetched and written. A client that leaves is not an error: nothing is
    logged but the access line.
    """
    task = asyncio.ensure_future(work)
    watcher = asyncio.create_task(_disconnect(request), name="download-disconnect-watch")
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # this request is cancelled (the server stops)
        task.cancel()
        watcher.cancel()
        await asyncio.wait({task, watcher})
        raise
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    if task in done:
        return task.result()
    task.cancel()
    # A cancelled task has no result until it has unwound: wait for that, then drop whatever
    # it made as the client left (nobody receives it).
    await asyncio.wait({task})
    if not task.cancelled() and task.exception() is None:
        await task.result().aclose()
    return None


async def _disconnect(request: Request) -> None:
    task = asyncio.current_task()
    while (await request.receive())["type"] != "http.disconnect":
        # asyncio.wait_for (which a receive wrapper may use) can swallow a cancellation that
        # meets a message arriving: stop anyway once cancelled, or this waits for ever.
        if task is not None and task.cancelling():
            return
