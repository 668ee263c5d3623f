"""The admin is a console: sources are edited through the services, runs started from
here go through the same code path as the pages and commands."""

from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest

from ingestion import services
from ingestion.models import Job, RawPayload, RunItem, Source, WorkChunk
from ingestion.normalize.employment import EMPLOYMENT_LABELS
from ingestion.normalize.workplace import WORKPLACE_LABELS
from project.paging import CappedCountPaginator
from runs.exceptions import RunError


class ChoicesFilter(admin.SimpleListFilter):
    """A filter over a field's known values. Django's default for a plain text field lists
    the DISTINCT values found in the table, a read of every row on each page load."""

    labels: dict[str, str] = {}

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return list(self.labels.items())

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        return queryset.filter(**{str(self.parameter_name): value}) if value else queryset


class WorkplaceFilter(ChoicesFilter):
    title = "workplace"
    parameter_name = "workplace_type"
    labels = WORKPLACE_LABELS


class EmploymentFilter(ChoicesFilter):
    title = "employment type"
    parameter_name = "employment_type"
    labels = EMPLOYMENT_LABELS


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "company",
        "kind",
        "identifier",
        "owner",
        "enabled",
        "last_fetched_at",
        "last_fetch_ok",
        "last_listed_count",
    )
    list_filter = ("kind", "enabled", "last_fetch_ok")
    search_fields = ("company", "identifier", "owner__username")
    list_select_related = ("owner",)
    raw_id_fields = ("owner",)
    readonly_fields = (
        "upload_name",
        "upload_format",
        "upload_size",
        "last_fetched_at",
        "last_fetch_ok",
        "last_fetch_error",
        "last_listed_count",
        "boilerplate",
        "created_at",
        "updated_at",
    )
    actions = ["preview_sources", "ingest_sources"]

    def _start(self, request: HttpRequest, queryset: QuerySet[Source], *, dry_run: bool) -> None:
        owners = {s.owner_id for s in queryset}
        if len(owners) != 1:
            self.message_user(request, "Select sources of one owner.", messages.ERROR)
            return
        source = queryset.first()
        assert source is not None
        ids = [s.pk for s in queryset]
        try:
            start = services.preview_start if dry_run else services.ingest_start
            run = start(owner=source.owner, source_ids=ids)
        except (services.SourceError, RunError) as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(request, f"Started run #{run.pk} ({run.kind}).")

    @admin.action(description="Preview selected sources (dry run)")
    def preview_sources(self, request: HttpRequest, queryset: QuerySet[Source]) -> None:
        self._start(request, queryset, dry_run=True)

    @admin.action(description="Ingest selected sources")
    def ingest_sources(self, request: HttpRequest, queryset: QuerySet[Source]) -> None:
        self._start(request, queryset, dry_run=False)


# Long texts (descriptions, raw HTML): most of a job's bytes, and none of the list's columns.
_JOB_TEXTS = [f.name for f in Job._meta.concrete_fields if isinstance(f, models.TextField)]


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("id", "title", "company", "status", "location", "posted_at", "last_seen_at")
    list_filter = ("status", "remote", WorkplaceFilter, EmploymentFilter)
    search_fields = ("title", "company", "external_id")
    list_select_related = ("source",)
    raw_id_fields = ("owner", "source", "duplicate_of", "last_run")
    readonly_fields = ("simhash", "content_hash", "created_at", "updated_at")
    # A table of millions of rows: newest first by the primary key's index (the model's
    # posted-date order is indexed per owner only), and counts that stop early.
    ordering = ("-id",)
    paginator = CappedCountPaginator
    show_full_result_count = False
    list_per_page = 50

    def get_queryset(self, request: HttpRequest) -> QuerySet[Job]:
        jobs = super().get_queryset(request)
        match = request.resolver_match
        if match is not None and match.url_name == "ingestion_job_changelist":
            # The list shows none of the texts, which are most of a row's bytes.
            return jobs.defer(*_JOB_TEXTS)
        return jobs


@admin.register(RunItem)
class RunItemAdmin(admin.ModelAdmin):
    list_display = ("id", "run", "source", "external_id", "title", "outcome", "job_status")
    list_filter = ("outcome", "job_status")
    search_fields = ("external_id", "title", "run__id")
    raw_id_fields = ("run", "source", "job")
    ordering = ("-id",)
    paginator = CappedCountPaginator
    show_full_result_count = False
    list_per_page = 50

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(RawPayload)
class RawPayloadAdmin(admin.ModelAdmin):
    list_display = ("id", "url", "status_code", "size", "truncated", "created_at")
    list_filter = ("status_code", "truncated")
    search_fields = ("url",)
    raw_id_fields = ("run", "source")
    exclude = ("body",)
    ordering = ("-id",)
    paginator = CappedCountPaginator
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(WorkChunk)
class WorkChunkAdmin(admin.ModelAdmin):
    list_display = ("id", "run", "number", "status", "claimed_by", "claimed_at", "done_at")
    list_filter = ("status",)
    raw_id_fields = ("run",)
    readonly_fields = ("job_ids",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
