"""An ingest's chunks: its pending jobs cut into chunks as the listing produces them, each
chunk its own RQ job (`CHUNK_TASK`, ingestion.pipeline.process.process_chunk) so several
workers share one run, and the bookkeeping that lets whichever worker completes the last
chunk finish the run.

How big a chunk is depends on the live RQ workers: enough small chunks first to hand every
worker two, then bigger ones (a whole chunk costs its work horse less per job), so a small
run keeps every worker busy and a large one is still a few dozen RQ jobs, not thousands.
"""

from __future__ import annotations

import copy
import itertools
import logging
import os
import socket
from collections.abc import Callable, Iterator

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rq import Worker, get_current_job

from ingestion import store
from ingestion.models import ChunkStatus, Job, WorkChunk
from ingestion.pipeline.summary import publish_summary
from runs import queue
from runs.context import RunContext
from runs.models import IngestionRun, RunStatus

# The RQ task of one chunk, by its dotted path (RQ imports it in the worker; a chunk queued
# before an upgrade runs after it under the same name).
CHUNK_TASK = "ingestion.pipeline.process.process_chunk"


# A listing chunk stands for the listing of a group of an ingest's sources (all of them when
# one worker lists them): claimed while they are listed and done when they all are, so no
# processing chunk can finish the run while more may come. Each group's chunks are numbered
# from its listing chunk, group × GROUP_STRIDE (ingestion.pipeline.groups): the one group of
# a run listed by one worker is chunk 0, its processing chunks 1, 2, …
GROUP_STRIDE = 1_000_000
# Pending jobs after which the planner's statistics are refreshed, once per run.
ANALYZE_AFTER = 1000
# The smallest chunk, as a fraction of INTAKE_CHUNK_SIZE, however many workers there are:
# below it the cost of a chunk (its RQ job, work horse, claim, fetcher) outweighs its jobs.
SMALLEST_CHUNK_DIVISOR = 16
# Chunks of each size handed out per live worker before the size doubles.
CHUNKS_PER_WORKER = 2

logger = logging.getLogger(__name__)


def live_workers() -> int:
    """The RQ workers alive on the runs' queue (RQ drops a worker that stopped beating),
    at least 1: this one counts, and without Redis the chunks are sized as for one."""
    try:
        return max(1, Worker.count(queue=queue.get_queue()))
    except Exception:
        logger.warning("Could not count the live RQ workers", exc_info=True)
        return 1


def chunk_sizes(workers: int) -> Iterator[int]:
    """The sizes of a run's chunks, in order, for `workers` live workers: rounds of
    CHUNKS_PER_WORKER chunks per worker, the first of a quarter of INTAKE_CHUNK_SIZE split
    between the workers (at least 1/SMALLEST_CHUNK_DIVISOR of it), doubling each round up to
    INTAKE_CHUNK_SIZE. One worker: 1000, 1000, 2000, 2000, 4000…; four: 8 × 250, 8 × 500…"""
    whole = settings.INTAKE_CHUNK_SIZE
    size = max(1, whole // SMALLEST_CHUNK_DIVISOR, whole // (4 * workers))
    while size < whole:
        for _ in range(CHUNKS_PER_WORKER * workers):
            yield size
        size *= 2
    while True:
        yield whole


class ChunkStream:
    """Cuts an ingest's pending jobs into chunks as the listing stage produces them and
    queues each chunk at once, so other workers process while this one still lists.

    `add()` is called inside the transaction that upserted the jobs: the chunk row and its
    RQ job (queued on commit) exist exactly when the jobs do. `close()` queues the rest and
    marks the listing done; the worker that sees every chunk done finishes the run."""

    def __init__(self, ctx: RunContext, *, group: int = 0) -> None:
        self.ctx = ctx
        self.run = ctx.run
        self._buffer: list[int] = []
        self.listing_chunk = self._number = listing_chunk(group)
        self.workers = live_workers()
        self._sizes = chunk_sizes(self.workers)
        self._size = self._smallest = next(self._sizes)
        self.queued = 0
        # Jobs the listing wrote processed (no chunk takes them).
        self.processed = 0
        self._analyzed = False
        claim_listing_chunk(self.run, self.listing_chunk)

    def add(self, job_ids: list[int]) -> None:
        self._buffer.extend(job_ids)
        while len(self._buffer) >= self._size:
            self._queue(self._buffer[: self._size])
            del self._buffer[: self._size]
            self._size = next(self._sizes)

    def add_processed(self, count: int) -> None:
        """Count `count` jobs the listing wrote processed, in its batch's transaction: they
        join the run's jobs to process (already processed), as a chunk's would."""
        first = not self.queued and not self.processed
        self.processed += count
        self.ctx.progress(increments={"total_jobs": count}, force_event=first)
        if first:
            self.ctx.set_stage(
                RunStatus.INGESTING, message="Processing jobs as they are listed.", once=True
            )

    def savepoint(self) -> Callable[[], None]:
        """A function that puts the stream back as it is now: for a transaction that adds
        to it and is rolled back to be tried again (ingestion.pipeline.diff), whose chunk
        rows, counters and queueing were rolled back with it."""
        # A copy of the sizes to come, however many the rolled-back adds took.
        self._sizes, sizes = itertools.tee(self._sizes)
        state = (self._number, self.queued, self.processed, self._analyzed, self._size)
        buffer = list(self._buffer)

        def restore() -> None:
            self._number, self.queued, self.processed, self._analyzed, self._size = state
            self._buffer = list(buffer)
            self._sizes = copy.copy(sizes)

        return restore

    def close(self) -> bool:
        """Queue what is left and mark the listing done. Returns True when nothing is left
        to process (the summary is published; the caller finishes the run), False when the
        chunks' workers will."""
        with transaction.atomic():
            # The rest in the smallest chunks, so the workers run out of work at about the
            # same time instead of one finishing a big chunk alone.
            piece = self._smallest
            for start in range(0, len(self._buffer), piece):
                self._queue(self._buffer[start : start + piece])
            self._buffer = []
            if not self.queued and not self.processed:
                self.ctx.set_stage(
                    RunStatus.INGESTING, message="Nothing new to process.", once=True
                )
            return complete_chunk(self.ctx, self.listing_chunk)

    def _queue(self, job_ids: list[int]) -> None:
        with transaction.atomic():
            if not self._analyzed and self.queued + len(job_ids) >= ANALYZE_AFTER:
                self._analyzed = True
                _analyze_jobs()
            # The run is ingesting already when the listing wrote processed jobs first.
            first = self.queued == 0 and self.processed == 0
            self._number += 1
            self.queued += len(job_ids)
            WorkChunk.objects.create(run=self.run, number=self._number, job_ids=list(job_ids))
            self.ctx.progress(increments={"total_jobs": len(job_ids)}, force_event=first)
            if first:
                self.ctx.set_stage(
                    RunStatus.INGESTING,
                    message="Processing jobs as they are listed, in chunks of "
                    f"{len(job_ids):,} up to {settings.INTAKE_CHUNK_SIZE:,}, "
                    f"for {self.workers} worker{'s' if self.workers != 1 else ''}.",
                    once=True,
                )
            self.ctx.enqueue_parts(CHUNK_TASK, [(f"chunk-{self._number}", (self._number,))])


def listing_chunk(group: int) -> int:
    """The number of the chunk that stands for listing group `group` of a run's sources."""
    return group * GROUP_STRIDE


def is_listing_chunk(number: int) -> bool:
    return number % GROUP_STRIDE == 0


def listing_elsewhere(run: IngestionRun, group: int, groups: int) -> int:
    """How many of the run's `groups` listing groups other than `group` are not listed yet:
    each holds a worker now or will take the next free one."""
    others = [listing_chunk(g) for g in range(groups) if g != group]
    return (
        WorkChunk.objects.filter(run=run, number__in=others)
        .exclude(status=ChunkStatus.DONE)
        .count()
    )


def claim_listing_chunk(run: IngestionRun, number: int) -> None:
    """Claim listing chunk `number` for this worker: created when the run is listed by one
    worker, created pending for each group beforehand when its groups are listed at once."""
    WorkChunk.objects.update_or_create(
        run=run,
        number=number,
        defaults={
            "status": ChunkStatus.CLAIMED,
            "claimed_at": timezone.now(),
            "claimed_by": worker_name(),
        },
    )


def _analyze_jobs() -> None:
    """The planner's statistics may still describe the job table as it was before this
    run's upsert (on a new installation: empty); the near-duplicate lookup would then scan
    every job of the owner per batch instead of probing the band indexes. Autovacuum would
    catch up a minute later, in the middle of the chunks."""
    store.analyze(Job)


def complete_chunk(ctx: RunContext, number: int) -> bool:
    """Mark chunk `number` done; True when it was the run's last unfinished chunk, whose
    summary is then published in the same transaction: once every chunk is done the summary
    exists, whichever worker (or retry of a chunk whose horse died) goes on to finish."""
    run = ctx.run
    with transaction.atomic():
        # Lock the run row so two workers finishing the last two chunks at once are
        # serialized: exactly one of them sees no chunk left and finishes the run.
        IngestionRun.objects.select_for_update().filter(pk=run.pk).values_list("pk").first()
        WorkChunk.objects.filter(run=run, number=number).update(
            status=ChunkStatus.DONE, done_at=timezone.now()
        )
        last = not WorkChunk.objects.filter(run=run).exclude(status=ChunkStatus.DONE).exists()
        if last:
            publish_summary(ctx)
        return last


def worker_name() -> str:
    """The RQ worker running this chunk (its name is unique per worker process), with the
    host, so an operator can tell which machine did what."""
    job = get_current_job()
    name = job.worker_name if job is not None and job.worker_name else str(os.getpid())
    return f"{socket.gethostname()}:{name}"[:200]
