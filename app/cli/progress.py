"""What the command shows while it works: progress bars, and waiting for processing."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from app.cli.usage import EXIT_TIMEOUT, CliError

# What a progress bar counts: its task's `unit` field.
BYTES = "bytes"
IMAGES = "images"
# Image statuses after which nothing changes any more.
FINAL_STATUSES = frozenset({"processed", "error", "expired"})


class AmountColumn(ProgressColumn):
    """`3/20 images` for a count of images, `1.2/4.5 MB` for bytes: each bar in its own unit."""

    def __init__(self) -> None:
        super().__init__()
        self._bytes = DownloadColumn()

    def render(self, task: Task) -> Text:
        if task.fields.get("unit") == BYTES:
            return self._bytes.render(task)
        total = "?" if task.total is None else f"{task.total:.0f}"
        return Text(f"{task.completed:.0f}/{total} images", style="progress.download")


# A transfer that has not moved for this long shows "stalled" instead of a speed: rich's own
# speed is an average over the last 30 s, so it would go on showing the speed from before the
# stall, as if bytes were still coming.
STALLED_AFTER = 3.0  # seconds


class SpeedColumn(ProgressColumn):
    """Transfer speed, for byte counts only (images per second says nothing useful); while
    nothing arrives for `STALLED_AFTER` seconds, "stalled" instead of a speed."""

    def __init__(self) -> None:
        super().__init__()
        self._speed = TransferSpeedColumn()
        self._moved: dict[TaskID, tuple[float, float]] = {}  # task -> (completed, when)

    def render(self, task: Task) -> Text:
        if task.fields.get("unit") != BYTES:
            return Text("")
        now = task.get_time()
        completed, when = self._moved.get(task.id, (-1.0, now))
        if task.completed != completed:
            self._moved[task.id] = (task.completed, now)
        elif not task.finished and now - when >= STALLED_AFTER:
            return Text("stalled", style="progress.remaining")
        return self._speed.render(task)


def progress_bar(console: Console, *, quiet: bool) -> Progress:
    """The bars of one run (upload, processing, download), on `console`; none when `quiet`."""
    return Progress(
        TextColumn("{task.description:<11}"),
        BarColumn(),
        AmountColumn(),
        SpeedColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=quiet,
    )


class Upload(Protocol):
    """What became of one file given to the order."""

    @property
    def file(self) -> str | None: ...
    @property
    def uploaded(self) -> bool: ...
    @property
    def error(self) -> str | None: ...


def report_uploads(console: Console, images: Sequence[Upload]) -> None:
    """Name each file that did not make it into the order, and why."""
    for image in images:
        if not image.uploaded:
            console.print(f"[red]not uploaded[/red] {image.file}: {image.error}")


@dataclass(frozen=True, slots=True)
class Status:
    """How far processing has come: images in a final state out of all."""

    total: int
    done: int
    failed: int


def status_of_images(statuses: Sequence[str | None]) -> Status:
    done = sum(1 for s in statuses if s in FINAL_STATUSES)
    failed = sum(1 for s in statuses if s in ("error", "expired"))
    return Status(total=len(statuses), done=done, failed=failed)


class OrderSource(Protocol):
    """Where an order's processing status is read: the API directly, or the service."""

    async def status(self, order_id: str) -> Status: ...


async def wait_processed(
    source: OrderSource,
    order_id: str,
    *,
    timeout: float,
    interval: float,
    progress: Progress,
) -> Status:
    """Poll until every image is in a final state.

    Raises:
        CliError: EXIT_TIMEOUT after `timeout` seconds; others from the status calls.
    """
    task = progress.add_task("processing", total=None, unit=IMAGES)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        status = await source.status(order_id)
        progress.update(task, total=status.total, completed=status.done)
        if status.total and status.done == status.total:
            return status
        if loop.time() + interval > deadline:
            raise CliError(
                f"order {order_id} not processed after {timeout:g} s "
                f"({status.done} of {status.total} images done)",
                EXIT_TIMEOUT,
            )
        await asyncio.sleep(interval)
