"""Sources: where an owner's postings are read from (a board, a careers page, an uploaded file),
and the parts of a source's uploaded file.

Invariant in the database: one source per (owner, kind, identifier)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

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
