"""The download options as query parameters: what /docs shows, and what a request gets.

The options are declared once (`DownloadQuery`); every operation that takes them shows the same
parameters with the same bounds, and a request is read the way it always was: unknown query
parameters are ignored, out-of-bound values are 422s in the one error shape.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.api.deps import OptionsDep
from app.main import create_app
from app.upstream.options import DownloadOptions
from app.web.handlers import install_error_handlers
from tests.support import settings_of

SPEC: dict[str, Any] = create_app(settings_of(data_dir=Path("var/unused"))).openapi()

# name -> (JSON schema of the non-null branch, description): what /docs showed before the
# options became one model, written out here so that a change to the model shows up.
EXPECTED: dict[str, tuple[dict[str, Any], str]] = {
    "format": (
        {"type": "string", "enum": ["jpeg", "png", "webp", "avif", "jxl"]},
        "Image format requested from Autoenhance",
    ),
    "quality": ({"type": "integer", "minimum": 1, "maximum": 90}, "Encoding quality"),
    "preview": (
        {"type": "boolean"},
        "Free preview quality (default). false = full quality; costs credits",
    ),
    "watermark": ({"type": "boolean"}, "Apply the watermark"),
    "max_width": ({"type": "integer", "minimum": 1, "maximum": 20_000}, "Max width, px"),
    "scale": ({"type": "number", "exclusiveMinimum": 0, "maximum": 1}, "Scale factor 0-1"),
    "dev_mode": (
        {"type": "boolean"},
        "Send x-dev-mode: true (try the flow without credits)",
    ),
    "images": ({"type": "string", "maxLength": 500 * 101}, ""),
}
OPERATIONS = [
    ("get", "/orders/{order_id}/images"),
    ("head", "/orders/{order_id}/images"),
    ("get", "/orders/{order_id}"),
    ("post", "/orders/{order_id}/jobs"),
    ("post", "/orders/{order_id}/download-link"),
]
KEYWORDS = ("type", "enum", "minimum", "maximum", "exclusiveMinimum", "maxLength")


def _value_schema(schema: dict[str, Any]) -> dict[str, Any]:
    branches = [b for b in schema.get("anyOf", [schema]) if b.get("type") != "null"]
    assert len(branches) == 1, schema
    return {k: v for k, v in branches[0].items() if k in KEYWORDS}


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_every_operation_shows_the_options_with_their_bounds(method: str, path: str) -> None:
    parameters = {
        p["name"]: p for p in SPEC["paths"][path][method]["parameters"] if p["in"] == "query"
    }
    for name, (schema, description) in EXPECTED.items():
        assert name in parameters, f"{method.upper()} {path} lacks ?{name}="
        shown = parameters[name]
        assert shown["required"] is False
        assert _value_schema(shown["schema"]) == schema, name
        if description:
            assert shown["description"] == description
        else:
            assert shown["description"].startswith("Comma-separated image ids")


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/options")
    async def options(options: OptionsDep) -> dict[str, Any]:
        return options.model_dump(mode="json")

    return app


async def _get(query: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get("/options?" + query)


async def test_options_are_read_from_the_query_and_unknown_parameters_ignored() -> None:
    response = await _get(
        "format=png&quality=90&preview=false&watermark=true&max_width=20000&scale=0.5"
        "&dev_mode=1&images=b,a,b&stream=false&unknown=x&api_key=secret"
    )
    assert response.status_code == 200
    assert DownloadOptions.model_validate(response.json()) == DownloadOptions(
        format="png",
        quality=90,
        preview=False,
        watermark=True,
        max_width=20_000,
        scale=0.5,
        dev_mode=True,
        images=("b", "a"),
    )


async def test_no_query_means_the_defaults() -> None:
    response = await _get("")
    assert response.status_code == 200
    assert DownloadOptions.model_validate(response.json()) == DownloadOptions()


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("quality=0", "quality"),
        ("quality=91", "quality"),
        ("max_width=20001", "max_width"),
        ("scale=0", "scale"),
        ("scale=1.5", "scale"),
        ("format=gif", "format"),
        ("preview=perhaps", "preview"),
    ],
)
async def test_an_out_of_bound_option_is_a_422_naming_it(query: str, field: str) -> None:
    response = await _get(query)
    assert response.status_code == 422
    body = response.json()
    assert set(body) >= {"error", "detail"}  # request_id is added by the middleware
    assert [item["loc"] for item in body["detail"]] == [["query", field]]


async def test_a_malformed_selection_is_a_422_of_its_own() -> None:
    response = await _get("images=,,")
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_selection"
