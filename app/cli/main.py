"""One run of the command: check everything first, then create, wait for and download an order.

Everything that can be checked before any work is checked first: the photos (a folder given
stands for the photos in it, see `app.cli.photos`), the folder the ZIP goes to, and that the
URL is the service (its `GET /health`). After a failure or an interrupt the command says what
running it again will do — never something that would create a second order.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from app.cli.direct import Direct, open_direct
from app.cli.download import archive_path, download, download_target, rerun_note
from app.cli.photos import choose_photos
from app.cli.progress import OrderSource, progress_bar, wait_processed
from app.cli.service import Service, service_client
from app.cli.usage import (
    EXIT_INTERRUPTED,
    EXIT_NETWORK,
    EXIT_OK,
    EXIT_TIMEOUT,
    CliError,
    check_destination,
    check_files,
    parse_args,
)

NOTHING_TO_DELIVER = "nothing_to_deliver"


@dataclass
class RunState:
    """What a run has done so far, to say honestly what running again will do."""

    order_id: str | None = None
    created: bool = False  # the order was created by this run (running again makes another)
    saving_to: Path | None = None  # the ZIP's file, once known (--download may be a folder)


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
    if not args.download or state.saving_to is None:
        return command
    url = archive_path(state.order_id, full_quality=args.full_quality)
    return command + rerun_note(state.saving_to, url)


def not_ready_advice(args: argparse.Namespace, state: RunState) -> str:
    """What to do when `--download` came before the photos were processed (no `--wait`)."""
    if state.created:
        return (
            f"The order was just created and is still being processed: run again with "
            f"--order-id {state.order_id} --wait instead of the photos (the same command "
            "would create a second order)."
        )
    return "Add --wait to wait until the order is processed, then download."


async def run(
    args: argparse.Namespace, env: Mapping[str, str], console: Console, state: RunState
) -> int:
    """Check, then do what `args` ask; returns EXIT_OK and prints the order id on stdout.

    Raises:
        CliError: whatever went wrong, with its exit code.
    """
    if args.files:
        chosen = choose_photos(args.files)
        args.files = chosen.photos
        for folder in chosen.folders:
            console.print(f"photos of {folder}, in name order", highlight=False)
        for path in chosen.left_out:
            console.print(f"left out (not a photo): {path}", highlight=False)
        if args.name is None and len(chosen.folders) == 1 and len(args.files) > 0:
            args.name = chosen.folders[0].resolve().name
        check_files(args.files)
    into_folder = bool(args.download) and check_destination(args.download)
    with progress_bar(console, quiet=args.quiet) as progress:
        if args.service_url:
            order_id = await _through_service(args, env, progress, state, into_folder)
        else:
            async with open_direct(env) as direct:
                order_id = await _order(direct, args, progress, state)
    print(order_id)
    return EXIT_OK


async def _through_service(
    args: argparse.Namespace,
    env: Mapping[str, str],
    progress: Progress,
    state: RunState,
    into_folder: bool,
) -> str:
    async with service_client(args.service_url, env) as http:
        service = Service(http)
        mode = await service.check(args.service_url)
        if args.download:
            progress.console.print(quality_note(full_quality=args.full_quality, mode=mode))
        order_id = await _order(service, args, progress, state)
        if args.download:
            url = archive_path(order_id, full_quality=args.full_quality)
            try:
                state.saving_to = (
                    await download_target(http, url, args.download)
                    if into_folder
                    else args.download
                )
                size = await download(
                    http, url, state.saving_to, retries=args.retries, progress=progress
                )
            except CliError as exc:
                if exc.error == NOTHING_TO_DELIVER and not args.wait:
                    advice = not_ready_advice(args, state)
                    raise CliError(f"{exc.message} {advice}", exc.code, error=exc.error) from exc
                raise
            progress.console.print(f"saved {state.saving_to} ({size} bytes)")
    return order_id


def quality_note(*, full_quality: bool, mode: str) -> str:
    """What the download will hold, and what it costs, said before anything is spent."""
    if not full_quality:
        return (
            "downloading free previews (about 1024 px wide, the ZIP is named '(preview)'); "
            "add --full-quality for the photos at their own size"
        )
    if mode == "sandbox":
        return "downloading full quality (free here: the service is in sandbox mode)"
    return "downloading full quality: 1 Autoenhance credit per photo not bought before"


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
        return EXIT_INTERRUPTED
    except CliError as exc:
        message = exc.message
        if exc.code in (EXIT_NETWORK, EXIT_TIMEOUT):
            message += f" — {again(args, state)}"
        console.print(f"[red]error:[/red] {message}", highlight=False)
        return exc.code
