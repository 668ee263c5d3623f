"""Narrow tables of per-job data, each keyed by its job: data written often (a last-seen stamp)
or probed often (the near-duplicate bands), kept out of the wide job row.

They name Job by its label ("ingestion.Job"), as Django's lazy relations allow, not by class:
Job's queryset reads JobSeen, so this module stands below Job's and imports nothing of it."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

# The key of a narrow table of per-job data: its job, deleted with it by Django and with no
# database constraint (one less check per row written).
_JOB_KEY: dict[str, Any] = {
    "on_delete": models.CASCADE,
    "primary_key": True,
    "db_constraint": False,
}


class JobSeen(models.Model):
    """When a listing last found a job unchanged: a narrow row of its own, not Job's
    `last_seen_at`. Stamping the wide job row rewrote the whole row (its texts inline) and an
    entry in each of its indexes for every unchanged posting of a re-run; this row is a few
    dozen bytes, updated in place (HOT: its only index is the key, and the table keeps room
    on each page for the new version).

    A job was last seen at the later of the two (`Job.objects.with_last_seen()`): the job's
    own `last_seen_at` is stamped whenever the listing writes the job (new, updated), this
    one when it finds it unchanged."""

    job = models.OneToOneField("ingestion.Job", related_name="seen", **_JOB_KEY)
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
    job = models.OneToOneField("ingestion.Job", related_name="fingerprint", **_JOB_KEY)
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
    # The job's company as near-duplicates compare it (ingestion.dedupe.company_key): last
    # in each band's index, so a probe reaches its own company's jobs alone, and, across
    # companies (INTAKE_DEDUPE_ACROSS_COMPANIES), all of the band's by the same index.
    company_key = models.IntegerField()

    class Meta:
        indexes = [
            models.Index(
                fields=["owner", f"band{band}", "company_key"],
                name=f"ingestion_fingerprint_b{band}_co",
            )
            for band in range(4)
        ]

    def __str__(self) -> str:
        return f"fingerprint of job #{self.job_id}"
