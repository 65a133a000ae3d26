"""`GET|HEAD /d/{token}/archive`: a delivery's photos as one ZIP, and the counting of what
was served of it.

The archive comes from the same engine as every archive (`Downloads.answer`: streamed,
deterministic, resumable, cached, version-pinned), but never as a redirect to the object
store: its bytes must pass here to be counted (`app.deliveries.proof`). A GET is admitted
first (a whole download counts against `max_downloads`, a resume never does); a HEAD gets the
headers the same GET would get, or the refusal it would get, and counts as nothing: no
download, no served byte, not even the opening of the link.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response, StreamingResponse

from app.api.archives import download_response, pinned_url, version_gone
from app.api.delivery_access import PinCookieDep, live_delivery
from app.api.deps import DownloadsDep, SettingsDep, UpstreamDep
from app.api.responses import ZIP_RESPONSE_DOC, ZipStreamingResponse, close_body
from app.api.schemas.deliveries import DeliveriesDep
from app.api.selection import PresetsDep, SelectionDep, planned
from app.api.upstream_errors import fetch_order
from app.archive.http_rules import Conditions
from app.archive.naming import archive_filename, content_disposition
from app.archive.outcomes import Download
from app.archive.plan import NothingToDeliver
from app.archive.validators import VERSION_PATTERN, archive_version
from app.core.errors import AppError, Conflict, Forbidden, Unprocessable, error_responses
from app.deliveries.counting import admission, verdict
from app.deliveries.models import DeliveryRecord
from app.deliveries.proof import ServedBody
from app.deliveries.service import DeliveryService
from app.deliveries.variants import UnknownVariant, variant_options
from app.web.disconnect import CLIENT_CLOSED_REQUEST, until_disconnected
from app.web.ratelimit import rate_limit

router = APIRouter(tags=["delivery link"])

_CONTENT_RANGE = re.compile(r"bytes ([0-9]+)-([0-9]+)/([0-9]+)")


def _served_from(response: Response) -> tuple[int | None, int | None]:
    """The first byte and the archive's size an answer states (None: whole / unknown)."""
    if response.status_code == 206:
        match = _CONTENT_RANGE.fullmatch(response.headers.get("content-range", ""))
        if match is None:
            return None, None
        return int(match.group(1)), int(match.group(3))
    length = response.headers.get("content-length")
    return None, int(length) if length is not None and length.isdigit() else None


@router.get(
    "/d/{token}/archive",
    response_class=ZipStreamingResponse,
    responses={
        **ZIP_RESPONSE_DOC,
        **error_responses(400, 401, 403, 404, 410, 416, 422, 429, 502, 503),
    },
    dependencies=[Depends(rate_limit("downloads"))],
    summary="Download the delivery's photos as one ZIP (resumable)",
)
async def delivery_archive(
    token: str,
    request: Request,
    deliveries: DeliveriesDep,
    upstream: UpstreamDep,
    downloads: DownloadsDep,
    settings: SettingsDep,
    pin_cookie: PinCookieDep,
    presets: PresetsDep,
    images: SelectionDep = None,
    variant: Annotated[
        str | None, Query(max_length=64, description="One of the delivery's variants")
    ] = None,
    version: Annotated[
        str | None,
        Query(
            pattern=VERSION_PATTERN,
            description="Pin the URL to one version of the archive (its Content-Location "
            "carries it): once the order changed, 410 instead of bytes of another version",
        ),
    ] = None,
) -> Response:
    """The delivery's archive; `images` may narrow it to some of its photos. A `Range` resume
    of a download already started works past `max_downloads`."""
    head = request.method == "HEAD"
    record = await live_delivery(token, deliveries, opening=not head)
    deliveries.require_pin(record, pin_cookie)
    if record.locked:
        raise Forbidden(
            "The photographer has not released the photos yet; previews only for now.",
            code="delivery_locked",
        )
    variant = variant or record.variants[0]
    if variant not in record.variants:
        raise Forbidden(f"This delivery does not offer {variant!r}.", code="variant_not_delivered")
    if images is not None and record.images is not None and set(images) - set(record.images):
        raise Forbidden(
            "Some of those photos are not in this delivery.", code="images_not_delivered"
        )
    chosen = images or (tuple(record.images) if record.images is not None else None)
    credential = deliveries.credential(record)
    order = await fetch_order(upstream, record.order_id, credential)
    try:
        options = variant_options(variant, chosen, presets)
    except UnknownVariant:
        raise Forbidden(
            f"This service no longer offers {variant!r}.", code="variant_not_delivered"
        ) from None
    plan = planned(order, options, presets)
    if len(plan.images) > settings.max_images_per_order:
        raise Unprocessable("This delivery holds too many photos for one archive.")
    current = archive_version(plan)
    location = pinned_url(request, current)
    if version is not None and version != current:
        raise version_gone(location)
    # One range at most is honoured (app.archive.http_rules), so what was served stays countable.
    answer = downloads.answer(
        plan,
        owner=credential.owner,
        api_key=credential.api_key,
        conditions=Conditions.from_headers(request.method, request.headers),
        redirect=False,  # the bytes must pass here to be counted
    )
    try:
        download = await until_disconnected(request, answer)
    except NothingToDeliver:
        raise Conflict(
            "None of these photos can be downloaded yet.", code="nothing_ready"
        ) from None
    if download is None:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    filename = archive_filename(order.name, order.order_id)
    response = download_response(
        download,
        headers={
            "Content-Disposition": content_disposition(filename),
            "X-Total-Images": str(len(plan.images)),
            "X-Ready-Images": str(len(plan.deliverable)),
            "Content-Location": location,
        },
    )
    if head and response.status_code != 304:
        # The refusal a GET would get, but nothing is counted or recorded.
        start, _ = _served_from(response)
        admission(record, verdict(record, etag=response.headers.get("etag", ""), start=start))
        return response
    if not isinstance(response, StreamingResponse):
        return response  # 304: nothing served
    return await _counted(response, download, record, deliveries, variant)


router.add_api_route(
    "/d/{token}/archive",
    delivery_archive,
    methods=["HEAD"],
    response_class=ZipStreamingResponse,
    responses={
        200: {"description": "The headers the same GET would get; nothing is counted"},
        **error_responses(400, 401, 403, 404, 410, 416, 422, 429, 502, 503),
    },
    dependencies=[Depends(rate_limit("lookups"))],
    summary="Look at the delivery archive's headers (its size, once known) without counting",
)


async def _counted(
    response: StreamingResponse,
    download: Download,
    record: DeliveryRecord,
    deliveries: DeliveryService,
    variant: str,
) -> Response:
    """`response` admitted (counted against `max_downloads`, or a resume) and its body
    wrapped so that the bytes written are recorded; refused answers release their body."""
    etag = response.headers.get("etag", "")
    start, total = _served_from(response)
    try:
        await deliveries.admit(record, etag=etag, variant=variant, start=start)
    except AppError:
        await close_body(response.body_iterator)
        await download.aclose()
        raise

    async def on_served(first: int, end: int, size: int | None) -> None:
        await deliveries.served(
            record.delivery_id, etag=etag, variant=variant, start=first, end=end, total=size
        )

    response.body_iterator = ServedBody(
        response.body_iterator, start=start or 0, total=total, on_served=on_served
    )
    return response
