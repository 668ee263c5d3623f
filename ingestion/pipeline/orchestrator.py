"""The preview and ingest executors: the pipeline's order, readable in one place.

preview   run.started → per source: list + diff (RunItems only) → expiry check → summary
ingest    run.started → per source: list + diff + upsert (jobs whose listing carries their
          description written processed) → expire; the pending jobs are cut
          into chunks as they are upserted (ingestion.pipeline.chunks), each its own RQ job
          (ingestion.pipeline.process) processed by other workers while the listing goes
          on → the last chunk: summary → finished

One failing source does not fail the run; the run fails only when every source failed before
any of its postings were read (or on an internal error), and says why.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.utils import timezone

from ingestion import events, store
from ingestion.dedupe import NearDuplicates
from ingestion.fetching import Fetcher
from ingestion.models import ItemOutcome, Job, JobStatus, RunItem, Source
from ingestion.pipeline.chunks import ChunkStream
from ingestion.pipeline.diff import SourceDiff
from ingestion.pipeline.expire import expire_vanished
from ingestion.pipeline.outcome import SourceOutcome
from ingestion.pipeline.summary import publish_summary
from ingestion.quota import take_request_for
from ingestion.run_kinds import INGEST, PREVIEW
from ingestion.source_health import source_record_listing
from runs import executors, services
from runs.context import RunContext
from runs.exceptions import RunFailed
from runs.numbers import counted

# Jobs a resumed run takes over per transaction.
RESUME_BATCH = 1000


# What each run does in each of its statuses, said on the page, the summary bar and the feed.
# An ingest's chunks start processing while the later sources are still listed.
@executors.register(PREVIEW, label="Preview", phases={"initializing": "Listing and comparing"})
def execute_preview(ctx: RunContext) -> None:
    """A dry run: what an ingest would do now. Writes RunItems, never a Job."""
    _list_sources(ctx, write=False)
    publish_summary(ctx)


@executors.register(
    INGEST,
    label="Ingest",
    phases={"initializing": "Listing, comparing and writing", "ingesting": "Processing jobs"},
)
def execute_ingest(ctx: RunContext) -> object:
    run = ctx.run
    stream = ChunkStream(ctx)
    if run.config.get("retry_of"):
        stream.add(_retry_failed_jobs(ctx, run.config["retry_of"]))
    elif run.config.get("resume_of"):
        _resume_pending_jobs(ctx, run.config["resume_of"], on_pending=stream.add)
    else:
        outcomes = _list_sources(
            ctx,
            write=True,
            on_pending=stream.add,
            on_processed=stream.add_processed,
            savepoint=stream.savepoint,
        )
        # Pending jobs this run did not write: left pending by an earlier run that was
        # aborted or died (this run's own are chunked already).
        leftover = (
            Job.objects.filter(
                source_id__in=[o.source_id for o in outcomes], status=JobStatus.PENDING
            )
            .exclude(last_run_id=run.pk)
            .order_by("id")
            .values_list("id", flat=True)
        )
        stream.add(list(leftover))
    ctx.checkpoint()
    if not stream.close():  # when it is the last, the summary is published with it
        return executors.DEFERRED
    return None


def _retry_failed_jobs(ctx: RunContext, retry_of: int) -> list[int]:
    """ "Retry failed": the jobs that ended in error in run `retry_of` go back to pending
    (their listing content was kept), without reading the boards again."""
    run = ctx.run
    failed = Job.objects.filter(
        owner_id=run.owner_id, last_run_id=retry_of, status=JobStatus.ERROR
    ).order_by("id")
    rows = list(
        failed.values_list("id", "source_id", "external_id", "title", "url", "error_message")
    )
    ctx.event(
        "run.started",
        f"Retrying {len(rows):,} failed job{'s' if len(rows) != 1 else ''} of run #{retry_of}",
        {"retryOf": retry_of, "jobs": len(rows)},
    )
    with transaction.atomic():
        Job.objects.filter(id__in=[r[0] for r in rows], status=JobStatus.ERROR).update(
            status=JobStatus.PENDING, error_message="", last_run=run, updated_at=timezone.now()
        )
        _carry_items(
            ctx,
            [
                (pk, source_id, external_id, title, url, None, ItemOutcome.UNCHANGED)
                for pk, source_id, external_id, title, url, _ in rows
            ],
            reasons=[f"retry after: {r[5]}"[:2000] for r in rows],
        )
        events.jobs_changed(
            events.JOB_UPDATED,
            run_id=run.pk,
            job_ids=[r[0] for r in rows],
            status=JobStatus.PENDING,
            stage="retry",
        )
    return [r[0] for r in rows]


def _resume_pending_jobs(
    ctx: RunContext, resume_of: int, *, on_pending: Callable[[list[int]], None]
) -> None:
    """ "Resume": the jobs that run `resume_of` (aborted or failed) wrote and left pending are
    processed by this run, without reading the boards again. Each keeps the outcome its
    listing gave it (new or updated)."""
    run = ctx.run
    left = RunItem.objects.filter(
        run_id=resume_of,
        job__status=JobStatus.PENDING,
        job__last_run_id=resume_of,
        job__owner_id=run.owner_id,
    ).order_by("id")
    total = left.count()
    ctx.event(
        "run.started",
        f"Resuming run #{resume_of}: processing {counted(total, 'pending job')} "
        "without reading the boards again",
        {"resumeOf": resume_of, "jobs": total},
    )
    after = 0
    while True:
        # Keyset blocks, each read afresh: the jobs taken over stop matching as they go.
        block = list(
            left.filter(id__gt=after).values_list(
                "id", "job_id", "source_id", "external_id", "title", "url", "row", "outcome"
            )[:RESUME_BATCH]
        )
        if not block:
            return
        after = block[-1][0]
        ctx.checkpoint()
        ids = [r[1] for r in block]
        with transaction.atomic():
            Job.objects.filter(id__in=ids, status=JobStatus.PENDING).update(
                last_run=run, updated_at=timezone.now()
            )
            _carry_items(
                ctx,
                [r[1:] for r in block],
                reasons=[f"resumed from run #{resume_of}"] * len(block),
            )
        on_pending(ids)


def _carry_items(ctx: RunContext, rows: list[tuple[Any, ...]], *, reasons: list[str]) -> None:
    """This run's items for jobs it takes over from an earlier run (retry, resume), pending:
    rows of (job id, source id, external id, title, url, row, outcome); counted by outcome."""
    store.insert_items(
        [
            store.ItemRow(
                run_id=ctx.run.pk,
                source_id=source_id,
                job_id=pk,
                external_id=external_id,
                title=title,
                url=url,
                row=row,
                outcome=outcome,
                job_status=JobStatus.PENDING,
                reason=reason,
            )
            for (pk, source_id, external_id, title, url, row, outcome), reason in zip(
                rows, reasons, strict=True
            )
        ]
    )
    ctx.progress(outcomes=Counter(str(r[6]) for r in rows))


def _list_sources(
    ctx: RunContext,
    *,
    write: bool,
    on_pending: Callable[[list[int]], None] | None = None,
    on_processed: Callable[[int], None] | None = None,
    savepoint: Callable[[], Callable[[], None]] | None = None,
) -> list[SourceOutcome]:
    run = ctx.run
    entries = list(run.config.get("sources") or [])
    if not entries:
        raise RunFailed("The run has no sources to read; select at least one source.")
    sources = {
        s.pk: s
        for s in Source.objects.filter(owner_id=run.owner_id, pk__in=[e.get("id") for e in entries])
    }
    names = ", ".join(f"{e.get('company')} ({e.get('kind')})" for e in entries)
    verb = "Ingesting" if write else "Previewing"
    ctx.event(
        "run.started",
        f"{verb} {len(entries)} source{'s' if len(entries) != 1 else ''}: {names}",
        {"sources": [e.get("id") for e in entries], "dryRun": not write},
    )
    # The listing looks its keys up in the job table batch after batch: without statistics
    # (the last big ingest not analyzed yet) the planner hashes all of a company's jobs for
    # each batch of keys instead of probing the unique key.
    store.analyze_if_stale(Job)
    outcomes: list[SourceOutcome] = []
    near = NearDuplicates(run.owner_id)
    with Fetcher(run_id=run.pk, on_request=take_request_for(run.owner_id)) as fetcher:
        for entry in entries:
            ctx.checkpoint()
            source = sources.get(entry.get("id"))
            if source is None:
                outcome = SourceOutcome(
                    source_id=entry.get("id") or 0,
                    company=entry.get("company", ""),
                    kind=entry.get("kind", ""),
                    label=f"{entry.get('company')} ({entry.get('kind')})",
                    error="the source was deleted after the run was started",
                )
            else:
                outcome = SourceDiff(
                    ctx,
                    source,
                    fetcher,
                    filters=entry.get("filters") or {},
                    write=write,
                    near=near,
                    on_pending=on_pending,
                    on_processed=on_processed,
                    savepoint=savepoint,
                ).run_diff()
            _announce(ctx, outcome)
            if source is not None:
                if outcome.complete:
                    expire_vanished(ctx, source, outcome, write=write)
                _record_health(ctx, source, outcome)
            outcomes.append(outcome)
            services.run_set_summary(run, {"sources": [o.as_dict() for o in outcomes]})
    failed = [o for o in outcomes if o.error]
    if len(failed) == len(outcomes):
        reasons = "; ".join(f"{o.label}: {_clause(o.error)}" for o in failed)
        read = sum(o.listed for o in outcomes)
        if not read:
            raise RunFailed(f"Every source failed, so nothing was read. {reasons}.")
        # What was read before the failures is recorded (for an ingest, written as pending
        # jobs and queued): the run goes on with it rather than strand it.
        ctx.event(
            "run.incomplete",
            f"Every source failed before the end of its listing; the run goes on with the "
            f"{read:,} postings read before that. {reasons}.",
            {"read": read, "sources": [o.source_id for o in failed]},
        )
    return outcomes


def _clause(text: str) -> str:
    """An error message as a clause, to end a sentence of ours (no "..")."""
    return text.strip().rstrip(".").rstrip()


def _announce(ctx: RunContext, outcome: SourceOutcome) -> None:
    payload: dict[str, Any] = outcome.as_dict()
    if outcome.error:
        kept = f" after {outcome.listed:,} postings were read" if outcome.listed else ""
        ctx.event(
            "source.failed",
            f"{outcome.label} failed{kept}: {_clause(outcome.error)}. Its jobs are not expired.",
            payload,
        )
    else:
        ctx.event(
            "source.fetched",
            f"{outcome.label}: {outcome.listed:,} postings listed in {outcome.seconds:.1f} s",
            payload,
        )


def _record_health(ctx: RunContext, source: Source, outcome: SourceOutcome) -> None:
    listed = outcome.valid_listed if outcome.complete else None
    paused = source_record_listing(source, error=outcome.error, listed=listed)
    if paused:
        ctx.event(
            "source.paused",
            f"{outcome.label} is paused: {paused} Enable it on Configure to read it again.",
            {"sourceId": source.pk, "failuresInRow": source.failures_in_row},
        )
