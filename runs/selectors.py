"""Reads of runs for views and commands. (The owner's active run is asked of
runs.services.run_active_for_owner: it ends a stale one rather than report it.)"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db.models import (
    BigIntegerField,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    Q,
    QuerySet,
    Sum,
)
from django.db.models.fields.json import KT
from django.db.models.functions import Cast

from runs.models import COUNT_FIELDS, TERMINAL_STATUSES, IngestionRun


def runs_for_owner(
    owner: User, *, status: str | None = None, kind: str | None = None
) -> QuerySet[IngestionRun]:
    runs = IngestionRun.objects.filter(owner=owner).order_by("-created_at", "-id")
    if status:
        runs = runs.filter(status=status)
    if kind:
        runs = runs.filter(kind=kind)
    return runs


# --- Operators' counts (/metrics) -----------------------------------------------------------
# Each is one aggregate query over the runs table (one row per run, never the per-item rows),
# so a scrape costs the same however many postings the runs read.


def run_counts() -> dict[tuple[str, str], int]:
    """Runs per (kind, status)."""
    rows = IngestionRun.objects.values("kind", "status").annotate(n=Count("id")).order_by()
    return {(row["kind"], row["status"]): row["n"] for row in rows}


@dataclass(frozen=True)
class DurationHistogram:
    """Ended runs' durations (started_at to finished_at): how many took at most each bound
    (cumulative, in the order of the bounds), how many in all, and their total seconds."""

    at_most: list[int]
    count: int
    total_seconds: float


def run_durations(bounds: Sequence[float]) -> dict[tuple[str, str], DurationHistogram]:
    """Duration histograms of the ended runs that started, per (kind, status), counted by
    the database in one pass."""
    duration = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    buckets = {
        f"le_{i}": Count("id", filter=Q(duration__lte=timedelta(seconds=bound)))
        for i, bound in enumerate(bounds)
    }
    rows = (
        IngestionRun.objects.filter(
            status__in=TERMINAL_STATUSES, started_at__isnull=False, finished_at__isnull=False
        )
        .annotate(duration=duration)
        .values("kind", "status")
        .annotate(n=Count("id"), total=Sum("duration"), **buckets)
        .order_by()
    )
    result = {}
    for row in rows:
        total = row["total"]
        seconds = total.total_seconds() if isinstance(total, timedelta) else (total or 0) / 1e6
        result[(row["kind"], row["status"])] = DurationHistogram(
            at_most=[row[f"le_{i}"] for i in range(len(bounds))],
            count=row["n"],
            total_seconds=seconds,
        )
    return result


def run_outcome_totals(outcomes: Sequence[str]) -> dict[tuple[str, str], int]:
    """Items per (kind, outcome), summed over every run's outcome counts (the executor's
    words, hence given by the caller) and its snapshot counters (COUNT_FIELDS' names)."""
    sums: dict[str, Any] = {
        f"o_{i}": Sum(Cast(KT(f"outcome_counts__{name}"), BigIntegerField()))
        for i, name in enumerate(outcomes)
    }
    rows = IngestionRun.objects.values("kind").annotate(**sums).order_by()
    return {
        (row["kind"], name): row[f"o_{i}"] or 0 for row in rows for i, name in enumerate(outcomes)
    }


def run_job_totals() -> dict[tuple[str, str], int]:
    """The snapshot counters (new, updated, ready, skipped, expired, failed) summed per
    (kind, counter)."""
    rows = (
        IngestionRun.objects.values("kind")
        .annotate(**{name: Sum(field) for field, name in COUNT_FIELDS.items()})
        .order_by()
    )
    return {(row["kind"], name): row[name] or 0 for row in rows for name in COUNT_FIELDS.values()}
