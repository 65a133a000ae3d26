"""Autoenhance batch downloader: one order id in, one streamed ZIP of its enhanced images out.

`uvicorn app:app` serves the application. The module-level `app` is built lazily, on first
access, so that importing a sub-package (`app.sandbox`, `app.archive.zipformat`) has no side
effects and tests build their own instances with `create_app(settings)`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    app: FastAPI

__all__ = ["app", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "app":
        from app.main import create_app

        instance = create_app()
        globals()["app"] = instance
        return instance
    if name == "create_app":
        from app.main import create_app

        return create_app
    raise AttributeError(f"module 'app' has no attribute {name!r}")
