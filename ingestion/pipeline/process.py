"""The ingesting stage: one chunk of pending jobs (ingestion.pipeline.chunks cuts and queues
them, each its own RQ job so several workers share one run). Per job: fetch the detail when
the listing lacked it, normalize, sanitize, simhash, near-duplicate check → ready, skipped or
error (with the reason).

Work is written in batches, each one transaction (jobs, their run items and the run's
counters together): an abort or a dead worker leaves whole batches or nothing."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ingestion import dedupe, events, normalize, simhash, store
from ingestion.adapters import Adapter, Posting, SourceFailed, get_adapter
from ingestion.adapters.readers import ordered_parallel
from ingestion.fetching import Fetcher, FetchError
from ingestion.fetching.payloads import PayloadBuffer
from ingestion.models import ChunkStatus, Job, JobStatus, Source, WorkChunk
from ingestion.pipeline import content
from ingestion.pipeline.batching import batched
from ingestion.pipeline.chunks import complete_chunk, worker_name
from ingestion.quota import take_request_for
from runs import dbretry
from runs.context import RunContext

logger = logging.getLogger(__name__)


# Detail-fetch threads per request a source's host allows at once (see _details).
SPARE_THREADS_FACTOR = 2

# A job's fetched detail, the error that stopped its fetch, or None (no fetch).
_Detail = Posting | Exception | None


class ChunkTaken(Exception):
    """Another attempt at the same chunk committed the batch this one was about to: it
    carries the chunk on, and this attempt stops without writing."""


def process_chunk(ctx: RunContext, number: int) -> bool:
    """RQ part task (runs.tasks.execute_part): process chunk `number` of the run. Returns
    True when the run's last chunk is done (the run is then finished).

    Safe to run again: RQ retries the part when its work horse dies, and the retry claims
    the chunk back and resumes after its last committed batch (`done_count`). Should two
    attempts ever overlap (RQ requeues a job whose worker it lost track of, while that
    worker still runs), each batch still commits once: the loser stops (ChunkTaken)."""
    run = ctx.run
    claimed = (
        WorkChunk.objects.filter(run=run, number=number)
        .exclude(status=ChunkStatus.DONE)
        .update(status=ChunkStatus.CLAIMED, claimed_at=timezone.now(), claimed_by=worker_name())
    )
    if claimed != 1:
        # Done already, by an attempt whose horse died before it could finish the run.
        return not WorkChunk.objects.filter(run=run).exclude(status=ChunkStatus.DONE).exists()
    chunk = WorkChunk.objects.get(run=run, number=number)
    processor = BatchProcessor(ctx)
    offset = chunk.done_count
    try:
        for ids in _batches(chunk.job_ids[offset:]):
            _process_batch(processor, chunk, ids, offset)
            offset += len(ids)
    except ChunkTaken:
        logger.info("Chunk %s of run %s is carried on by another attempt", number, run.pk)
        return False
    finally:
        processor.close()
    return complete_chunk(ctx, number)


def _process_batch(
    processor: BatchProcessor, chunk: WorkChunk, ids: list[int], offset: int
) -> None:
    """One batch, tried again on a new connection when the database connection breaks
    (dbretry): it commits whole or not at all, and a try after one whose COMMIT's answer was
    lost finds the batch committed (done_count moved past it) and leaves it."""
    tries = 0

    def attempt() -> None:
        nonlocal tries
        tries += 1
        if tries > 1:
            done = WorkChunk.objects.filter(pk=chunk.pk).values_list("done_count", flat=True)
            if (done.first() or 0) >= offset + len(ids):
                return
        processor.process(ids, chunk=chunk, offset=offset)

    dbretry.retry_transient(
        attempt, what=f"a batch of chunk {chunk.number} of run {processor.run.pk}"
    )


def _batches(job_ids: list[int]) -> Iterator[list[int]]:
    """A chunk's jobs in batches of INTAKE_BATCH_SIZE, a batch ending sooner once its raw
    descriptions add up to batching.TEXT_BUDGET (one query for the sizes of the chunk)."""
    sizes = store.text_sizes(Job, "raw_description", job_ids)
    return batched(job_ids, settings.INTAKE_BATCH_SIZE, weight=lambda pk: sizes.get(pk, 0))


@dataclass(slots=True)
class _Result:
    job: store.PendingJob
    status: str = JobStatus.READY
    error: str = ""
    text: str = ""
    simhash: int | None = None
    words: int = 0
    duplicate_of: int | None = None
    # Whether the listing decided if it is a near-duplicate (it had the posting's text).
    listed: bool = False
    reason: str = ""


class BatchProcessor:
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.run = ctx.run
        # Made when a job first needs its detail fetched: listings with content never do,
        # and an HTTP client loads its certificates, per chunk (docs/performance.md).
        self._fetcher: Fetcher | None = None
        # Its detail fetches' records, stored a batch at a time (ingestion.fetching.payloads).
        self._payloads = PayloadBuffer()
        self._sources: dict[int, Source | None] = {}
        self._adapters: dict[int, Adapter] = {}

    def process(self, ids: list[int], *, chunk: WorkChunk, offset: int) -> None:
        """Process and commit one batch: `ids`, which start at `offset` of `chunk`'s jobs."""
        jobs = store.pending_jobs(self.run.pk, ids)
        results = []
        try:
            # Closed at once on an abort: the fetches not started yet are cancelled.
            with contextlib.closing(self._details(jobs)) as details:
                for job, detail in zip(jobs, details, strict=True):
                    self.ctx.checkpoint()
                    results.append(self._prepare(job, detail))
        finally:
            # Outside the batch's transaction, and whatever stopped the batch.
            self._payloads.flush()
        self._fingerprint([r for r in results if r.status == JobStatus.READY])
        with transaction.atomic():
            # First, so that two attempts at one chunk queue up here (on the chunk's row)
            # and the second finds the batch committed.
            moved = WorkChunk.objects.filter(pk=chunk.pk, done_count=offset).update(
                done_count=offset + len(ids)
            )
            if moved != 1:
                raise ChunkTaken(f"chunk {chunk.number}: batch at {offset} already committed")
            written = self._write(results)
            self._announce(results, written)
            counts = {"items_done": len(ids), "ready": 0, "skipped": 0, "failed": 0}
            for r in results:
                counts[{"ready": "ready", "skipped": "skipped"}.get(r.status, "failed")] += 1
            failed_before = self.run.jobs_failed
            self.ctx.progress(increments=counts)
            content.announce_failures(
                self.ctx,
                (
                    (r.job.pk, r.job.external_id, r.job.company, r.job.title, r.error)
                    for r in results
                    if r.status == JobStatus.ERROR
                ),
                failed_before=failed_before,
            )

    # --- per job -------------------------------------------------------------------------

    def _source(self, source_id: int | None) -> Source | None:
        if source_id is None:
            return None
        if source_id not in self._sources:
            self._sources[source_id] = Source.objects.filter(pk=source_id).first()
        return self._sources[source_id]

    def _prepare(self, job: store.PendingJob, detail: _Detail = None) -> _Result:
        # A retry reads no listing; a posting without its text in the listing was not
        # decided there (nor fingerprinted).
        listed = not job.needs_detail and not self.run.config.get("retry_of")
        result = _Result(job, listed=listed and job.simhash is not None)
        try:
            if job.needs_detail:
                self._apply_detail(job, detail)
            given = content.Content(
                "",
                "",
                job.location,
                job.remote,
                job.workplace_type,
                job.employment_type,
                job.salary_min,
                job.salary_max,
                job.salary_currency,
                job.salary_period,
            )
            done = content.process(
                given,
                title=job.title,
                raw_description=job.raw_description,
                salary_text=job.salary_text,
            )
            job.description, result.text = done.description, done.text
            job.location, job.remote = done.location, done.remote
            job.workplace_type, job.employment_type = done.workplace_type, done.employment_type
            job.salary_min, job.salary_max = done.salary_min, done.salary_max
            job.salary_currency, job.salary_period = done.salary_currency, done.salary_period
        except (FetchError, SourceFailed, ValueError) as exc:
            result.status, result.error = JobStatus.ERROR, str(exc)
        except Exception as exc:  # one broken posting must not fail its batch
            logger.exception("Processing job %s failed", job.pk)
            result.status = JobStatus.ERROR
            result.error = f"unexpected error: {type(exc).__name__}: {exc}"
        return result

    def _details(self, jobs: list[store.PendingJob]) -> Generator[_Detail, None, None]:
        """Each job's fetched detail (or the error that stopped it; None when it needs
        none), in the jobs' order. The fetches run at once, up to INTAKE_FETCH_PER_HOST per
        source and INTAKE_FETCH_CONCURRENCY in all, a few results ahead of the consumer;
        stopping the iteration (an abort) cancels the ones not started.

        Twice as many threads as a source's hosts allow requests: a thread still parsing
        and recording the answer it got (or storing a full PayloadBuffer) has given its
        host slot back, and a spare thread waiting on that slot sends the next request at
        once, so the host's requests stay in flight instead of coming in waves."""
        calls = [self._detail_call(job) if job.needs_detail else None for job in jobs]
        sources = {job.source_id for job, call in zip(jobs, calls, strict=True) if call}
        if not sources:
            yield from (None for _ in jobs)
            return
        threads = min(
            settings.INTAKE_FETCH_CONCURRENCY,
            SPARE_THREADS_FACTOR * settings.INTAKE_FETCH_PER_HOST * len(sources),
        )
        yield from ordered_parallel(_call_detail, calls, threads=threads)

    def _detail_call(self, job: store.PendingJob) -> Callable[[], Posting]:
        """What fetches `job`'s detail, on a pool thread: its source and adapter are looked
        up here, on the batch's thread."""
        source = self._source(job.source_id)
        if source is None:
            error = ValueError("its source was deleted before its details could be fetched")

            def refuse() -> Posting:
                raise error

            return refuse
        adapter = self._adapters.get(source.pk)
        if adapter is None:
            adapter = self._adapters[source.pk] = get_adapter(
                source, self._get_fetcher().for_source(source.pk)
            )
        return partial(adapter.detail, _posting_of(job))

    def _apply_detail(self, job: store.PendingJob, detail: _Detail) -> None:
        # None: not fetched by _details (a caller that passed none); fetch it here.
        posting = self._detail_call(job)() if detail is None else detail
        if isinstance(posting, Exception):
            raise posting
        job.title = posting.title or job.title
        job.url = posting.url or job.url
        job.location = posting.location or job.location
        job.raw_description = posting.description_html or job.raw_description
        if posting.posted_at:
            job.posted_at = posting.posted_at
        if not job.raw_description:
            raise ValueError("its detail page has no description")
        job.needs_detail = False

    def _get_fetcher(self) -> Fetcher:
        if self._fetcher is None:
            self._fetcher = Fetcher(
                run_id=self.run.pk,
                on_request=take_request_for(self.run.owner_id),
                payloads=self._payloads,
            )
        return self._fetcher

    def close(self) -> None:
        self._payloads.flush()
        if self._fetcher is not None:
            self._fetcher.close()

    def _fingerprint(self, results: list[_Result]) -> None:
        """Mark the near-duplicates as skipped: those the listing found (it decided in
        listing order and stored each posting's simhash, ingestion.pipeline.diff: reused
        here, not computed again), and among the others — postings whose text only the
        detail page had, retried jobs — those of an earlier job (ingestion.dedupe), their
        simhashes computed here (vectorized, per source for its boilerplate)."""
        by_source: dict[int | None, list[_Result]] = {}
        for r in results:
            if r.listed:
                # The item already says why (the listing wrote the reason).
                r.simhash, r.duplicate_of = r.job.simhash, r.job.duplicate_of_id
                if r.duplicate_of is not None:
                    r.status = JobStatus.SKIPPED
            else:
                by_source.setdefault(r.job.source_id, []).append(r)
        for source_id, group in by_source.items():
            source = self._source(source_id)
            boilerplate = frozenset(source.boilerplate) if source else frozenset()
            # The text every stored simhash reads (the listing's too), not the page's.
            texts = [normalize.fingerprint_text(r.job.raw_description) for r in group]
            sized = simhash.simhash_many_sized(texts, boilerplate=boilerplate)
            for r, (value, words) in zip(group, sized, strict=True):
                r.simhash, r.words = value, words
        here = [r for r in results if not r.listed and r.simhash is not None]
        if not here:
            return
        decider = dedupe.NearDuplicates(self.run.owner_id)
        decider.exclude([r.job.pk for r in results])
        candidates = [
            dedupe.Candidate(
                r.simhash or 0,
                words=r.words,
                company=r.job.company,
                title=r.job.title,
                label=dedupe.job_label(r.job.pk, r.job.title),
                job_id=r.job.pk,
            )
            for r in here
        ]
        for r, match in zip(here, decider.decide(candidates), strict=True):
            if match is not None:
                r.status = JobStatus.SKIPPED
                r.duplicate_of = match.canonical.job_id
                r.reason = match.reason

    # --- writing -------------------------------------------------------------------------

    def _announce(self, results: list[_Result], written: set[int]) -> None:
        """The batch's job events (in its transaction): the jobs it moved, by status."""
        moved = [r for r in results if r.job.pk in written]
        for status in (JobStatus.READY, JobStatus.ERROR):
            events.jobs_changed(
                events.JOB_UPDATED,
                run_id=self.run.pk,
                job_ids=[r.job.pk for r in moved if r.status == status],
                status=status,
                stage="processing",
            )
        events.duplicates_found(
            run_id=self.run.pk,
            originals={
                r.job.pk: r.duplicate_of
                for r in moved
                if r.status == JobStatus.SKIPPED and r.duplicate_of is not None
            },
        )

    def _write(self, results: list[_Result]) -> set[int]:
        """Write the batch's results; returns the ids of the jobs it moved."""
        now = timezone.now()
        jobs = [
            store.ProcessedJob(
                url=r.job.url[:2000],
                title=r.job.title[:500],
                location=r.job.location[:500],
                remote=r.job.remote,
                workplace_type=r.job.workplace_type[:16],
                employment_type=r.job.employment_type[:32],
                description=r.job.description if r.status != JobStatus.ERROR else "",
                description_text=r.text,
                posted_at=r.job.posted_at,
                salary_min=r.job.salary_min,
                salary_max=r.job.salary_max,
                salary_currency=r.job.salary_currency[:3],
                salary_period=r.job.salary_period[:8],
                status=r.status,
                simhash=r.simhash,
                duplicate_of_id=r.duplicate_of,
                last_run_id=self.run.pk,
                error_message=r.error,
                updated_at=now,
                failed=r.status == JobStatus.ERROR,
                id=r.job.pk,
            )
            for r in results
        ]
        verdicts = [
            store.ItemVerdict(r.job.pk, r.job.item_ids, r.status, r.error or r.reason)
            for r in results
        ]
        written = store.write_processed(self.run.pk, now, jobs, verdicts)
        # The near-duplicate lookup's view of these jobs, for those this batch did move.
        dedupe.store_fingerprints(
            self.run.owner_id,
            [
                (r.job.pk, r.simhash, r.job.company)
                for r in results
                if r.status == JobStatus.READY and r.job.pk in written and r.simhash is not None
            ],
        )
        store.drop_fingerprints(
            [r.job.pk for r in results if r.status != JobStatus.READY and r.job.pk in written]
        )
        return written


def _call_detail(call: Callable[[], Posting] | None) -> _Detail:
    """Run one detail fetch on a pool thread, its failure returned rather than raised: it
    is that job's error (handled by _prepare), never the batch's."""
    if call is None:
        return None
    try:
        return call()
    except Exception as exc:
        return exc


def _posting_of(job: store.PendingJob) -> Posting:
    return Posting(
        external_id=job.external_id,
        title=job.title,
        url=job.url,
        location=job.location,
        description_html=job.raw_description,
        needs_detail=job.needs_detail,
    )
