"""`python -m app.sandbox`: run the emulator under uvicorn.

Flags override `SANDBOX_*` environment variables, which override the defaults.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

import uvicorn
from pydantic import TypeAdapter, ValidationError

from app.sandbox.app import create_sandbox_app
from app.sandbox.config import SandboxConfig
from app.sandbox.faults import Fault


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r}")


def _fault(text: str) -> Any:
    try:
        return TypeAdapter(Fault).validate_python(json.loads(text))
    except (ValueError, ValidationError) as exc:
        raise argparse.ArgumentTypeError(f"invalid fault {text!r}: {exc}") from exc


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m app.sandbox", description="Run the Autoenhance API sandbox."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument(
        "--fd",
        type=int,
        help="serve on this inherited, already bound socket instead of --host/--port "
        "(how tests start it without racing for a port)",
    )
    knobs = parser.add_argument_group("sandbox knobs (default: SANDBOX_* env, then built-in)")
    knobs.add_argument("--processing-delay", type=float, metavar="SECONDS")
    knobs.add_argument("--redirect-downloads", type=_bool, metavar="BOOL")
    knobs.add_argument("--not-ready-status", type=int, metavar="STATUS")
    knobs.add_argument("--credits", type=int)
    knobs.add_argument("--api-keys", metavar="KEY,KEY")
    knobs.add_argument("--webhook-url")
    knobs.add_argument("--webhook-auth")
    knobs.add_argument("--latency-ms", type=int)
    knobs.add_argument("--bandwidth-bytes-per-s", type=int)
    knobs.add_argument("--seed-demo", type=_bool, metavar="BOOL")
    knobs.add_argument("--sample-dir")
    knobs.add_argument("--enforce-upload-content-type", type=_bool, metavar="BOOL")
    knobs.add_argument(
        "--fault",
        dest="faults",
        type=_fault,
        action="append",
        metavar="JSON",
        help='fault active at start, e.g. \'{"kind": "status", "status": 503}\' (repeatable)',
    )
    knobs.add_argument("--log-level")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    overrides = {
        name: value
        for name, value in vars(args).items()
        if name not in {"host", "port", "fd"} and value is not None
    }
    config = SandboxConfig(**overrides)
    uvicorn.run(
        create_sandbox_app(config),
        host=args.host,
        port=args.port,
        fd=args.fd,
        log_level=config.log_level,
    )


if __name__ == "__main__":
    main()
