"""GET/HEAD /orders/{order_id}/images: every enhanced image of an order as one ZIP."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from starlette.responses import FileResponse
from starlette.types import Receive, Scope, Send

from app.api.deps import CredentialDep, DownloadsDep, OptionsDep, SettingsDep, UpstreamDep
from app.api.responses import (
    STREAMING_HEADERS,
    ZIP_MEDIA_TYPE,
    ZIP_RESPONSE_DOC,
    ZipStreamingResponse,
    stored_object_response,
)
from app.api.selection import planned
from app.api.upstream_errors import checked_order_id, fetch_order
from app.core.errors import NotFound, Unprocessable, error_responses
from app.services.answers import Download
from app.services.conditions import Conditions
from app.services.downloads import Downloads
from app.services.naming import content_disposition
from app.services.overview import archive_name
from app.services.plan import BatchPlan, NothingToDeliver
from app.storage import ObjectMissing
from app.web.ratelimit import rate_limit

router = APIRouter(tags=["download"])


def archive_headers(plan: BatchPlan) -> dict[str, str]:
    filename = archive_name(plan.order, plan.options)
    return {
        "Content-Disposition": content_disposition(filename),
        "X-Total-Images": str(len(plan.images)),
        "X-Ready-Images": str(len(plan.deliverable)),
    }


IMAGES_PATH = "/orders/{order_id}/images"


@router.get(
    IMAGES_PATH,
    response_class=ZipStreamingResponse,
    responses={
        **ZIP_RESPONSE_DOC,
        304: {"description": "If-None-Match names the current archive"},
        **error_responses(400, 401, 404, 416, 422, 429, 502, 503),
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
    stream: Annotated[
        bool,
        Query(
            description="false = build first, then answer with Content-Length, "
            "X-Downloaded and X-Failed"
        ),
    ] = True,
    range_header: Annotated[str | None, Header(alias="range", include_in_schema=False)] = None,
    if_range: Annotated[str | None, Header(alias="if-range", include_in_schema=False)] = None,
    if_none_match: Annotated[
        str | None, Header(alias="if-none-match", include_in_schema=False)
    ] = None,
) -> Response:
    """Stream a ZIP of the order's enhanced images, in order; a report lists skipped images."""
    order_id = checked_order_id(order_id)
    order = await fetch_order(upstream, order_id, credential)
    if not order.images and options.images is None:
        raise NotFound("This order has no images yet.", code="empty_order")
    plan = planned(order, options)
    if len(plan.images) > settings.max_images_per_order:
        raise Unprocessable(
            f"This archive would hold {len(plan.images)} images; the limit per archive is "
            f"{settings.max_images_per_order}. Use an async job or select fewer images."
        )
    conditions = Conditions(
        method="HEAD" if request.method == "HEAD" else "GET",
        range=range_header,
        if_range=if_range,
        if_none_match=if_none_match,
    )

    def answer(use_cache: bool) -> Awaitable[Download]:
        return downloads.answer(
            plan,
            owner=credential.owner,
            api_key=credential.api_key,
            conditions=conditions,
            headers=archive_headers(plan),
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
        **error_responses(400, 401, 404, 416, 422, 429, 502, 503),
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
        return _TemporaryFileResponse(
            download.path, media_type=ZIP_MEDIA_TYPE, headers=download.headers
        )
    if download.body is not None:
        return ZipStreamingResponse(
            download.body,
            status_code=download.status,
            headers={**STREAMING_HEADERS, **download.headers},
            on_close=download.aclose,
        )
    headers = download.headers
    if download.status == 304:
        headers = {k: v for k, v in headers.items() if k in _NOT_MODIFIED_HEADERS}
    return Response(
        status_code=download.status,
        media_type=None if download.status == 304 else ZIP_MEDIA_TYPE,
        headers=headers if download.status == 304 else {**STREAMING_HEADERS, **headers},
    )


# RFC 9110 15.4.5: what a 304 repeats of the 200 it stands for.
_NOT_MODIFIED_HEADERS = {"ETag", "Last-Modified", "Cache-Control", "Content-Disposition"}

_T = TypeVar("_T")

# What the access log and metrics show for a request whose client left before any answer
# (nginx's convention); nothing is sent.
CLIENT_CLOSED_REQUEST = 499


async def until_disconnected(request: Request, work: Awaitable[_T]) -> _T | None:
    """Await `work`; None (and `work` cancelled) if the client disconnects first.

    Used while nothing has been sent yet (`stream=false` builds the whole archive first, a
    resume may fetch the rest of the archive): without it, a client that leaves would still
    have those images fetched and written.
    """
    task = asyncio.ensure_future(work)
    watcher = asyncio.create_task(_disconnect(request), name="download-disconnect-watch")
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    if task.cancelled():
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return None  # the client left: nobody receives an answer
    return task.result()


async def _disconnect(request: Request) -> None:
    task = asyncio.current_task()
    while (await request.receive())["type"] != "http.disconnect":
        # asyncio.wait_for (which a receive wrapper may use) can swallow a cancellation that
        # meets a message arriving: stop anyway once cancelled, or this waits for ever.
        if task is not None and task.cancelling():
            return


class _TemporaryFileResponse(FileResponse):
    """A file that is deleted once sent, or once the client has gone."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
