"""One run of the command: check everything first, then create, wait for and download an order.

Everything that can be checked before any work is checked first: the files, the folder the ZIP
goes to, and that the URL is the service (its `GET /health`). After a failure or an interrupt
the command says what running it again will do.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rich.console import Console
from rich.progress import Progress

from app.cli.direct import Direct, open_direct
from app.cli.download import download, rerun_note
from app.cli.progress import OrderSource, progress_bar, wait_processed
from app.cli.service import Service, service_client
from app.cli.usage import (
    EXIT_NETWORK,
    EXIT_OK,
    EXIT_TIMEOUT,
    CliError,
    check_destination,
    check_files,
    parse_args,
)


@dataclass
class RunState:
    """What a run has done so far, to say honestly what running again will do."""

    order_id: str | None = None
    created: bool = False  # the order was created by this run (running again makes another)


def again(args: argparse.Namespace, state: RunState) -> str:
    """What to run next after a failure or an interrupt, and what that will do."""
    if state.order_id is None:
        return "no order was created; run the same command again"
    command = (
        f"run again with --order-id {state.order_id} instead of the photos (the order exists; "
        "the same command would create another)"
        if state.created
        else "run the same command again"
    )
    if not args.download:
        return command
    return command + rerun_note(args.download, state.order_id)


async def run(
    args: argparse.Namespace, env: Mapping[str, str], console: Console, state: RunState
) -> int:
    """Check, then do what `args` ask; returns EXIT_OK and prints the order id on stdout.

    Raises:
        CliError: whatever went wrong, with its exit code.
    """
    if args.files:
        check_files(args.files)
    if args.download:
        check_destination(args.download)
    with progress_bar(console, quiet=args.quiet) as progress:
        if args.service_url:
            order_id = await _through_service(args, env, progress, state)
        else:
            async with open_direct(env) as direct:
                order_id = await _order(direct, args, progress, state)
    print(order_id)
    return EXIT_OK


async def _through_service(
    args: argparse.Namespace, env: Mapping[str, str], progress: Progress, state: RunState
) -> str:
    async with service_client(args.service_url, env) as http:
        service = Service(http)
        await service.check(args.service_url)
        order_id = await _order(service, args, progress, state)
        if args.download:
            size = await download(
                http,
                order_id,
                args.download,
                retries=args.retries,
                progress=progress,
                waited=args.wait,
            )
            progress.console.print(f"saved {args.download} ({size} bytes)")
    return order_id


async def _order(
    source: Service | Direct, args: argparse.Namespace, progress: Progress, state: RunState
) -> str:
    """The order of this run: the one given, or one created from the photos; waited for."""
    state.order_id = args.order_id
    if state.order_id is None:
        state.order_id = await source.create(args.files, name=args.name, progress=progress)
        state.created = True
    order_id = state.order_id
    progress.console.print(f"order {order_id}")
    if args.wait:
        await _wait(source, order_id, args, progress)
    return order_id


async def _wait(
    source: OrderSource, order_id: str, args: argparse.Namespace, progress: Progress
) -> None:
    status = await wait_processed(
        source, order_id, timeout=args.timeout, interval=args.poll_interval, progress=progress
    )
    message = f"processed: {status.done - status.failed} of {status.total} images"
    if status.failed:
        message += f" ({status.failed} failed upstream)"
    progress.console.print(message)


def main(argv: Sequence[str] | None = None, *, env: Mapping[str, str] | None = None) -> int:
    """Run the command line; returns the exit code (see `--help`)."""
    args = parse_args(argv)
    console = Console(stderr=True)
    state = RunState()
    try:
        return asyncio.run(run(args, os.environ if env is None else env, console, state))
    except KeyboardInterrupt:
        console.print(f"[red]interrupted:[/red] {again(args, state)}", highlight=False)
        return EXIT_NETWORK
    except CliError as exc:
        message = exc.message
        if exc.code in (EXIT_NETWORK, EXIT_TIMEOUT):
            message += f" — {again(args, state)}"
        console.print(f"[red]error:[/red] {message}", highlight=False)
        return exc.code
