"""What a run leaves besides jobs: an item per posting it read, the raw payloads it fetched, the
chunks its work was split into.

Invariant in the database: one item per (run, source, key)."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from ingestion.models.jobs import Job, JobStatus
from ingestion.models.sources import Source


class ItemOutcome(models.TextChoices):
    NEW = "new", "New"
    UPDATED = "updated", "Updated"
    UNCHANGED = "unchanged", "Unchanged"
    EXPIRED = "expired", "Expired"
    DUPLICATE = "duplicate", "Duplicate"
    FILTERED = "filtered", "Filtered"
    INVALID = "invalid", "Invalid"
    ERROR = "error", "Error"


class RunItem(models.Model):
    """One posting in one run: what the diff said of it (outcome) and, in an ingest, the job
    status it reached. The preview's diff table and a URL import's per-row status."""

    # A run writes an item per posting (50,000 in a large one), and a checked foreign key
    # costs a lookup per row at commit (a large share of PostgreSQL's CPU in an ingest:
    # docs/performance.md). The on_delete of those below is carried out by Django (every delete goes
    # through the ORM), so they are declared without a database constraint.
    # No single-column index on run: the (run, …) indexes below lead with it.
    run = models.ForeignKey(
        "runs.IngestionRun",
        on_delete=models.CASCADE,
        related_name="items",
        db_index=False,
        db_constraint=False,
    )
    # No single-column index on source: (source, run, …) below leads with it.
    source = models.ForeignKey(
        Source,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    # No single-column index on job: (job, run) below leads with it.
    job = models.ForeignKey(
        Job,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    external_id = models.CharField(max_length=255, blank=True)
    title = models.CharField(max_length=500, blank=True)
    url = models.CharField(max_length=2000, blank=True)
    # Row number in an uploaded file or URL list (1-based, header excluded), when it has one.
    row = models.PositiveIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=ItemOutcome.choices)
    job_status = models.CharField(max_length=16, choices=JobStatus.choices, blank=True)
    # Why: the duplicate's canonical job, the filter that dropped it, the invalid fields, the
    # error.
    reason = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(outcome__in=ItemOutcome.values), name="ingestion_runitem_outcome_valid"
            ),
        ]
        indexes = [
            # The diff table filtered by outcome (and paginated by id) on 50,000 items.
            models.Index(fields=["run", "outcome", "id"], name="ingestion_runitem_outcome"),
            # A run's items of one source (the diff table's source filter, a source's listing
            # counting and expiring its items). Leading with the source, it also serves the
            # SET NULL of a deleted source's items: one index written per item, not two.
            models.Index(fields=["source", "run", "id"], name="ingestion_runitem_source"),
            # The admin's outcome filter over every run: newest first, an outcome that is one
            # item in a thousand would read the whole table. Partial, so the outcomes most
            # items have cost an ingest no index write (and read fast without it).
            models.Index(
                fields=["outcome", "id"],
                name="ingestion_runitem_rare_outcome",
                condition=~Q(
                    outcome__in=[ItemOutcome.NEW, ItemOutcome.UPDATED, ItemOutcome.UNCHANGED]
                ),
            ),
            # A job's items in a run: the ingesting stage reads them with each pending job
            # (and writes the job's status back to them by id). Leading with the job, it also
            # serves the SET NULL of a deleted job's items; led by the run, a planner with
            # stale statistics took a single-column job index and filtered every item the job
            # ever had (one per run that listed it).
            models.Index(fields=["job", "run"], name="ingestion_runitem_job_run"),
        ]

    def __str__(self) -> str:
        return f"{self.outcome}: {self.external_id or self.url} (run {self.run_id})"


class RawPayload(models.Model):
    """The raw body of one fetch, capped (INTAKE_PAYLOAD_MAX_BYTES) with a truncated flag;
    deleted after INTAKE_PAYLOAD_TTL_DAYS by `manage.py cleanup_payloads`."""

    run = models.ForeignKey(
        "runs.IngestionRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source = models.ForeignKey(
        Source, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    url = models.CharField(max_length=2000)
    method = models.CharField(max_length=8, default="GET")
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    content_type = models.CharField(max_length=200, blank=True)
    size = models.PositiveBigIntegerField(default=0)  # decompressed bytes received
    body = models.BinaryField(blank=True)
    truncated = models.BooleanField(default=False)
    attempts = models.PositiveSmallIntegerField(default=1)
    duration_ms = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # /metrics counts the last hour's failed fetches at every scrape
            # (ingestion.selectors.fetch_errors_by_kind): only the failed ones are indexed,
            # a few among the many, so it reads those and not the hour's every fetch.
            models.Index(
                fields=["created_at"], condition=~Q(error=""), name="ingestion_rawpayload_errors"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.status_code or 'ERR'} {self.url}"


class ChunkStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    CLAIMED = "claimed", "Claimed"
    DONE = "done", "Done"


class WorkChunk(models.Model):
    """A slice of an ingest's pending jobs, processed by one RQ job (retried by RQ when its work
    horse dies: the retry claims it again and goes on from `done_count`). The worker that
    completes the last one finishes the run."""

    run = models.ForeignKey("runs.IngestionRun", on_delete=models.CASCADE, related_name="chunks")
    number = models.PositiveIntegerField()
    job_ids = models.JSONField(default=list)
    status = models.CharField(
        max_length=8, choices=ChunkStatus.choices, default=ChunkStatus.PENDING
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    # host:RQ worker name of the worker that claimed it (operators: which machine did what).
    claimed_by = models.CharField(max_length=200, blank=True)
    # How many of job_ids (in order) are processed and committed: each batch's transaction
    # moves it on from the value the batch started at, so a retried chunk (its work horse
    # died) resumes after the last committed batch and no batch is ever counted twice.
    done_count = models.PositiveIntegerField(default=0)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "number"]
        constraints = [
            models.UniqueConstraint(fields=["run", "number"], name="ingestion_workchunk_number"),
        ]

    def __str__(self) -> str:
        return f"chunk {self.number} of run {self.run_id} ({self.status})"
