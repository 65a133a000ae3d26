"""Offline emulator of the Autoenhance.ai v3 API, shipped with the product.

Use it with no key and no network: `python -m app.sandbox --port 8001`, or in-process with
`httpx.AsyncClient(transport=httpx.ASGITransport(app=create_sandbox_app()),
base_url="http://sandbox.internal/v3")`. A demo order (`DEMO_ORDER_ID`) is ready at start.

This package imports nothing from the rest of the service.
"""

from app.sandbox.app import create_sandbox_app
from app.sandbox.config import SandboxConfig
from app.sandbox.store import DEMO_ORDER_ID

__all__ = ["DEMO_ORDER_ID", "SandboxConfig", "create_sandbox_app"]
