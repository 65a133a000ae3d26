"""/docs helps an integrator try the API: the demo order prefilled, error shapes shown."""

from __future__ import annotations

from typing import Any

import httpx

from app.sandbox import DEMO_ORDER_ID
from tests.ui.conftest import ServiceFactory


def _order_id_parameters(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        parameter
        for operations in schema["paths"].values()
        for operation in operations.values()
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "path" and parameter["name"] == "order_id"
    ]


def test_sandbox_mode_prefills_the_demo_order_in_docs(sandbox_service: ServiceFactory) -> None:
    with sandbox_service() as server:
        schema = httpx.get(f"{server.url}/openapi.json", timeout=30).json()
        again = httpx.get(f"{server.url}/openapi.json", timeout=30).json()
    parameters = _order_id_parameters(schema)
    assert len(parameters) >= 8
    assert {parameter.get("example") for parameter in parameters} == {DEMO_ORDER_ID}
    assert again == schema


def test_a_live_service_prefills_no_order(sandbox_service: ServiceFactory) -> None:
    live = {"autoenhance_api_key": "live-key-0123456789"}
    with sandbox_service(**live) as server:
        schema = httpx.get(f"{server.url}/openapi.json", timeout=30).json()
    assert all("example" not in parameter for parameter in _order_id_parameters(schema))


def test_every_declared_error_has_an_example_of_its_detail_shape(
    sandbox_service: ServiceFactory,
) -> None:
    with sandbox_service() as server:
        schema = httpx.get(f"{server.url}/openapi.json", timeout=30).json()
    shapes: set[str] = set()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {}).get("application/json", {})
                if "error" not in content.get("schema", {}).get("properties", {}):
                    continue  # not an error answer (a health report, say)
                examples = content.get("examples", {})
                assert examples, f"{method.upper()} {path} {status} has no example"
                for example in examples.values():
                    value = example["value"]
                    assert set(value) == {"error", "detail", "request_id"}
                    shapes.add(type(value["detail"]).__name__)
    # The two shapes of detail, and the list of a validation error, are all shown.
    assert shapes == {"str", "dict", "list"}
    error = schema["paths"]["/orders/{order_id}"]["get"]["responses"]["400"]
    detail = error["content"]["application/json"]["schema"]["properties"]["detail"]
    assert "validation_error" in detail["description"]
    # FastAPI's own 422 shape, which this service never answers, is documented nowhere.
    assert "HTTPValidationError" not in str(schema)


def test_the_examples_match_real_answers(sandbox_service: ServiceFactory) -> None:
    with sandbox_service() as server:
        sentence = httpx.get(f"{server.url}/orders/not-an-id", timeout=30)
        fields = httpx.get(f"{server.url}/orders/{DEMO_ORDER_ID}?quality=500", timeout=30)
    assert isinstance(sentence.json()["detail"], str)
    assert sentence.json()["error"] == "invalid_order_id"
    assert isinstance(fields.json()["detail"], list)
    assert set(fields.json()["detail"][0]) == {"loc", "msg", "type"}
