"""Schema fuzzing: schemathesis drives every operation of the service's own OpenAPI document
against a real server in sandbox mode. No answer may be a 5xx, and every answer must match
what the document declares (status code, content type, body schema, headers)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.core.config import Settings
from app.main import create_app
from tests.support import UvicornThread, settings_of

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


def service_settings(data_dir: Path) -> Settings:
    return settings_of(
        autoenhance_api_key=None,  # sandbox mode: the embedded emulator answers
        data_dir=data_dir,
        sandbox_processing_delay=0.0,
        rate_limit_downloads="100000/minute",
        rate_limit_create_orders="100000/minute",
    )


# The document is read from an app that is built but not started: no I/O at collection.
SPEC: dict[str, Any] = create_app(service_settings(Path("var/unused"))).openapi()
SCHEMA = schemathesis.openapi.from_dict(SPEC)


def _operations() -> dict[str, Any]:
    """Every operation of the schema by label; one schemathesis cannot read fails loudly."""
    operations: dict[str, Any] = {}
    for result in SCHEMA.get_all_operations():
        assert isinstance(result, Ok), result
        operations[result.ok().label] = result.ok()
    return operations


OPERATIONS = _operations()


@pytest.fixture(scope="module")
def live_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UvicornThread]:
    with UvicornThread(create_app(service_settings(tmp_path_factory.mktemp("fuzz")))) as server:
        yield server


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_operation_keeps_its_contract(label: str, live_service: UvicornThread) -> None:
    operation = OPERATIONS[label]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=12,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=live_service.url, checks=CHECKS, timeout=30)

    run()
