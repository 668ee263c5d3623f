"""The run lifecycle's data: runs and their append-only events. Generic: nothing here knows
what a job posting is; the `jobs_*` counters are the snapshot the design asks every run to keep."""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q
from django.utils import timezone

from runs import executors


class RunStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    INITIALIZING = "initializing", "Initializing"
    INGESTING = "ingesting", "Ingesting"
    FINISHED = "finished", "Finished"
    ERROR = "error", "Error"
    ABORTED = "aborted", "Aborted"


ACTIVE_STATUSES = (RunStatus.PENDING, RunStatus.INITIALIZING, RunStatus.INGESTING)
RUNNING_STATUSES = (RunStatus.INITIALIZING, RunStatus.INGESTING)
TERMINAL_STATUSES = (RunStatus.FINISHED, RunStatus.ERROR, RunStatus.ABORTED)

# Snapshot counters, in the order they are shown. Keys are the field names; values the
# camelCase names the JSON Intake sends (events, the events endpoint, reports) use.
COUNT_FIELDS = {
    "jobs_new": "new",
    "jobs_updated": "updated",
    "jobs_ready": "ready",
    "jobs_skipped": "skipped",
    "jobs_expired": "expired",
    "jobs_failed": "failed",
}


class IngestionRun(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="runs"
    )
    # The apps declare the kinds (runs.executors.register): the choices are read from that
    # registry whenever they are needed, and no database constraint lists them, so a new
    # kind needs no migration.
    kind = models.CharField(max_length=executors.KIND_MAX_LENGTH, choices=executors.kind_choices)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.PENDING)
    config = models.JSONField(
        default=dict, blank=True, help_text="Sources and filters as they were."
    )
    preview = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="ingests"
    )

    total_jobs = models.PositiveIntegerField(default=0)
    items_done = models.PositiveIntegerField(default=0)
    jobs_new = models.PositiveIntegerField(default=0)
    jobs_updated = models.PositiveIntegerField(default=0)
    jobs_ready = models.PositiveIntegerField(default=0)
    jobs_skipped = models.PositiveIntegerField(default=0)
    jobs_expired = models.PositiveIntegerField(default=0)
    jobs_failed = models.PositiveIntegerField(default=0)
    # Items per outcome, in the executor's words (ingestion's new, updated, unchanged, …):
    # added to through run_update_progress(outcomes=…) as the outcomes are decided, so the
    # live counters and the results speak the same words.
    outcome_counts = models.JSONField(default=dict, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    abort_requested_at = models.DateTimeField(null=True, blank=True)
    # Set when a progress event is published: the throttle is shared by every worker of a run.
    progress_published_at = models.DateTimeField(null=True, blank=True)

    error_message = models.TextField(blank=True)
    # What the executor reports at the end beyond the counters (per-source outcome counts of
    # an ingestion run); shown on the run page and in its report.
    summary = models.JSONField(default=dict, blank=True)
    queue_job_ids = models.JSONField(default=list, blank=True)
    # NULL, not "", when absent: the unique constraint below must ignore runs without a key.
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    # A digest of the request that came with the idempotency key (the API's body): the same
    # key with another request is refused rather than answered with this run.
    request_fingerprint = models.CharField(max_length=64, blank=True)
    last_event_seq = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # The invariant "one active run per owner" lives here, so two concurrent starts
            # cannot both win whatever the code above does (runs.services.run_start relies on
            # the IntegrityError to report the winner).
            models.UniqueConstraint(
                fields=["owner"],
                condition=Q(status__in=[s.value for s in ACTIVE_STATUSES]),
                name="runs_ingestionrun_one_active_per_owner",
            ),
            # A repeated Idempotency-Key returns the same run (runs.services.run_start).
            models.UniqueConstraint(
                fields=["owner", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="runs_ingestionrun_idempotency_key",
            ),
            models.CheckConstraint(
                condition=Q(status__in=RunStatus.values), name="runs_ingestionrun_status_valid"
            ),
        ]
        indexes = [
            # The history page: a user's runs, newest first.
            models.Index(fields=["owner", "-created_at"], name="runs_ingestionrun_owner_recent"),
            # The reaper scans active runs only.
            models.Index(
                fields=["status", "heartbeat_at"],
                condition=Q(status__in=[s.value for s in ACTIVE_STATUSES]),
                name="runs_ingestionrun_active",
            ),
        ]

    def __str__(self) -> str:
        return f"Run #{self.pk} ({self.kind}, {self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def channel(self) -> str:
        return f"run-{self.pk}"

    @property
    def duration_seconds(self) -> float | None:
        if not self.started_at:
            return None
        from django.utils import timezone

        end = self.finished_at or timezone.now()
        return max(0.0, (end - self.started_at).total_seconds())

    @property
    def rate_per_second(self) -> float | None:
        """Items done per second since the run started (None before there is any)."""
        seconds = self.duration_seconds
        if not seconds or not self.items_done:
            return None
        return round(self.items_done / seconds, 1)

    @property
    def phase(self) -> str:
        """What the run is doing now, in words ("Listing sources", "Processing"), or how it
        ended ("Finished"): what the badge, the summary bar and the feed say."""
        return executors.phase(self.kind, self.status) or self.get_status_display()

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left at the current rate, once there is a total and a rate."""
        rate = self.rate_per_second
        if self.is_terminal or not rate or not self.total_jobs:
            return None
        return max(0.0, (self.total_jobs - self.items_done) / rate)

    @property
    def origin_label(self) -> str:
        """What started the run when its owner did not click (an app's schedule), in words
        ("schedule “Nightly”"), as the app that started it wrote `origin.label` into its
        config; "" for a run started by hand."""
        origin = self.config.get("origin") if isinstance(self.config, dict) else None
        label = origin.get("label") if isinstance(origin, dict) else ""
        return label if isinstance(label, str) else ""

    def counts(self) -> dict[str, int]:
        return {name: getattr(self, field) for field, name in COUNT_FIELDS.items()}

    def snapshot(self) -> dict[str, Any]:
        """The run's state as every event, the events endpoint and the report carry it
        (camelCase)."""

        def iso(value: Any) -> str | None:
            return value.isoformat() if value else None

        return {
            "id": self.pk,
            "kind": self.kind,
            "status": self.status,
            "phase": self.phase,
            "terminal": self.is_terminal,
            "totalJobs": self.total_jobs,
            "itemsDone": self.items_done,
            "ratePerSecond": self.rate_per_second,
            "etaSeconds": self.eta_seconds,
            "counts": self.counts(),
            "outcomes": dict(self.outcome_counts),
            "abortRequested": self.abort_requested_at is not None,
            "errorMessage": self.error_message,
            "createdAt": iso(self.created_at),
            "startedAt": iso(self.started_at),
            "finishedAt": iso(self.finished_at),
            "heartbeatAt": iso(self.heartbeat_at),
        }


class RunEvent(models.Model):
    """Append-only; written only by runs.transitions.publish_event. The page's feed, the SSE
    stream (runs.feed.RunEventStorage) and replay on reconnect all read these rows."""

    run = models.ForeignKey(IngestionRun, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField()
    type = models.CharField(max_length=64)
    message = models.TextField(blank=True)
    payload = models.JSONField(default=dict, blank=True)
    # The run's status and counts when the event was written: a late subscriber is correct
    # after one event.
    snapshot = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["run", "seq"], name="runs_runevent_seq_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.type} #{self.seq} of run {self.run_id}"

    def envelope(self) -> dict[str, Any]:
        """The JSON the SSE stream and the events endpoint send for this event."""
        return {
            "id": self.pk,
            "seq": self.seq,
            "runId": self.run_id,
            "type": self.type,
            "message": self.message,
            "payload": self.payload,
            "createdAt": self.created_at.isoformat() if self.created_at else None,
            "run": self.snapshot,
        }


class OutboxEvent(models.Model):
    """An event for programs outside Intake, written by runs.outbox.outbox_append in the same
    transaction as the change it announces, and published to the Redis Stream by the relay
    (runs.relay), which then sets `published_at`. Generic: the payload is the caller's."""

    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    event_type = models.CharField(max_length=64)
    event_version = models.PositiveSmallIntegerField(default=1)
    occurred_at = models.DateTimeField(default=timezone.now)
    # Not a foreign key: an event outlives the run it names (a deleted run's events are
    # still published), and the writers need no lock on the run's row for it.
    run_id = models.BigIntegerField(null=True, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            # The relay reads the unpublished rows in id order: a small index of just them.
            models.Index(
                fields=["id"],
                condition=Q(published_at__isnull=True),
                name="runs_outboxevent_unpublished",
            ),
            # The relay's pruning deletes published rows by age.
            models.Index(
                fields=["published_at"],
                condition=Q(published_at__isnull=False),
                name="runs_outboxevent_published",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"

    def envelope(self) -> dict[str, str]:
        """The stream entry's fields (camelCase; a stream entry holds strings: the payload is
        JSON text, a missing run id the empty string)."""
        return {
            "eventId": str(self.event_id),
            "eventType": self.event_type,
            "eventVersion": str(self.event_version),
            "occurredAt": self.occurred_at.isoformat(),
            "runId": "" if self.run_id is None else str(self.run_id),
            "payload": json.dumps(self.payload, cls=DjangoJSONEncoder, separators=(",", ":")),
        }
