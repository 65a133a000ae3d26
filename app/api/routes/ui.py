"""The web pages (`/`, `/developers`), `/static`, signed download links, questions to the docs.

The Ask service (the docs index and, when `CHAT_API_URL` is set, the one HTTP client to the
assistant) is opened by the application's lifespan with everything else (`app.main`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, FastAPI, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from app.api.deps import CredentialDep, OptionsDep, SettingsDep, SignerDep, UpstreamDep
from app.api.schemas.links import DownloadLink
from app.api.selection import PresetsDep, checked_variants, planned
from app.api.upstream_errors import checked_order_id, fetch_order
from app.archive.validators import archive_version
from app.core.errors import Forbidden, error_responses
from app.services.ask import MAX_QUESTION_CHARS, AskService
from app.upstream.options import DownloadOptions
from app.web.ratelimit import rate_limit

STATIC_DIR = Path(__file__).resolve().parents[2] / "static"


router = APIRouter()
router.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


@router.get("/", include_in_schema=False)
async def index_page() -> FileResponse:
    """The web page (for the people who deliver photos)."""
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


@router.get("/developers", include_in_schema=False)
async def developers_page() -> FileResponse:
    """The page for developers and operators: API reference, status, administrator sign-in."""
    return FileResponse(STATIC_DIR / "developers.html", headers={"Cache-Control": "no-cache"})


def refine_openapi(app: FastAPI, *, demo_order_id: str | None) -> None:
    """Make /docs tell the truth and help an integrator try the API.

    FastAPI documents a 422 of its own shape (`HTTPValidationError`) on every route with
    parameters; this service answers validation errors in its one error shape, so that entry
    is replaced by the service's (with its examples). With `demo_order_id` (sandbox mode)
    every `order_id` path parameter is prefilled with it: "Try it out" answers at once.
    """
    build = app.openapi
    validation = error_responses(422)[422]

    def openapi() -> dict[str, Any]:
        schema = build()  # FastAPI builds it once and keeps it: these changes are made once
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.get("responses", {})
                if "HTTPValidationError" in str(responses.get("422", "")):
                    responses["422"] = validation
                for parameter in operation.get("parameters", []):
                    if demo_order_id and parameter.get("in") == "path":
                        if parameter.get("name") == "order_id":
                            parameter["example"] = demo_order_id
        components = schema.get("components", {}).get("schemas", {})
        if "HTTPValidationError" not in str(schema.get("paths")):
            components.pop("HTTPValidationError", None)
            components.pop("ValidationError", None)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


@router.post(
    "/orders/{order_id}/download-link",
    response_model=DownloadLink,
    responses=error_responses(400, 401, 403, 404, 422, 429, 502, 503),
    tags=["download"],
    dependencies=[Depends(rate_limit("links"))],
    summary="A short-lived signed link to the order's ZIP, for a browser's download manager",
)
async def create_download_link(
    order_id: str,
    options: OptionsDep,
    credential: CredentialDep,
    settings: SettingsDep,
    signer: SignerDep,
    upstream: UpstreamDep,
    presets: PresetsDep,
    body: Annotated[DownloadOptions | None, Body()] = None,
) -> DownloadLink:
    """Sign `GET /orders/{order_id}/images` with these options (JSON body, else the query).

    The link carries `expires` and an HMAC `sig` over path, query and expiry, and works without
    any key until it expires (`DOWNLOAD_LINK_TTL`). It spends the service's own key, so it is
    refused to callers who brought their own.
    """
    order_id = checked_order_id(order_id)
    if credential.is_own_key:
        raise Forbidden(
            "Signed links spend this service's own key, so they cannot be made for your own "
            "Autoenhance key. Download with your key in the X-Autoenhance-Key header instead.",
            code="own_key_not_linkable",
        )
    chosen = body or options
    checked_variants(chosen, presets)
    # A selection is checked against the order now, not when the link is first used; the link
    # names the version of the archive it was made for, so a browser resuming it can never
    # join two versions.
    plan = planned(await fetch_order(upstream, order_id, credential), chosen, presets)
    query = {**chosen.query(), "version": archive_version(plan)}
    link = signer.sign(f"/orders/{order_id}/images", query, ttl=settings.download_link_ttl)
    return DownloadLink.of(link)


class Question(BaseModel):
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)


class Source(BaseModel):
    title: str
    source: str = Field(description="The document, e.g. README.md or docs/faq.md")
    anchor: str
    score: float


class AskAnswer(BaseModel):
    answer: str = Field(description="Markdown")
    mode: Literal["docs", "assistant"]
    sources: list[Source]
    notice: str | None = None


@router.post(
    "/api/ask",
    response_model=AskAnswer,
    responses=error_responses(422, 429),
    tags=["page"],
    dependencies=[Depends(rate_limit("ask"))],
    summary="Answer a question about this service from its documentation",
)
async def ask(question: Question, request: Request) -> AskAnswer:
    """Searched in README and docs locally; forwarded to the assistant when one is configured."""
    service: AskService = request.state.ask
    answer = await service.answer(question.question)
    return AskAnswer(
        answer=answer.text,
        mode=answer.mode,
        sources=[
            Source(
                title=h.section.title,
                source=h.section.source,
                anchor=h.section.anchor,
                score=h.score,
            )
            for h in answer.sources
        ],
        notice=answer.notice,
    )
