"""Jobs a source no longer lists: recorded as `expired` items, and in an ingest marked
`expired`. Only for a source whose listing was read completely and successfully, and not when
the source suddenly lists far fewer postings than it had (a board that broke, not a hiring
freeze): that decision is reported in the feed instead."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from ingestion import events, store
from ingestion.models import ItemOutcome, Job, JobStatus, RunItem, Source
from ingestion.pipeline.diff import LISTING_BATCH_SIZE
from ingestion.pipeline.outcome import SourceOutcome
from runs.context import RunContext


def expiry_min_ratio(source: Source) -> float:
    """The safety threshold: a source's own option, else INTAKE_EXPIRY_MIN_RATIO."""
    value = source.options.get("expiry_min_ratio")
    try:
        return float(value) if value is not None else settings.INTAKE_EXPIRY_MIN_RATIO
    except (TypeError, ValueError):
        return settings.INTAKE_EXPIRY_MIN_RATIO


def vanished_jobs(run_id: int, source_id: int) -> QuerySet[Job]:
    """The source's jobs, not expired, that run `run_id` did not list, in no order.

    Named by job: an external id alone is ambiguous when the source's rows name their own
    companies (one file's "7" may be two companies' jobs). Every item of a stored posting
    carries its job, and so does every new one in an ingest. (No NULL in the subquery: NOT
    IN over a NULL matches nothing.) By source alone, not owner, and unordered, the
    (source, status, id) index answers it without reading a job row (an ORDER BY id led the
    planner to the primary key, reading every row of the table)."""
    listed = RunItem.objects.filter(run_id=run_id, source_id=source_id, job__isnull=False)
    return (
        Job.objects.filter(source_id=source_id)
        .exclude(status=JobStatus.EXPIRED)
        .exclude(id__in=listed.values("job_id"))
        .order_by()
    )


def expire_vanished(ctx: RunContext, source: Source, outcome: SourceOutcome, *, write: bool) -> int:
    """Record (and with `write`, apply) the expiry of the source's jobs this run's listing did
    not name. Returns how many expired; sets `outcome.expiry_note` when it held back."""
    run = ctx.run
    if not outcome.complete:
        outcome.expiry_note = "not checked: the listing was not read completely"
        return 0
    # The few vanished ones checked to be the run's owner's (vanished_jobs does not read it).
    candidates = sorted(vanished_jobs(run.pk, source.pk).values_list("id", flat=True))
    ids = [
        pk
        for start in range(0, len(candidates), LISTING_BATCH_SIZE)
        for pk in Job.objects.filter(
            id__in=candidates[start : start + LISTING_BATCH_SIZE], owner_id=run.owner_id
        )
        .order_by("id")
        .values_list("id", flat=True)
    ]
    if not ids:
        return 0
    active = Job.objects.filter(source=source).exclude(status=JobStatus.EXPIRED).count()
    ratio = expiry_min_ratio(source)
    if outcome.valid_listed < active * ratio:
        outcome.expiry_note = (
            f"held back: {len(ids):,} jobs are no longer listed, but the source listed only "
            f"{outcome.valid_listed:,} postings against {active:,} active jobs (below the "
            f"{ratio:.0%} safety threshold). Nothing was expired; if the board really shrank, "
            "lower the threshold for this source."
        )
        ctx.event(
            "source.expiry_skipped",
            f"{outcome.label}: expiry {outcome.expiry_note}",
            {"sourceId": source.pk, "vanished": len(ids), "listed": outcome.valid_listed},
        )
        return 0

    now = timezone.now()
    for start in range(0, len(ids), LISTING_BATCH_SIZE):
        ctx.checkpoint()
        batch = ids[start : start + LISTING_BATCH_SIZE]
        with transaction.atomic():
            items = [
                store.ItemRow(
                    run_id=run.pk,
                    source_id=source.pk,
                    job_id=pk,
                    external_id=external_id,
                    title=title,
                    url=url,
                    row=None,
                    outcome=ItemOutcome.EXPIRED,
                    job_status=JobStatus.EXPIRED if write else "",
                    reason="no longer listed by the source",
                )
                for pk, external_id, title, url in Job.objects.filter(id__in=batch).values_list(
                    "id", "external_id", "title", "url"
                )
            ]
            store.insert_items(items)
            if write:
                Job.objects.filter(id__in=batch).exclude(status=JobStatus.EXPIRED).update(
                    status=JobStatus.EXPIRED, expired_at=now, last_run=run, updated_at=now
                )
                # An expired job is no longer anyone's canonical original.
                store.drop_fingerprints(batch)
                events.jobs_changed(
                    events.JOB_EXPIRED,
                    run_id=run.pk,
                    job_ids=batch,
                    status=JobStatus.EXPIRED,
                    sourceId=source.pk,
                )
            ctx.progress(
                increments={"expired": len(items)}, outcomes={ItemOutcome.EXPIRED: len(items)}
            )
    outcome.counts[ItemOutcome.EXPIRED] += len(ids)
    verb = "expired" if write else "would expire"
    ctx.event(
        "source.expired",
        f"{outcome.label}: {len(ids):,} jobs no longer listed {verb}",
        {"sourceId": source.pk, "expired": len(ids), "applied": write},
    )
    return len(ids)
