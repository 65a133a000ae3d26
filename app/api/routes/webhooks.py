"""`POST /webhooks/autoenhance`: Autoenhance's webhook starts the jobs waiting for an order."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict

from app.api.deps import JobsDep, SettingsDep
from app.core.errors import Forbidden, Unauthorized, error_responses
from app.core.security import same_secret

router = APIRouter(tags=["jobs"])


class WebhookEvent(BaseModel):
    """An Autoenhance webhook event (unknown fields are ignored)."""

    model_config = ConfigDict(extra="ignore")

    event: str
    image_id: str | None = None
    error: bool | None = None
    order_id: str | None = None
    order_is_processing: bool | None = None


def _webhook_auth(request: Request, settings: SettingsDep) -> None:
    if settings.webhook_auth_token is None:
        raise Forbidden(
            "Webhooks are disabled: WEBHOOK_AUTH_TOKEN is not set.", code="webhook_disabled"
        )
    given = request.headers.get("authorization", "").strip()
    if given[:7].lower() == "bearer ":
        given = given[7:].strip()
    if not same_secret(given, settings.webhook_auth_token.get_secret_value()):
        raise Unauthorized("Wrong or missing webhook authentication value.")


@router.post(
    "/webhooks/autoenhance",
    dependencies=[Depends(_webhook_auth)],
    responses=error_responses(401, 403, 422),
    summary="Autoenhance webhook: starts jobs waiting for an order",
)
async def autoenhance_webhook(event: WebhookEvent, jobs: JobsDep) -> dict[str, Any]:
    """`image_processed` with `order_is_processing: false` starts that order's waiting jobs."""
    woken = 0
    if event.event == "image_processed" and event.order_id and event.order_is_processing is False:
        woken = await jobs.wake_order(event.order_id)
    return {"received": event.event, "jobs_started": woken}
