"""The preview and ingest executors: the pipeline's order, readable in one place.

preview   run.started → per source: list + diff (RunItems only) → expiry check → summary
ingest    run.started → per source: list + diff + upsert → expire → chunks of pending jobs,
          each its own RQ job (ingestion.pipeline.process) → the last chunk: summary → finished

One failing source does not fail the run; the run fails only when every source failed (or on
an internal error), and says why.
"""

from __future__ import annotations

from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from ingestion import simhash
from ingestion.fetching import Fetcher
from ingestion.models import ItemOutcome, Job, JobStatus, RunItem, Source
from ingestion.pipeline import process
from ingestion.pipeline.diff import SourceDiff, SourceOutcome
from ingestion.pipeline.expire import expire_vanished
from runs import executors, services
from runs.context import RunContext, RunFailed
from runs.models import RunKind, RunStatus

# Pending jobs from which the ingest refreshes the planner's statistics before processing.
ANALYZE_AFTER = 1000


@executors.register(RunKind.PREVIEW)
def execute_preview(ctx: RunContext) -> None:
    """A dry run: what an ingest would do now. Writes RunItems, never a Job."""
    _list_sources(ctx, write=False)
    publish_summary(ctx)


@executors.register(RunKind.INGEST)
def execute_ingest(ctx: RunContext) -> object:
    run = ctx.run
    if run.config.get("retry_of"):
        pending = _retry_failed_jobs(ctx, run.config["retry_of"])
    else:
        outcomes = _list_sources(ctx, write=True)
        source_ids = [o.source_id for o in outcomes]
        # Every pending job of these sources: this run's new and updated postings, and any
        # left pending by an earlier run that was aborted or died.
        pending = list(
            Job.objects.filter(source_id__in=source_ids, status=JobStatus.PENDING)
            .order_by("id")
            .values_list("id", flat=True)
        )
    ctx.checkpoint()
    if len(pending) >= ANALYZE_AFTER and connection.vendor == "postgresql":
        # The planner's statistics still describe the job table as it was before this
        # run's upsert (on a new installation: empty), and the near-duplicate lookup would
        # then scan every job of the owner per batch instead of probing the band indexes.
        # Autovacuum would catch up a minute later, in the middle of the chunks.
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {Job._meta.db_table}")
    if not pending:
        ctx.set_stage(RunStatus.INGESTING, message="Nothing new to process.")
        publish_summary(ctx)
        return None
    with transaction.atomic():
        chunks = process.create_chunks(run, pending)
        ctx.progress(done=0, total=len(pending), force_event=True)
        ctx.set_stage(
            RunStatus.INGESTING,
            message=f"Processing {_plural(len(pending), 'job')} in "
            f"{_plural(len(chunks), 'chunk')}.",
        )
        ctx.enqueue_parts(process.CHUNK_TASK, [(f"chunk-{c.number}", (c.number,)) for c in chunks])
    return executors.DEFERRED


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
        RunItem.objects.bulk_create(
            RunItem(
                run=run,
                source_id=source_id,
                job_id=pk,
                external_id=external_id,
                title=title,
                url=url,
                outcome=ItemOutcome.UNCHANGED,
                job_status=JobStatus.PENDING,
                reason=f"retry after: {error}"[:2000],
            )
            for pk, source_id, external_id, title, url, error in rows
        )
    return [r[0] for r in rows]


def _list_sources(ctx: RunContext, *, write: bool) -> list[SourceOutcome]:
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
    outcomes: list[SourceOutcome] = []
    with Fetcher(run_id=run.pk, owner_id=run.owner_id) as fetcher:
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
                    ctx, source, fetcher, filters=entry.get("filters") or {}, write=write
                ).run_diff()
            _announce(ctx, outcome)
            if source is not None:
                if outcome.complete:
                    expire_vanished(ctx, source, outcome, write=write)
                _record_health(source, outcome, learn_boilerplate=write)
            outcomes.append(outcome)
            services.run_set_summary(run, {"sources": [o.as_dict() for o in outcomes]})
    failed = [o for o in outcomes if o.error]
    if len(failed) == len(outcomes):
        reasons = "; ".join(f"{o.label}: {o.error}" for o in failed)
        raise RunFailed(f"Every source failed, so nothing was read. {reasons}")
    return outcomes


def _announce(ctx: RunContext, outcome: SourceOutcome) -> None:
    payload: dict[str, Any] = outcome.as_dict()
    if outcome.error:
        kept = f" ({outcome.listed:,} postings read before it failed)" if outcome.listed else ""
        ctx.event(
            "source.failed",
            f"{outcome.label} failed: {outcome.error}{kept}. Its jobs are not expired.",
            payload,
        )
    else:
        ctx.event(
            "source.fetched",
            f"{outcome.label}: {outcome.listed:,} postings listed in {outcome.seconds:.1f} s",
            payload,
        )


def _record_health(source: Source, outcome: SourceOutcome, *, learn_boilerplate: bool) -> None:
    fields: dict[str, Any] = {
        "last_fetched_at": timezone.now(),
        "last_fetch_ok": not outcome.error,
        "last_fetch_error": outcome.error,
    }
    if outcome.complete:
        fields["last_listed_count"] = outcome.valid_listed
    if learn_boilerplate and outcome.complete and len(outcome.sample) >= 3:
        from ingestion import normalize

        texts = [normalize.html_to_text(html) for html in outcome.sample]
        fields["boilerplate"] = simhash.company_boilerplate(texts)
    # update(), not save(): the source's own settings may be edited while the run goes on.
    Source.objects.filter(pk=source.pk).update(**fields)
    for key, value in fields.items():
        setattr(source, key, value)


def publish_summary(ctx: RunContext) -> None:
    """The final summary event (the run's counts), just before the run finishes."""
    run = ctx.run
    run.refresh_from_db()
    counts = run.counts()
    if run.kind == RunKind.PREVIEW:
        text = (
            f"Preview: {counts['new']:,} new, {counts['updated']:,} updated, "
            f"{counts['expired']:,} would expire, {counts['skipped']:,} duplicate or filtered, "
            f"{counts['failed']:,} invalid or failed. Nothing was written to your jobs."
        )
    else:
        text = (
            f"{counts['new']:,} new, {counts['updated']:,} updated, {counts['ready']:,} ready, "
            f"{counts['skipped']:,} skipped, {counts['expired']:,} expired, "
            f"{counts['failed']:,} failed."
        )
    ctx.event("run.summary", text, {"counts": counts, "sources": run.summary.get("sources", [])})


def _plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
