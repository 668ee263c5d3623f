"""Jobs: an owner's postings, one row per (owner, company, external_id), and how a job's
last-seen stamp is read."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce, Greatest

from ingestion.models.job_tables import JobSeen
from ingestion.models.sources import Source


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
            # The pending work of a source, and expiry of a source's vanished jobs: with the
            # id, the expiry's anti-join reads this index alone, not every job row.
            models.Index(fields=["source", "status", "id"], name="ingestion_job_source_status"),
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
