"""What this service calls itself: its version, and the `User-Agent` of every request it makes
(to the Autoenhance API, to callback receivers, to Sentry's API and to the assistant), so that
whoever receives one can tell where it came from."""

from __future__ import annotations

VERSION = "1.0.0"
USER_AGENT = f"autoenhance-batch-downloader/{VERSION} (+https://github.com/autoenhance)"
