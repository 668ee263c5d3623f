"""Schedules: a selection of sources read again without anyone clicking."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q

from ingestion.models.sources import Source


class ScheduleOutcome(models.TextChoices):
    STARTED = "started", "Started"
    SKIPPED = "skipped", "Skipped"
    FAILED = "failed", "Failed"


class Schedule(models.Model):
    """A selection of sources read again without anyone clicking: every `interval_hours`, or
    at the times of a cron expression (in TIME_ZONE). The cron process's tick
    (ingestion.schedules.schedules_run_due) starts the run through the stepper's services."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="schedules"
    )
    name = models.CharField(max_length=200)
    sources = models.ManyToManyField(Source, related_name="schedules")
    interval_hours = models.PositiveIntegerField(null=True, blank=True)
    cron = models.CharField(max_length=100, blank=True)
    # The run options: {"kind": "ingest" | "preview"} (ingestion.schedules.clean_options).
    options = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    # The tick claims a due schedule by moving this on with a conditional UPDATE (from the
    # value it read): of two schedulers, one moves it and starts the run, the other finds 0 rows.
    next_run_at = models.DateTimeField()
    last_run = models.ForeignKey(
        "runs.IngestionRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_fired_at = models.DateTimeField(null=True, blank=True)
    last_outcome = models.CharField(max_length=8, choices=ScheduleOutcome.choices, blank=True)
    # Why the last time due started nothing (the previous run still active, every source
    # paused, the quota), or what failed.
    last_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            # ingestion.schedules reports a clash with a clear message; this decides races.
            models.UniqueConstraint(fields=["owner", "name"], name="ingestion_schedule_name"),
            # Exactly one of the two timings (schedule_create validates both before this).
            models.CheckConstraint(
                condition=(Q(interval_hours__isnull=False) & Q(cron=""))
                | (Q(interval_hours__isnull=True) & ~Q(cron="")),
                name="ingestion_schedule_one_timing",
            ),
            models.CheckConstraint(
                condition=Q(last_outcome__in=["", *ScheduleOutcome.values]),
                name="ingestion_schedule_outcome_valid",
            ),
        ]
        indexes = [
            # The tick's scan: enabled schedules by due time.
            models.Index(
                fields=["next_run_at"],
                condition=Q(enabled=True),
                name="ingestion_schedule_due",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.timing_text})"

    def snapshot(self) -> dict[str, Any]:
        """The schedule as JSON speaks of it (camelCase, as IngestionRun.snapshot): for the
        API. Its sources are read from the prefetch when there is one."""

        def iso(value: Any) -> str | None:
            return value.isoformat() if value else None

        return {
            "id": self.pk,
            "name": self.name,
            "sourceIds": sorted(source.pk for source in self.sources.all()),
            "intervalHours": self.interval_hours,
            "cron": self.cron or None,
            "options": dict(self.options),
            "enabled": self.enabled,
            "nextRunAt": iso(self.next_run_at),
            "lastRunId": self.last_run_id,
            "lastFiredAt": iso(self.last_fired_at),
            "lastOutcome": self.last_outcome or None,
            "lastReason": self.last_reason,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
        }

    @property
    def timing_text(self) -> str:
        if self.interval_hours:
            hours = self.interval_hours
            return "every hour" if hours == 1 else f"every {hours} hours"
        return f"cron {self.cron}"
