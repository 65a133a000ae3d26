"""`log_event`: one call writes the message and the JSON fields from the same values."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from app.core.logging import configure_logging, log_event


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = configure_logging(level="INFO", fmt="json", stream=stream)
    try:
        yield stream
    finally:
        logging.getLogger().removeHandler(handler)


def last_line(stream: io.StringIO) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(stream.getvalue().splitlines()[-1])
    return parsed


def test_the_message_and_the_fields_come_from_the_same_values(json_lines: io.StringIO) -> None:
    log_event(
        logging.getLogger("app.test"),
        "request",
        "{method} {route} {status} {duration_ms:.1f}ms",
        method="GET",
        route="/orders/{order_id}/images",
        status=200,
        duration_ms=12.25,
    )
    line = last_line(json_lines)
    assert line["message"] == "GET /orders/{order_id}/images 200 12.2ms"
    assert line["event"] == "request"
    assert line["level"] == "INFO"
    assert (line["method"], line["route"], line["status"], line["duration_ms"]) == (
        "GET",
        "/orders/{order_id}/images",
        200,
        12.25,
    )


def test_a_percent_or_brace_in_a_value_is_written_as_it_is(json_lines: io.StringIO) -> None:
    log_event(logging.getLogger("app.test"), "order_created", "order {order}", order="50%s {x}")
    assert last_line(json_lines)["message"] == "order 50%s {x}"


def test_credentials_stay_masked(json_lines: io.StringIO) -> None:
    log_event(logging.getLogger("app.test"), "call", "call {url}", url="/x?sig=secret", token="t")
    line = last_line(json_lines)
    assert "secret" not in line["message"]
    assert line["token"] == "[redacted]"


class Unformattable:
    def __format__(self, spec: str) -> str:
        raise AssertionError("formatted although the line is not written")


def test_nothing_is_formatted_below_the_loggers_level(json_lines: io.StringIO) -> None:
    log_event(
        logging.getLogger("app.test"),
        "noise",
        "{value}",
        level=logging.DEBUG,
        value=Unformattable(),
    )
    assert json_lines.getvalue() == ""
