"""Reads for pages, commands and the API."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db.models import Count, QuerySet

from ingestion.models import ItemOutcome, Job, JobStatus, RunItem, Source
from runs.models import IngestionRun


def sources_for_owner(owner: User) -> QuerySet[Source]:
    return Source.objects.filter(owner=owner).annotate(job_count=Count("jobs"))


def outcome_counts(run: IngestionRun) -> dict[str, int]:
    """Items of the run per outcome (every outcome present, zero when none)."""
    counts = dict.fromkeys(ItemOutcome.values, 0)
    for row in RunItem.objects.filter(run=run).values("outcome").annotate(n=Count("id")):
        counts[row["outcome"]] = row["n"]
    return counts


def outcome_counts_by_source(run: IngestionRun) -> dict[int | None, dict[str, int]]:
    result: dict[int | None, dict[str, int]] = {}
    rows = RunItem.objects.filter(run=run).values("source_id", "outcome").annotate(n=Count("id"))
    for row in rows:
        per = result.setdefault(row["source_id"], dict.fromkeys(ItemOutcome.values, 0))
        per[row["outcome"]] = row["n"]
    return result


def failed_job_count(run: IngestionRun) -> int:
    """Jobs that ended in error in this run (what "Retry failed" would retry)."""
    return Job.objects.filter(owner_id=run.owner_id, last_run=run, status=JobStatus.ERROR).count()
