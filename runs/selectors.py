"""Reads of runs for views and commands. (The owner's active run is asked of
runs.stale.run_active_for_owner: it ends a stale one rather than report it.)"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
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


@dataclass(frozen=True)
class RunTotals:
    """What the runs of one (kind, status) add up to.

    `durations_at_most[i]`: how many of them ended within `bounds[i]` seconds of starting
    (cumulative); `durations_count` / `durations_seconds`: how many ended after starting, and
    their total duration. `outcomes`: items per outcome (the executor's words);
    `counters`: the snapshot counters (COUNT_FIELDS' names)."""

    runs: int
    durations_at_most: list[int]
    durations_count: int
    durations_seconds: float
    outcomes: dict[str, int]
    counters: dict[str, int]

    def __add__(self, other: RunTotals) -> RunTotals:
        return RunTotals(
            runs=self.runs + other.runs,
            durations_at_most=[
                a + b for a, b in zip(self.durations_at_most, other.durations_at_most, strict=True)
            ],
            durations_count=self.durations_count + other.durations_count,
            durations_seconds=self.durations_seconds + other.durations_seconds,
            outcomes={k: v + other.outcomes.get(k, 0) for k, v in self.outcomes.items()},
            counters={k: v + other.counters.get(k, 0) for k, v in self.counters.items()},
        )


def settled_runs(cutoff: datetime) -> Q:
    """Runs that ended before `cutoff`: their totals no longer change."""
    return Q(status__in=TERMINAL_STATUSES, finished_at__lte=cutoff)


def run_totals(
    *, bounds: Sequence[float], outcomes: Sequence[str], where: Q | None = None
) -> dict[tuple[str, str], RunTotals]:
    """Per (kind, status): the runs' count, duration histogram, outcome and counter sums, in
    one aggregate pass over the runs table (one row per run, never the per-item rows), so it
    costs the same however many postings the runs read. `outcomes` are the keys of
    IngestionRun.outcome_counts to sum (runs does not know an executor's words); `where`
    narrows the runs (settled_runs(), or its negation)."""
    duration = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    ended = Q(status__in=TERMINAL_STATUSES, started_at__isnull=False, finished_at__isnull=False)
    aggregates: dict[str, Any] = {
        "n": Count("id"),
        "ended": Count("id", filter=ended),
        "total": Sum("duration", filter=ended),
        **{
            f"le_{i}": Count("id", filter=ended & Q(duration__lte=timedelta(seconds=bound)))
            for i, bound in enumerate(bounds)
        },
        **{
            f"o_{i}": Sum(Cast(KT(f"outcome_counts__{name}"), BigIntegerField()))
            for i, name in enumerate(outcomes)
        },
        **{f"c_{name}": Sum(field) for field, name in COUNT_FIELDS.items()},
    }
    runs = IngestionRun.objects.filter(where) if where is not None else IngestionRun.objects
    rows = (
        runs.annotate(duration=duration).values("kind", "status").annotate(**aggregates).order_by()
    )
    result = {}
    for row in rows:
        total = row["total"]
        seconds = total.total_seconds() if isinstance(total, timedelta) else (total or 0) / 1e6
        result[(row["kind"], row["status"])] = RunTotals(
            runs=row["n"],
            durations_at_most=[row[f"le_{i}"] for i in range(len(bounds))],
            durations_count=row["ended"],
            durations_seconds=seconds,
            outcomes={name: row[f"o_{i}"] or 0 for i, name in enumerate(outcomes)},
            counters={name: row[f"c_{name}"] or 0 for name in COUNT_FIELDS.values()},
        )
    return result
