"""GET/HEAD /orders/{order_id}/images: every enhanced image of an order as one ZIP."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from app.api.archives import download_response, pinned_url, version_gone
from app.api.deps import (
    CredentialDep,
    DownloadsDep,
    OptionsDep,
    SettingsDep,
    SignedLinkDep,
    SignerDep,
    UpstreamDep,
)
from app.api.responses import (
    ZIP_RESPONSE_DOC,
    ZipStreamingResponse,
)
from app.api.selection import PresetsDep, planned
from app.api.upstream_errors import checked_order_id, fetch_order
from app.archive.http_rules import Conditions
from app.archive.naming import content_disposition
from app.archive.plan import BatchPlan, NothingToDeliver
from app.archive.validators import VERSION_PATTERN, archive_version
from app.core.errors import NotFound, Unprocessable, error_responses
from app.services.overview import archive_name
from app.web.disconnect import CLIENT_CLOSED_REQUEST, until_disconnected
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
    presets: PresetsDep,
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
    plan = planned(order, options, presets)
    current = archive_version(plan)
    location = pinned_url(request, current, signer=signer, link=link)
    if version is not None and version != current:
        raise version_gone(location)
    if len(plan.images) > settings.max_images_per_order:
        raise Unprocessable(
            f"This archive would hold {len(plan.images)} images; the limit per archive is "
            f"{settings.max_images_per_order}. Use an async job or select fewer images."
        )
    answer = downloads.answer(
        plan,
        owner=credential.owner,
        api_key=credential.api_key,
        conditions=Conditions.from_headers(request.method, request.headers),
        stream=stream,
    )
    try:
        # Nothing is sent until the answer is decided (the first image, a resume's rest, a
        # whole stream=false build, a cached copy opened): a client that leaves meanwhile
        # stops that work.
        download = await until_disconnected(request, answer)
    except NothingToDeliver as exc:
        raise _nothing_to_deliver(exc) from None
    if download is None:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    return download_response(
        download, headers={**archive_headers(plan), "Content-Location": location}
    )


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
