"""The preview and ingest executors: the pipeline's order, readable in one place.

preview   run.started → per source: list + diff (RunItems only) → expiry check → summary
ingest    run.started → per source: list + diff + upsert (jobs whose listing carries their
          description written processed) → expire; the pending jobs are cut
          into chunks as they are upserted (ingestion.pipeline.chunks), each its own RQ job
          (ingestion.pipeline.process) processed by other workers while the listing goes
          on → the last chunk: summary → finished

Sources that share no company are listed at the same time, each group by a worker of its own
(`list_group`, ingestion.pipeline.groups), each with its own chunks; the last group listed
says whether the run read anything, and the last chunk done finishes the run as above.

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
from ingestion.models import ItemOutcome, Job, JobStatus, RunItem, Source, WorkChunk
from ingestion.pipeline.chunks import (
    ChunkStream,
    claim_listing_chunk,
    complete_chunk,
    listing_chunk,
    listing_elsewhere,
    live_workers,
)
from ingestion.pipeline.diff import SourceDiff
from ingestion.pipeline.expire import expire_vanished
from ingestion.pipeline.groups import listing_groups
from ingestion.pipeline.outcome import SourceOutcome
from ingestion.pipeline.summary import ListingMarks, publish_summary, record_outcome
from ingestion.quota import take_request_for
from ingestion.run_kinds import INGEST, PREVIEW
from ingestion.source_health import source_record_listing
from runs import executors
from runs.context import RunContext
from runs.exceptions import RunFailed
from runs.models import IngestionRun
from runs.numbers import counted

# Jobs a resumed run takes over per transaction.
RESUME_BATCH = 1000


# The RQ part that lists one group of a run's sources (ingestion.pipeline.groups), by its
# dotted path (runs.tasks.execute_part imports it in the worker).
LIST_GROUP_TASK = "ingestion.pipeline.orchestrator.list_group"


# What each run does in each of its statuses, said on the page, the summary bar and the feed.
# An ingest's chunks start processing while the later sources are still listed.
@executors.register(PREVIEW, label="Preview", phases={"initializing": "Listing and comparing"})
def execute_preview(ctx: RunContext) -> object:
    """A dry run: what an ingest would do now. Writes RunItems, never a Job."""
    groups, sources = _start_listing(ctx, write=False)
    if len(groups) > 1:
        return _fan_out(ctx, groups)
    outcomes = _list_sources(ctx, groups[0], sources, write=False)
    _check_read(ctx, [o.as_dict() for o in outcomes])
    publish_summary(ctx)
    return None


def _after_ingest(run: IngestionRun) -> None:
    """Once an ingest is finished: the job table analyzed when it grew past its statistics
    (a first ingest analyzes it after its first thousand jobs, then writes the rest), so
    that the next listing, a re-run a moment later, does not analyze it before its first
    batch. The listing still checks (another owner's ingest, an ingest that failed)."""
    store.analyze_if_stale(Job)


@executors.register(
    INGEST,
    label="Ingest",
    phases={"initializing": "Listing, comparing and writing", "ingesting": "Processing jobs"},
    after_finish=_after_ingest,
)
def execute_ingest(ctx: RunContext) -> object:
    run = ctx.run
    if run.config.get("retry_of"):
        stream = ChunkStream(ctx)
        stream.add(_retry_failed_jobs(ctx, run.config["retry_of"]))
    elif run.config.get("resume_of"):
        stream = ChunkStream(ctx)
        _resume_pending_jobs(ctx, run.config["resume_of"], on_pending=stream.add)
    else:
        groups, sources = _start_listing(ctx, write=True)
        if len(groups) > 1:
            return _fan_out(ctx, groups)
        stream = ChunkStream(ctx)
        outcomes = _list_sources(ctx, groups[0], sources, write=True, stream=stream)
        _check_read(ctx, [o.as_dict() for o in outcomes])
        stream.add(_left_pending(ctx, outcomes))
    ctx.checkpoint()
    if not stream.close():  # when it is the last, the summary is published with it
        return executors.DEFERRED
    return None


def list_group(ctx: RunContext, group: int, source_ids: list[int], groups: int) -> bool:
    """List group `group` of the run's sources (of `groups` listed at the same time,
    ingestion.pipeline.groups), as the run's own worker lists all of them when there is one
    group: the run's own job lists group 0, an RQ part (runs.tasks.execute_part) each later
    one. Returns True when this completed the run's last chunk (the run is then finished)."""
    run = ctx.run
    wanted = set(source_ids)
    entries = [e for e in run.config.get("sources") or [] if e.get("id") in wanted]
    sources = _sources(ctx, entries)
    number = listing_chunk(group)
    stream = None
    if run.kind == INGEST:
        stream = ChunkStream(ctx, group=group)
    else:
        claim_listing_chunk(run, number)
    outcomes = _list_sources(
        ctx,
        entries,
        sources,
        write=stream is not None,
        stream=stream,
        alongside=lambda: listing_elsewhere(run, group, groups),
    )
    if stream is not None:
        stream.add(_left_pending(ctx, outcomes))
    ctx.checkpoint()
    with transaction.atomic():
        # The run's row locked: of groups ending at the same time, one is the last listed,
        # and it alone says whether the run read anything.
        IngestionRun.objects.select_for_update().filter(pk=run.pk).values_list("pk").first()
        if not listing_elsewhere(run, group, groups):
            run.refresh_from_db(fields=["summary"])
            _check_read(ctx, list(run.summary.get("sources", [])))
        if stream is not None:
            return stream.close()
        return complete_chunk(ctx, number)


def _start_listing(
    ctx: RunContext, *, write: bool
) -> tuple[list[list[dict[str, Any]]], dict[int, Source]]:
    """Announce the run's listing; its source entries in groups to list at the same time
    (one group: listed here, in order) and its sources by id."""
    run = ctx.run
    entries = list(run.config.get("sources") or [])
    if not entries:
        raise RunFailed("The run has no sources to read; select at least one source.")
    sources = _sources(ctx, entries)
    workers = live_workers()
    groups = listing_groups(entries, sources, workers=workers)
    names = ", ".join(f"{e.get('company')} ({e.get('kind')})" for e in entries)
    verb = "Ingesting" if write else "Previewing"
    side_by_side = (
        f", in {len(groups)} groups listed at the same time by {workers} workers"
        if len(groups) > 1
        else ""
    )
    ctx.event(
        "run.started",
        f"{verb} {counted(len(entries), 'source')}: {names}{side_by_side}",
        {"sources": [e.get("id") for e in entries], "dryRun": not write, "groups": len(groups)},
    )
    # The listing looks its keys up in the job table batch after batch: without statistics
    # (the last big ingest not analyzed yet) the planner hashes all of a company's jobs for
    # each batch of keys instead of probing the unique key. An ingest that finished analyzed
    # what it grew (_after_ingest): this is the check, and the catch-up for what did not.
    store.analyze_if_stale(Job)
    return groups, sources


def _sources(ctx: RunContext, entries: list[dict[str, Any]]) -> dict[int, Source]:
    return {
        s.pk: s
        for s in Source.objects.filter(
            owner_id=ctx.run.owner_id, pk__in=[e.get("id") for e in entries]
        )
    }


def _fan_out(ctx: RunContext, groups: list[list[dict[str, Any]]]) -> object:
    """Queue each later group's listing as a part of its own and list the first here: the
    groups' listing chunks exist first, so that no group completing its work can finish the
    run while another has not started. A listing cannot resume where it stopped: its part is
    not tried again (nor is the run's own job)."""
    run = ctx.run
    ids = [[int(e["id"]) for e in group] for group in groups]
    with transaction.atomic():
        WorkChunk.objects.bulk_create(
            [WorkChunk(run=run, number=listing_chunk(g)) for g in range(len(groups))]
        )
        ctx.enqueue_parts(
            LIST_GROUP_TASK,
            [(f"listing-{g}", (g, ids[g], len(groups))) for g in range(1, len(groups))],
            retries=0,
        )
    # Listed by the worker already holding the run rather than queued for the next free one:
    # the run starts listing without waiting for a job to be taken and a work horse forked.
    if list_group(ctx, 0, ids[0], len(groups)):
        return None
    return executors.DEFERRED


def _left_pending(ctx: RunContext, outcomes: list[SourceOutcome]) -> list[int]:
    """Pending jobs of the listed sources this run did not write: left pending by an earlier
    run that was aborted or died (this run's own are chunked already)."""
    return list(
        Job.objects.filter(source_id__in=[o.source_id for o in outcomes], status=JobStatus.PENDING)
        .exclude(last_run_id=ctx.run.pk)
        .order_by("id")
        .values_list("id", flat=True)
    )


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
    entries: list[dict[str, Any]],
    sources: dict[int, Source],
    *,
    write: bool,
    stream: ChunkStream | None = None,
    alongside: Callable[[], int] = lambda: 0,
) -> list[SourceOutcome]:
    """List `entries`' sources one after another, in order, sharing their near-duplicate
    decisions; each one's outcome goes into the run's summary as it ends. `alongside`: how
    many groups of the run's sources other workers are listing now or will list."""
    run = ctx.run
    outcomes: list[SourceOutcome] = []
    near = NearDuplicates(run.owner_id)
    order = [e.get("id") for e in run.config.get("sources") or []]
    with Fetcher(run_id=run.pk, on_request=take_request_for(run.owner_id)) as fetcher:
        for entry in entries:
            ctx.checkpoint()
            source = sources.get(entry.get("id"))  # type: ignore[arg-type]
            if source is None:
                outcome = SourceOutcome(
                    source_id=entry.get("id") or 0,
                    company=entry.get("company", ""),
                    kind=entry.get("kind", ""),
                    label=f"{entry.get('company')} ({entry.get('kind')})",
                    error="the source was deleted after the run was started",
                )
            else:
                marks = ListingMarks(ctx, source.pk)
                marks.mark(0)
                outcome = SourceDiff(
                    ctx,
                    source,
                    fetcher,
                    filters=entry.get("filters") or {},
                    write=write,
                    near=near,
                    on_pending=stream.add if stream else None,
                    on_processed=stream.add_processed if stream else None,
                    savepoint=stream.savepoint if stream else None,
                    on_batch=marks.listed,
                    listing_elsewhere=alongside,
                ).run_diff()
            _announce(ctx, outcome)
            if source is not None:
                if outcome.complete:
                    expire_vanished(ctx, source, outcome, write=write)
                _record_health(ctx, source, outcome)
            outcomes.append(outcome)
            record_outcome(ctx, outcome, order=order)
    return outcomes


def _check_read(ctx: RunContext, outcomes: list[dict[str, Any]]) -> None:
    """Once every source is listed (`outcomes`: their summaries): the run fails when every
    source failed before any of its postings were read, and says so when all failed after
    reading some."""
    failed = [o for o in outcomes if o.get("error")]
    if not outcomes or len(failed) < len(outcomes):
        return
    reasons = "; ".join(f"{o.get('label')}: {_clause(str(o.get('error')))}" for o in failed)
    read = sum(int(o.get("listed") or 0) for o in outcomes)
    if not read:
        raise RunFailed(f"Every source failed, so nothing was read. {reasons}.")
    # What was read before the failures is recorded (for an ingest, written as pending
    # jobs and queued): the run goes on with it rather than strand it.
    ctx.event(
        "run.incomplete",
        f"Every source failed before the end of its listing; the run goes on with the "
        f"{read:,} postings read before that. {reasons}.",
        {"read": read, "sources": [o.get("sourceId") for o in failed]},
    )


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
