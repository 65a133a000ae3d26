"""Logging: one format for the service and uvicorn, a request id on every line, no secrets.

`configure_logging(level=, fmt=)` installs one handler on the root logger (replacing the one
it installed before, leaving any other handler alone) and routes uvicorn's loggers through
it. uvicorn's own access log is switched off: it prints the raw path with its query string,
which may carry a signed link's `sig`; `app.web.middleware` writes one line per request
with the route template instead.

The request id lives in a context variable set by the middleware; a log record factory
copies it onto every record created while a request is handled, so it appears on every
line, including uvicorn's.

A log event (a request served, an order created, an archive streamed) is written once with
`log_event`: its fields fill the message's template and travel as `extra=` fields, so the text
line and the JSON line cannot disagree.

The JSON formatter is written here rather than taken from a library because it is a few
lines over the standard `logging` and `json` modules, and it must pass every line through
`redact`, which masks credentials a message might carry by accident (`sig=...`, `token=...`,
`Bearer ...`) as a last line of defence.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

_HANDLER_MARK = "_autoenhance_handler"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"

_SECRET_ASSIGNMENT = re.compile(
    r"(?i)\b(sig|signature|token|api[_-]?key|x-api-key|x-autoenhance-key|authorization|"
    r"cookie|set-cookie|password|secret|credential|dsn)(\"?'?\s*[=:]\s*\"?'?)([^\s&\"',;]+)"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
_SENSITIVE_EXTRA = re.compile(r"(?i)(key|token|secret|password|cookie|authorization|sig)")

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "request_id", "color_message", "taskName"}
)


def redact(text: str) -> str:
    """Mask credential values in `text` (`sig=abc` becomes `sig=[redacted]`)."""
    text = _BEARER.sub(r"\1 [redacted]", text)
    return _SECRET_ASSIGNMENT.sub(r"\1\2[redacted]", text)


def record_extras(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a caller attached with `extra=`, with credential-like keys masked."""
    extras: dict[str, Any] = {}
    for key, value in record.__dict__.items():
        if key in _RECORD_ATTRIBUTES or key.startswith("_"):
            continue
        extras[key] = "[redacted]" if _SENSITIVE_EXTRA.search(key) else value
    return extras


def log_event(
    logger: logging.Logger,
    event: str,
    template: str,
    /,
    *,
    level: int = logging.INFO,
    **fields: Any,
) -> None:
    """Log `event`: the message is `template.format(**fields)`, and the JSON line carries
    `event` and every field as its own key.

    The fields are formatted only when `logger` would write the line. A field named like a
    `LogRecord` attribute (`name`, `message`, ...) is a programming error: `logging` refuses it
    with a KeyError.
    """
    if not logger.isEnabledFor(level):
        return
    # The formatted message is passed without arguments, so a `%` in a field stays as it is.
    logger.log(level, template.format(**fields), extra={"event": event, **fields})


class TextFormatter(logging.Formatter):
    """Plain text lines with the request id, credentials masked."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "request_id"):
            record.request_id = "-"
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id and the extras."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "request_id": getattr(record, "request_id", None),
        }
        for key, value in record_extras(record).items():
            payload.setdefault(key, value)
        if record.exc_info:
            payload["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(payload, default=str, ensure_ascii=False)


_base_factory = logging.getLogRecordFactory()


def _record_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _base_factory(*args, **kwargs)
    record.request_id = request_id_var.get() or "-"
    return record


def configure_logging(
    *, level: str = "INFO", fmt: Literal["text", "json"] = "text", stream: Any = None
) -> logging.Handler:
    """Install the service's log handler on the root logger and return it.

    Idempotent: a second call replaces the handler the first one installed. Handlers others
    installed (a test's log capture, for instance) are kept.
    """
    if logging.getLogRecordFactory() is not _record_factory:
        logging.setLogRecordFactory(_record_factory)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    # httpx logs every upstream URL at INFO: one line per image, and asset URLs may carry
    # presigned query strings. Kept for DEBUG.
    logging.getLogger("httpx").setLevel("DEBUG" if level == "DEBUG" else "WARNING")
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
    access.disabled = True
    return handler
