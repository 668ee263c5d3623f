"""Sources, jobs, the per-posting items of a run, raw payloads and uploaded files.

Invariants live in the database: one job per (owner, company, external_id), one source per
(owner, kind, identifier), one item per (run, source, key)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce, Greatest

from ingestion.adapters import registry

# The kinds of ingestion.adapters.registry.KINDS, as stored (SourceKind.LEVER == "lever"): the
# choices and check constraint of Source.kind, so a new kind is a migration away.
SourceKind = models.TextChoices(  # type: ignore[call-overload]
    "SourceKind", [(e.kind.upper(), (e.kind, e.label)) for e in registry.KINDS]
)


class Source(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sources"
    )
    company = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=SourceKind.choices)
    # Board token (greenhouse), site (lever), organization slug (ashby), careers page URL
    # (jsonld), or the uploaded file's name (file, urls).
    identifier = models.CharField(max_length=500)
    # Adapter options, e.g. {"region": "eu"} for Lever's EU host.
    options = models.JSONField(default=dict, blank=True)

    # Filters, applied in preview and ingest.
    include_keywords = models.JSONField(default=list, blank=True)
    exclude_keywords = models.JSONField(default=list, blank=True)
    locations = models.JSONField(default=list, blank=True)
    remote_only = models.BooleanField(default=False)
    enabled = models.BooleanField(default=True)

    # Uploaded file (kinds that read an upload): stored in the database in upload parts
    # (UploadPart rows) so workers on other machines can read it and a large file is
    # streamed, never loaded whole.
    upload_name = models.CharField(max_length=255, blank=True)
    upload_format = models.CharField(max_length=8, blank=True)  # csv | json | jsonl
    upload_size = models.PositiveBigIntegerField(default=0)

    # Health: the last listing's outcome (shown on the Configure page; the expiry safety
    # threshold compares against last_listed_count).
    last_fetched_at = models.DateTimeField(null=True, blank=True)
    last_fetch_ok = models.BooleanField(null=True, blank=True)
    last_fetch_error = models.TextField(blank=True)
    last_listed_count = models.PositiveIntegerField(null=True, blank=True)
    # Listings that failed in a row (a complete one resets it). At INTAKE_SOURCE_PAUSE_AFTER
    # the source is paused: disabled, with the reason, until its user enables it again.
    failures_in_row = models.PositiveIntegerField(default=0)
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_reason = models.TextField(blank=True)
    # Fingerprints of paragraphs this company repeats across its postings (about us,
    # benefits): left out of the simhash so two roles are not near-duplicates because of it.
    boilerplate = models.JSONField(default=list, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["company", "kind", "id"]
        constraints = [
            # services.source_create reports a clash with a clear message; this decides races.
            models.UniqueConstraint(
                fields=["owner", "kind", "identifier"], name="ingestion_source_unique_identifier"
            ),
            models.CheckConstraint(
                condition=Q(kind__in=SourceKind.values), name="ingestion_source_kind_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.company} ({self.get_kind_display()}: {self.identifier})"

    def filters(self) -> dict:
        return {
            "include_keywords": list(self.include_keywords),
            "exclude_keywords": list(self.exclude_keywords),
            "locations": list(self.locations),
            "remote_only": self.remote_only,
        }


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


class UploadPart(models.Model):
    """One upload part (at most 1 MiB) of a source's uploaded file, read back in seq order."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="upload_parts")
    seq = models.PositiveIntegerField()
    data = models.BinaryField()

    class Meta:
        ordering = ["source", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["source", "seq"], name="ingestion_uploadpart_seq"),
        ]

    def __str__(self) -> str:
        return f"part {self.seq} of source {self.source_id}"


class JobStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    READY = "ready", "Ready"
    SKIPPED = "skipped", "Skipped"
    EXPIRED = "expired", "Expired"
    ERROR = "error", "Error"


class JobQuerySet(models.QuerySet["Job"]):
    def with_last_seen(self) -> JobQuerySet:
        """Each job with `last_seen`: when a listing last named it, the later of its own
        `last_seen_at` (stamped when the listing writes it) and its JobSeen row's (stamped
        when the listing finds it unchanged)."""
        # A subquery, not a join: PostgreSQL evaluates it for the rows a page shows, after
        # its LIMIT, and plans the filters as if it were not there (a LEFT JOIN made the
        # planner leave the trigram index for a scan of the owner's jobs).
        seen = JobSeen.objects.filter(job_id=OuterRef("pk")).values("last_seen_at")[:1]
        return self.annotate(
            last_seen=Greatest(F("last_seen_at"), Coalesce(Subquery(seen), F("last_seen_at")))
        )


class Job(models.Model):
    # No single-column indexes on owner, source and last_run: the composite indexes below
    # lead with each of them, and every index is one more write per upserted job.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    source = models.ForeignKey(
        Source,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="jobs",
        db_index=False,
    )
    company = models.CharField(max_length=200)
    external_id = models.CharField(max_length=255)
    url = models.URLField(max_length=2000, blank=True)
    title = models.CharField(max_length=500)
    location = models.CharField(max_length=500, blank=True)
    remote = models.BooleanField(null=True, blank=True)
    workplace_type = models.CharField(max_length=16, blank=True)  # remote | hybrid | onsite
    employment_type = models.CharField(max_length=32, blank=True)
    department = models.CharField(max_length=200, blank=True)
    # The listing's description as it came (unsanitized), kept only until the ingesting
    # stage has sanitized it into `description`; never shown.
    raw_description = models.TextField(blank=True)
    needs_detail = models.BooleanField(default=False)
    description = models.TextField(blank=True)  # sanitized HTML: safe to show
    description_text = models.TextField(blank=True)
    requirements = models.TextField(blank=True)
    posted_at = models.DateTimeField(null=True, blank=True)
    valid_through = models.DateTimeField(null=True, blank=True)
    salary_min = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    salary_max = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    salary_currency = models.CharField(max_length=3, blank=True)
    salary_period = models.CharField(max_length=8, blank=True)  # hour | day | week | month | year
    salary_text = models.CharField(max_length=200, blank=True)

    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.PENDING)
    # 64-bit simhash stored signed (bigint). A ready job's is also in JobFingerprint, with its
    # bands indexed for the near-duplicate lookup.
    simhash = models.BigIntegerField(null=True, blank=True)
    content_hash = models.CharField(max_length=32, blank=True)
    # A hash of the raw record (file row) the listing last read the job from, salted with
    # what else its reading depends on (ingestion.normalize.hashing.raw_hasher): equal on a
    # re-run means unchanged without parsing the row again. "" when the adapter gives none.
    raw_hash = models.CharField(max_length=32, blank=True)
    # Indexed only where set (see Meta.indexes): most jobs are nobody's duplicate.
    duplicate_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="duplicates",
        db_index=False,
    )

    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    expired_at = models.DateTimeField(null=True, blank=True)
    # Which run last wrote the job: informational, and written with every job of a run, so
    # no database constraint to check per row (see RunItem for why that is safe).
    last_run = models.ForeignKey(
        "runs.IngestionRun",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    error_message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-posted_at", "-id"]
        constraints = [
            # The upsert (ingestion.pipeline.upsert) conflicts on exactly these columns.
            models.UniqueConstraint(
                fields=["owner", "company", "external_id"], name="ingestion_job_key"
            ),
            models.CheckConstraint(
                condition=Q(status__in=JobStatus.values), name="ingestion_job_status_valid"
            ),
        ]
        indexes = [
            # A run's jobs by status (chunking, the run's items, retry failed).
            models.Index(fields=["last_run", "status"], name="ingestion_job_run_status"),
            # The pending work of a source, and expiry of a source's vanished jobs.
            models.Index(fields=["source", "status"], name="ingestion_job_source_status"),
            # A job's near-duplicates (its page; SET NULL when it is deleted).
            models.Index(
                fields=["duplicate_of"],
                name="ingestion_job_duplicate_of",
                condition=Q(duplicate_of__isnull=False),
            ),
            # The jobs list (ingestion.selectors.jobs_page) in its order, newest posting first:
            # page 1, posted-date ranges, and the search/location/remote filters that walk it
            # until a page is full. The list reads dated and undated jobs in two passes
            # (PostgreSQL puts NULLs first in a DESC index, SQLite last), so one definition
            # serves both databases.
            models.Index(fields=["owner", "-posted_at", "-id"], name="ingestion_job_owner_posted"),
            # The list filtered by status ("ready" is the usual view), in the same order.
            models.Index(
                fields=["owner", "status", "-posted_at", "-id"], name="ingestion_job_status_posted"
            ),
            # The list filtered by company (one board can hold 50,000 jobs) in the same order;
            # also the distinct companies of the filter's select, read from the index alone.
            models.Index(
                fields=["owner", "company", "-posted_at", "-id"],
                name="ingestion_job_company_posted",
            ),
            # The admin's job list (every owner's jobs, newest id first) filtered by one of its
            # fixed choices: without these a rare value walks the whole table for a page.
            models.Index(fields=["status", "id"], name="ingestion_job_admin_status"),
            models.Index(fields=["workplace_type", "id"], name="ingestion_job_admin_workplace"),
            models.Index(fields=["employment_type", "id"], name="ingestion_job_admin_employment"),
            models.Index(fields=["remote", "id"], name="ingestion_job_admin_remote"),
            # Not declared here: on PostgreSQL a trigram index on the search text
            # (selectors.SEARCH_TEXT; migration 0011), which SQLite cannot build.
        ]

    def __str__(self) -> str:
        return f"{self.title} at {self.company}"

    @property
    def seen_at(self) -> datetime:
        """When a listing last named the job (JobSeen): read with the job by
        `Job.objects.with_last_seen()`, else one query."""
        annotated: datetime | None = self.__dict__.get("last_seen")
        if annotated is not None:
            return annotated
        jobs = Job.objects.with_last_seen().filter(pk=self.pk)
        return jobs.values_list("last_seen", flat=True).first() or self.last_seen_at  # type: ignore[misc]


def _job_key(related_name: str) -> models.OneToOneField[Job, Job]:
    """The key of a narrow table of per-job data: its job, deleted with it by Django and with
    no database constraint (one less check per row written)."""
    return models.OneToOneField(
        Job,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name=related_name,
        db_constraint=False,
    )


class JobSeen(models.Model):
    """When a listing last found a job unchanged: a narrow row of its own, not Job's
    `last_seen_at`. Stamping the wide job row rewrote the whole row (its texts inline) and an
    entry in each of its indexes for every unchanged posting of a re-run; this row is a few
    dozen bytes, updated in place (HOT: its only index is the key, and the table keeps room
    on each page for the new version).

    A job was last seen at the later of the two (`Job.objects.with_last_seen()`): the job's
    own `last_seen_at` is stamped whenever the listing writes the job (new, updated), this
    one when it finds it unchanged."""

    job = _job_key("seen")
    last_seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"job #{self.job_id} seen {self.last_seen_at:%Y-%m-%d %H:%M}"


class JobFingerprint(models.Model):
    """A ready job's simhash and its four 16-bit bands, for the near-duplicate lookup
    (ingestion.dedupe): two simhashes within Hamming distance 3 agree on at least one band
    (pigeonhole), so the lookup is four indexed equality probes, never a scan.

    A narrow table of its own, not columns of Job: one company's postings share bands often
    (dozens of rows per probe), and each of those rows read here is ~60 bytes instead of a
    job's several KB of text. Written with the job's status by the ingesting stage; a row
    whose job is no longer ready (or has another simhash) is ignored by the lookup and
    removed when the job is processed again or expires."""

    # Derived data, deleted with the job by Django, and a row whose job is gone finds nothing
    # (the lookup reads the job): no constraints to check on every insert.
    job = _job_key("fingerprint")
    # The job's owner, so each probe stays within one owner's jobs.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    simhash = models.BigIntegerField()
    band0 = models.IntegerField()
    band1 = models.IntegerField()
    band2 = models.IntegerField()
    band3 = models.IntegerField()

    class Meta:
        indexes = [
            models.Index(fields=["owner", f"band{band}"], name=f"ingestion_fingerprint_band{band}")
            for band in range(4)
        ]

    def __str__(self) -> str:
        return f"fingerprint of job #{self.job_id}"


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
    source = models.ForeignKey(
        Source,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
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
            models.Index(fields=["run", "source", "id"], name="ingestion_runitem_source"),
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
