"""Runs one job: claim it, wait for the order if asked, write its archive, report the end.

The archive is the one the streaming endpoint sends, byte for byte: the same `plan_batch`, built
by the same `ArchiveBuilder` as the downloads service (`app.archive.stream`, which owns opening
and closing it), iterated into a partial file of the archive store, fsynced and renamed.

While a job runs, a monitor task re-reads its record every `JOB_POLL_INTERVAL`: it renews the
lease (so the sweeper knows the process is alive), publishes progress, and cancels the run when
the record says `cancelled` (DELETE from any process) or the lease was lost. Cancelling the run
closes the `BatchArchive`, which cancels every in-flight upstream download.

Publishing the finished archive is retried when the store fails (a passing outage, a store
that does not answer in time): up to `JOB_MAX_ATTEMPTS` tries, pausing 1, 2, 4 … s between
them; the job fails only after the last, with the store named in its reason.

A run stopped by its own process shutting down gives the job back (lease released, queued
again) so another worker takes it at once; a process that dies outright leaves a lease that
lapses, and the sweeper queues the job again (see `app.jobs.sweeper`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable

from app.archive.plan import NothingToDeliver, Skipped, UnknownImages, plan_batch
from app.archive.stream import BatchArchive
from app.core import metrics
from app.core.errors import Unprocessable
from app.jobs.context import JobContext
from app.jobs.keybox import KeyUnavailable
from app.jobs.models import KEY_GONE_REASON, PENDING_STATES, Failure, JobRecord, JobState
from app.jobs.store import JobArchiveWriter, StorageFull
from app.services.overview import archive_name
from app.storage import StoreError
from app.upstream.errors import UpstreamError
from app.upstream.models import Order

logger = logging.getLogger("app.jobs")

# A dispatched job may start this early relative to `not_before` (clocks of machines differ).
CLOCK_SLACK = 1.0
# Seconds before the first retry of a failed publication; doubled for each further one.
COMMIT_BACKOFF = 1.0


class _Lost(Exception):
    """The job is no longer this run's: cancelled by its owner, or its lease went elsewhere."""


class _Stop(Exception):
    """Ends a run early with a final state."""

    def __init__(self, state: JobState, reason: str, failures: list[Skipped] | None = None) -> None:
        super().__init__(reason)
        self.state: JobState = state
        self.reason = reason
        self.failures = failures or []


def order_is_processing(order: Order) -> bool:
    """Whether the upstream is still enhancing images of the order."""
    if order.is_processing is not None:
        return order.is_processing
    return any(image.status == "processing" for image in order.images)


async def run_job(ctx: JobContext, job_id: str, *, dispatch: int | None = None) -> None:
    """Run `job_id` if it is still pending and unclaimed (else return at once).

    `dispatch` is the hand-over number the queue carried (arq); a delivery older than the
    record's is ignored. Never raises except `CancelledError` on shutdown.
    """
    token = f"{ctx.worker_id}/{secrets.token_hex(4)}"
    now = time.time()

    def claim(record: JobRecord) -> bool:
        if dispatch is not None and record.dispatch != dispatch:
            return False
        if record.state not in PENDING_STATES or record.lease_until > now:
            return False
        if record.not_before > now + CLOCK_SLACK:
            return False
        record.lease_owner = token
        record.lease_until = now + ctx.settings.job_lease_seconds
        record.worker = ctx.worker_id
        return True

    record = await ctx.backend.update(job_id, claim)
    if record is None or record.lease_owner != token:
        return
    await _Run(ctx, record, token).run()


class _Run:
    def __init__(self, ctx: JobContext, record: JobRecord, token: str) -> None:
        self.ctx = ctx
        self.record = record
        self.job_id = record.job_id
        self.token = token
        self.archive: BatchArchive | None = None
        self.stop_reason: str | None = None  # set by the monitor before it cancels the run
        self.finishing = False  # the final write is under way: the monitor must not interfere
        self.ended = False  # the record reached a final state through this run: notify

    async def run(self) -> None:
        main = asyncio.current_task()
        assert main is not None
        monitor = asyncio.create_task(self._monitor(main), name=f"job-monitor-{self.job_id}")
        try:
            try:
                await self._body()
            finally:
                self.finishing = True
                monitor.cancel()
                await asyncio.wait([monitor])
        except asyncio.CancelledError:
            if self.stop_reason is None:
                await asyncio.shield(self._give_back())
                raise
            main.uncancel()
            await self._stopped()
        except _Lost:
            await self._stopped()
        except _Stop as stop:
            await self._end(stop.state, stop.reason, stop.failures)
        except Exception:
            logger.exception("job %s failed unexpectedly", self.job_id)
            await self._end("failed", "internal error while building the archive", None)
        if self.ended:
            await self.ctx.notify(self.record)

    async def _body(self) -> None:
        api_key = self._api_key()
        order = await self._order(api_key)
        if self.record.wait and order_is_processing(order):
            await self._wait_longer()
            return
        async with self.ctx.slots:
            await self._build(order, api_key)

    def _api_key(self) -> str | None:
        if self.record.sealed_key is None:
            return self.ctx.operator_key
        try:
            return self.ctx.keybox.open(self.record.sealed_key)
        except KeyUnavailable:
            raise _Stop("failed", KEY_GONE_REASON) from None

    async def _order(self, api_key: str | None) -> Order:
        try:
            return await self.ctx.upstream.get_order(self.record.order_id, api_key=api_key)
        except UpstreamError as exc:
            raise _Stop("failed", f"could not read the order: {exc.message}") from None

    async def _wait_longer(self) -> None:
        """Hand the job back as `waiting`, to be looked at again after a growing pause."""
        settings = self.ctx.settings
        now = time.time()
        if now - self.record.created_at >= settings.job_wait_timeout:
            raise _Stop(
                "failed",
                f"the order was still processing after {settings.job_wait_timeout} s "
                "(JOB_WAIT_TIMEOUT)",
            )

        def defer(record: JobRecord) -> bool:
            if record.lease_owner != self.token:
                return False
            pause = record.wait_backoff or settings.job_wait_poll_min
            record.state = "waiting"
            record.not_before = now + pause
            record.wait_backoff = min(pause * 2, settings.job_wait_poll_max)
            record.dispatch += 1
            record.lease_owner, record.lease_until = None, 0.0
            return True

        self.finishing = True
        record = await self.ctx.backend.update(self.job_id, defer)
        if record is not None and record.state == "waiting" and record.lease_owner is None:
            await self.ctx.backend.dispatch(record)

    async def _build(self, order: Order, api_key: str | None) -> None:
        ctx = self.ctx
        try:
            plan = plan_batch(order, self.record.options, presets=ctx.presets)
        except UnknownImages as exc:
            # The selection was checked when the job was made; the order has changed since.
            shown = ", ".join(exc.image_ids[:20])
            raise _Stop("failed", f"selected images are no longer in the order: {shown}") from None
        except Unprocessable as exc:
            # A variant was checked when the job was made; the operator's presets changed since.
            detail = exc.detail.get("message") if isinstance(exc.detail, dict) else exc.detail
            raise _Stop("failed", f"a variant is no longer offered: {detail}") from None
        filename = archive_name(order, self.record.options)

        def start(record: JobRecord) -> None:
            record.state = "running"
            record.started_at = time.time()
            record.attempts += 1
            record.images_total = plan.files
            record.images_done = record.bytes_written = 0
            record.filename = filename

        self.record = await self._update(start)
        metrics.JOBS.labels("running").inc()
        if not plan.deliverable:
            raise _Stop("failed", "no image of the order could be delivered", plan.not_ready)
        archives = ctx.archives
        archive = archives.archive(plan, api_key=api_key)
        self.archive = archive
        try:
            writer = ctx.store.writer(self.job_id)
        except StorageFull as exc:
            raise _Stop("failed", str(exc)) from None
        try:
            async with archives.opened(archive):
                async for chunk in archive:
                    writer.write(chunk)
            await self._commit(writer)
        except NothingToDeliver as exc:
            raise _Stop(
                "failed", "no image of the order could be delivered", exc.failures
            ) from None
        except StorageFull as exc:
            raise _Stop("failed", str(exc), archive.progress.skipped) from None
        finally:
            writer.discard()
        progress = archive.progress
        size = writer.size

        def complete(record: JobRecord) -> None:
            record.images_done, record.bytes_written = progress.delivered, progress.bytes_written
            record.failures = _failures(progress.skipped)
            record.archive_size = size
            record.end("complete", ttl=ctx.settings.job_ttl)

        self.finishing = True
        self.record = await self._update(complete)
        self.ended = True
        metrics.JOBS.labels("complete").inc()

    async def _commit(self, writer: JobArchiveWriter) -> None:
        """Publish the archive, retrying a failing store (see the module docstring).

        Raises:
            _Stop: the last try failed too (the reason names the store).
            StorageFull: the bound does not hold the archive.
        """
        tries = self.ctx.settings.job_max_attempts
        where = self.ctx.store.store.description
        for attempt in range(1, tries + 1):
            try:
                await writer.commit()
                return
            except StorageFull:
                raise
            except StoreError as exc:
                if attempt == tries:
                    skipped = self.archive.progress.skipped if self.archive is not None else []
                    raise _Stop(
                        "failed",
                        f"the archive store ({where}) failed {tries} times: {exc}",
                        skipped,
                    ) from None
                pause = COMMIT_BACKOFF * 2 ** (attempt - 1)
                logger.warning(
                    "job %s: storing the archive in %s failed (%s); try %d of %d in %.0f s",
                    self.job_id,
                    where,
                    exc,
                    attempt + 1,
                    tries,
                    pause,
                )
                await asyncio.sleep(pause)

    async def _update(self, mutate: Callable[[JobRecord], None]) -> JobRecord:
        """Apply `mutate` if the job is still this run's.

        Raises:
            _Lost: it is not (cancelled, or the lease lapsed and another worker took it).
        """
        applied = False

        def guarded(record: JobRecord) -> bool:
            nonlocal applied
            applied = record.lease_owner == self.token
            if applied:
                mutate(record)
            return applied

        record = await self.ctx.backend.update(self.job_id, guarded)
        if record is None and await self._restore():
            record = await self.ctx.backend.update(self.job_id, guarded)
        if record is None or not applied:
            cancelled = record is None or record.state == "cancelled"
            self.stop_reason = "cancelled" if cancelled else "lease lost"
            raise _Lost
        return record

    async def _restore(self) -> bool:
        """The record vanished while this run holds the job — the job store lost it (Redis
        restarted without persistence): write it back, so the job finishes, its status is
        answered and its callback sent. False when that fails too."""
        record = self.record.model_copy(deep=True)
        record.lease_owner = self.token
        record.lease_until = time.time() + self.ctx.settings.job_lease_seconds
        try:
            await self.ctx.backend.insert(record)
        except Exception as exc:
            logger.warning(
                "job %s: its record is gone and cannot be restored: %r", self.job_id, exc
            )
            return False
        logger.warning(
            "job %s: its record was gone from the job store (restarted without persistence?);"
            " written back by the run holding it",
            self.job_id,
        )
        return True

    async def _end(self, state: JobState, reason: str, failures: list[Skipped] | None) -> None:
        def end(record: JobRecord) -> None:
            if self.archive is not None:
                record.images_done = self.archive.progress.delivered
                record.bytes_written = self.archive.progress.bytes_written
            record.failures = _failures(failures or [])
            record.end(state, ttl=self.ctx.settings.job_ttl, reason=reason)

        try:
            self.record = await self._update(end)
        except _Lost:
            await self._stopped()
            return
        self.ctx.store.remove(self.job_id)
        self.ended = True
        metrics.JOBS.labels(state).inc()
        logger.info("job %s %s: %s", self.job_id, state, reason)

    async def _stopped(self) -> None:
        """The run was stopped: cancelled by its owner, or the lease went elsewhere."""
        logger.info("job %s stopped on %s: %s", self.job_id, self.ctx.worker_id, self.stop_reason)
        if self.stop_reason == "cancelled":
            self.ctx.store.remove(self.job_id)
            record = await self.ctx.backend.get(self.job_id)
            if record is not None:
                self.record = record
                self.ended = True

    async def _give_back(self) -> None:
        """This process is shutting down: queue the job again for another worker."""

        def release(record: JobRecord) -> bool:
            if record.lease_owner != self.token:
                return False
            record.state = "waiting" if record.state == "waiting" else "queued"
            record.lease_owner, record.lease_until = None, 0.0
            record.dispatch += 1
            return True

        with contextlib.suppress(Exception):
            record = await self.ctx.backend.update(self.job_id, release)
            if record is not None and record.lease_owner is None and not record.ended:
                await self.ctx.backend.dispatch(record)

    async def _monitor(self, main: asyncio.Task[None]) -> None:
        """Renew the lease, publish progress, and stop the run when it must stop."""
        settings = self.ctx.settings
        renew_every = settings.job_lease_seconds / 3
        renewed = time.monotonic()
        published = (-1, -1)
        while not self.finishing:
            await asyncio.sleep(settings.job_poll_interval)
            progress = self.archive.progress if self.archive is not None else None
            current = (progress.delivered, progress.bytes_written) if progress else (0, 0)
            try:
                if current != published or time.monotonic() - renewed >= renew_every:
                    record = await self.ctx.backend.update(self.job_id, self._heartbeat(current))
                    renewed, published = time.monotonic(), current
                else:
                    record = await self.ctx.backend.get(self.job_id)
            except Exception as exc:  # a storage hiccup must not kill the run; retry next tick
                logger.warning("job %s heartbeat failed: %r", self.job_id, exc)
                continue
            if self.finishing:
                return
            if record is None and await self._restore():
                continue
            if record is None or record.state == "cancelled":
                self.stop_reason = "cancelled"
            elif record.lease_owner != self.token:
                self.stop_reason = "lease lost"
            else:
                continue
            main.cancel()
            return

    def _heartbeat(self, current: tuple[int, int]) -> Callable[[JobRecord], bool]:
        def beat(record: JobRecord) -> bool:
            if record.lease_owner != self.token:
                return False
            record.lease_until = time.time() + self.ctx.settings.job_lease_seconds
            record.images_done, record.bytes_written = current
            return True

        return beat


def _failures(skipped: list[Skipped]) -> list[Failure]:
    return [Failure(image_id=s.image_id, image_name=s.image_name, reason=s.reason) for s in skipped]
