"""The flags, the exit codes, and the checks made before any work.

Keys are read from the environment only, never from the command line (where `ps` shows them).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

import httpx

from app.core.config import DEFAULT_API_BASE
from app.services.ordering import uploads_from_paths

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_BAD_FILE = 3
EXIT_NETWORK = 4
EXIT_NOT_FOUND = 5
EXIT_TIMEOUT = 6
# What shells report for a command stopped with Ctrl-C (128 + SIGINT).
EXIT_INTERRUPTED = 130

EPILOG = f"""\
environment:
  AUTOENHANCE_API_KEY    your Autoenhance key (required unless --service-url is given)
  AUTOENHANCE_API_BASE   API base URL (default {DEFAULT_API_BASE}; the sandbox:
                         http://127.0.0.1:8001/v3)
  SERVICE_API_KEY        sent as X-API-Key to the service, when it asks for one
  ADMIN_TOKEN            sent as a Bearer token to the service (creating orders on its key)

exit codes:
  {EXIT_OK}  done
  {EXIT_FAILED}  the API or service refused or failed (e.g. no image could be uploaded)
  {EXIT_USAGE}  usage error (also: --service-url is not the service), or a missing or refused key
  {EXIT_BAD_FILE}  a file cannot be read or is not a supported image
  {EXIT_NETWORK}  network failure (after retries)
  {EXIT_NOT_FOUND}  order not found
  {EXIT_TIMEOUT}  timed out waiting for processing
  {EXIT_INTERRUPTED}  stopped with Ctrl-C

examples:
  setup_test_order.py ~/shoots/12-harbour-view --wait --download . \\
      --service-url http://127.0.0.1:8000 --full-quality
  setup_test_order.py --order-id <id> --wait --download . --service-url http://127.0.0.1:8000
"""


class CliError(Exception):
    """A failure with the exit code it ends the program with (and the service's error code)."""

    def __init__(self, message: str, code: int, *, error: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.error = error


def http_url(value: str) -> str:
    """`value` when it is an http(s) URL with a host and a valid port, else why not.

    Raises:
        ValueError: saying what is wrong with the URL.
    """
    try:
        url = httpx.URL(value)
        port = url.port
    except httpx.InvalidURL as exc:
        raise ValueError(f"{value!r} is not a URL ({exc})") from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"{value!r} is not an http:// or https:// URL with a host")
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"{value!r} has no valid port")
    return value


def _service_url(value: str) -> str:
    try:
        return http_url(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The parsed command line.

    Raises:
        SystemExit: with EXIT_USAGE (argparse's own code) on a usage error, 0 after `--help`.
    """
    parser = argparse.ArgumentParser(
        prog="setup_test_order.py",
        description="Create an Autoenhance order from photos, wait until it is processed and "
        "download every enhanced image as one ZIP (through the batch downloader service).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "files",
        nargs="*",
        type=Path,
        metavar="PHOTO_OR_FOLDER",
        help="photos to upload, or a folder: its photos in name order (other files left out)",
    )
    parser.add_argument(
        "--name", help="name of the new order (default: the folder's name, for one folder)"
    )
    parser.add_argument("--order-id", help="use this existing order instead of creating one")
    parser.add_argument("--wait", action="store_true", help="wait until processing finishes")
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds --wait waits (default 600)"
    )
    parser.add_argument(
        "--poll-interval", type=float, default=2.0, help="seconds between checks (default 2)"
    )
    parser.add_argument(
        "--download",
        type=Path,
        metavar="OUT",
        help="save the ZIP here: a file, or a folder (named as the service names it)",
    )
    parser.add_argument(
        "--full-quality",
        action="store_true",
        help="the photos at their own size (1 Autoenhance credit per photo; free in sandbox "
        "mode); without it the ZIP holds free previews, about 1024 px wide",
    )
    parser.add_argument(
        "--service-url",
        type=_service_url,
        help="the batch downloader service, e.g. http://127.0.0.1:8000",
    )
    parser.add_argument(
        "--retries", type=int, default=3, help="download retries on a broken transfer (3)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if not args.files and not args.order_id:
        parser.error("give at least one photo, or --order-id")
    if args.download and not args.service_url:
        parser.error("--download fetches the ZIP through the service: add --service-url")
    if args.timeout <= 0 or args.poll_interval <= 0 or args.retries < 0:
        parser.error("--timeout and --poll-interval must be positive, --retries not negative")
    return args


def check_destination(out: Path) -> bool:
    """Fail before any work when the ZIP could not be saved at `out` (a file, or a folder
    the ZIP is saved into); returns whether `out` is a folder.

    Raises:
        CliError: EXIT_USAGE, naming the folder or file that is wrong.
    """
    folder = out if out.is_dir() else out.parent
    if not folder.is_dir():
        raise CliError(f"cannot save to {out}: the folder {folder} does not exist", EXIT_USAGE)
    if not os.access(folder, os.W_OK):
        raise CliError(f"cannot save to {out}: the folder {folder} is not writable", EXIT_USAGE)
    return folder == out


def check_files(paths: Sequence[Path]) -> None:
    """Fail early, naming the file, on anything unreadable or not an image.

    Raises:
        CliError: EXIT_BAD_FILE.
    """
    try:
        uploads_from_paths(paths)
    except OSError as exc:
        raise CliError(f"cannot read {exc.filename}: {exc.strerror}", EXIT_BAD_FILE) from exc
    except ValueError as exc:
        raise CliError(str(exc), EXIT_BAD_FILE) from exc
