"""The admin is a console: sources are edited through the services, runs started from
here go through the same code path as the pages and commands."""

from datetime import datetime
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.views.main import ChangeList
from django.db import models
from django.db.models import F, Q, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import smart_split, unescape_string_literal
from django.utils.translation import gettext

from ingestion import schedules, selectors, services
from ingestion.models import Job, RawPayload, RunItem, Schedule, Source, WorkChunk
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


class PausedFilter(admin.SimpleListFilter):
    title = "paused"
    parameter_name = "paused"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Paused"), ("no", "Not paused")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Source]) -> QuerySet[Source]:
        paused = Q(paused_at__isnull=False, enabled=False)
        if self.value() == "yes":
            return queryset.filter(paused)
        if self.value() == "no":
            return queryset.exclude(paused)
        return queryset


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "company",
        "kind",
        "identifier",
        "owner",
        "enabled",
        "paused",
        "last_fetched_at",
        "last_fetch_ok",
        "last_listed_count",
    )
    list_filter = ("kind", "enabled", "last_fetch_ok", PausedFilter)
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
        "failures_in_row",
        "paused_at",
        "paused_reason",
        "boilerplate",
        "created_at",
        "updated_at",
    )
    actions = ["preview_sources", "ingest_sources"]

    @admin.display(description="Paused", boolean=True)
    def paused(self, source: Source) -> bool:
        return source.paused_at is not None and not source.enabled

    def changeform_view(self, request: HttpRequest, object_id: str | None = None, *args, **kwargs):  # type: ignore[no-untyped-def]
        source = self.get_object(request, object_id) if object_id else None
        if source is not None and source.paused_at is not None and not source.enabled:
            # The same warning as Configure's: why it is disabled, and how it comes back.
            self.message_user(
                request,
                f"Paused {source.paused_at:%Y-%m-%d %H:%M}: {source.paused_reason} Tick "
                "Enabled and save to read it again.",
                messages.WARNING,
            )
        return super().changeform_view(request, object_id, *args, **kwargs)

    def save_model(self, request: HttpRequest, obj: Source, form: Any, change: bool) -> None:
        if change and "enabled" in form.changed_data:
            # Through the service: enabling a paused source forgives its failures.
            obj.enabled = not form.cleaned_data["enabled"]
            services.source_update(obj, enabled=form.cleaned_data["enabled"])
        super().save_model(request, obj, form, change)

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


def search_terms(search_term: str) -> list[str]:
    """The admin search box's terms as Django splits them (a quoted phrase is one term)."""
    terms = []
    for term in smart_split(search_term):
        if term[:1] in ('"', "'") and term[-1:] == term[:1]:
            term = unescape_string_literal(term)
        terms.append(term)
    return terms


class BigChangeList(ChangeList):
    def get_ordering_field(self, field_name: Any) -> Any:
        # A column outside sortable_by has no sort link, and a hand-written ?o= does not sort
        # by it either: Django checks sortable_by only when writing the headers.
        if self.sortable_by is not None and field_name not in self.sortable_by:
            return None
        return super().get_ordering_field(field_name)


class BigListAdmin(admin.ModelAdmin):
    """A list of a table of millions of rows."""

    # Sorted only by what an index reads in order: sorting a million rows by another column
    # reads and sorts them all for each page.
    sortable_by = ("id",)

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return BigChangeList

    @admin.display(description=mark_safe('<input type="checkbox" id="action-toggle">'))
    def action_checkbox(self, obj: Any) -> SafeString:
        # Django's markup, written directly: Django renders a form widget's template for
        # each row's checkbox, the largest share of a list page's CPU after the query.
        label = format_html(gettext("Select this object for an action - {}"), str(obj))
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="{}">',
            helpers.ACTION_CHECKBOX_NAME,
            obj.pk,
            label,
        )


# Long texts (descriptions, raw HTML): most of a job's bytes, and none of the list's columns.
_JOB_TEXTS = [f.name for f in Job._meta.concrete_fields if isinstance(f, models.TextField)]


@admin.register(Job)
class JobAdmin(BigListAdmin):
    list_display = ("id", "title", "company", "status", "location", "posted_at", "last_seen")
    list_filter = ("status", "remote", WorkplaceFilter, EmploymentFilter)
    # Searched as one text (get_search_results), with the location.
    search_fields = ("title", "company", "external_id")
    raw_id_fields = ("owner", "source", "duplicate_of", "last_run")
    readonly_fields = ("simhash", "content_hash", "last_seen", "created_at", "updated_at")
    # A table of millions of rows: newest first by the primary key's index (the model's
    # posted-date order is indexed per owner only), and counts that stop early.
    ordering = ("-id",)
    paginator = CappedCountPaginator
    show_full_result_count = False
    list_per_page = 50

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Job], search_term: str
    ) -> tuple[QuerySet[Job], bool]:
        # Django's search is an icontains per column and term, which reads every row of the
        # table for a rare term; the jobs list's search text (every search field) is one
        # LIKE per term, which PostgreSQL's trigram index answers. Terms as Django splits them.
        return selectors.with_search_words(queryset, search_terms(search_term)), False

    @admin.display(description="last seen")
    def last_seen(self, job: Job) -> datetime:
        # The job row's last_seen_at is only when a listing last wrote it (JobSeen).
        return job.seen_at

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return JobChangeList

    def get_queryset(self, request: HttpRequest) -> QuerySet[Job]:
        jobs = super().get_queryset(request)
        match = request.resolver_match
        if match is not None and match.url_name == "ingestion_job_changelist":
            # The list shows none of the texts, which are most of a row's bytes; its rows'
            # last-seen stamps are read for the page alone (JobChangeList).
            return jobs.defer(*_JOB_TEXTS)
        return jobs.with_last_seen()  # type: ignore[attr-defined]


class JobChangeList(BigChangeList):
    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        # One query for the page's stamps: annotated on the list's query, PostgreSQL reads
        # one for every row it passes before the LIMIT, the OFFSET's too.
        self.result_list = selectors.with_seen(list(self.result_list))


# How many of the newest run items a search of all runs reads: a large run's.
RUN_ITEM_SEARCH_WINDOW = 50_000
RUN_ITEM_SEARCH_TEXT = selectors.Spaced(F("external_id"), F("title"))


@admin.register(RunItem)
class RunItemAdmin(BigListAdmin):
    list_display = ("id", "run", "source", "external_id", "title", "outcome", "job_status")
    list_filter = ("outcome", "job_status")
    # Searched by get_search_results: no index holds these texts (one more write per posting
    # in every ingest), so a search reads rows, never more than one run's or the newest
    # RUN_ITEM_SEARCH_WINDOW.
    search_fields = ("external_id", "title", "run__id")
    search_help_text = (
        "Words of the external id or title, or a run's number: in the newest "
        f"{RUN_ITEM_SEARCH_WINDOW:,} items, or in all of one run's when the list shows one "
        "run (a run's Items link)."
    )
    # One join for the run and source columns; left to Django, a nullable source is read
    # again for every row.
    list_select_related = ("run", "source")
    raw_id_fields = ("run", "source", "job")
    ordering = ("-id",)
    paginator = CappedCountPaginator
    show_full_result_count = False
    list_per_page = 50

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[RunItem], search_term: str
    ) -> tuple[QuerySet[RunItem], bool]:
        terms = search_terms(search_term)
        if not terms:
            return queryset, False
        if not any(key.split("__")[0] == "run" for key in request.GET):
            # Not narrowed to a run (whose items its index finds): the newest items only, a
            # range of the primary key, rather than a read of every item ever written.
            newest = RunItem.objects.order_by("-id").values_list("id", flat=True).first() or 0
            queryset = queryset.filter(id__gt=newest - RUN_ITEM_SEARCH_WINDOW)
        # One text, one LIKE per term and row: a read of the window costs half of an OR.
        queryset = queryset.alias(search_text=RUN_ITEM_SEARCH_TEXT)
        for term in terms:
            match = Q(search_text__icontains=term)
            if term.isdigit():
                match |= Q(run_id=int(term))
            queryset = queryset.filter(match)
        return queryset, False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(RawPayload)
class RawPayloadAdmin(BigListAdmin):
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


class ScheduleForm(forms.ModelForm):
    """The admin's form validates as the pages and the API do (ingestion.schedules)."""

    class Meta:
        model = Schedule
        fields = ("owner", "name", "sources", "interval_hours", "cron", "options", "enabled")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        try:
            data["interval_hours"], data["cron"] = schedules.clean_timing(
                data.get("interval_hours"), data.get("cron") or ""
            )
            data["options"] = schedules.clean_options(data.get("options") or {})
        except schedules.ScheduleError as exc:
            raise forms.ValidationError(str(exc)) from None
        owner = data.get("owner") or (self.instance.owner if self.instance.pk else None)
        name = data.get("name")
        # The owner is read-only on a change, so Django's own check of the constraint skips it.
        taken = Schedule.objects.filter(owner=owner, name=name).exclude(pk=self.instance.pk)
        if owner and name and taken.exists():
            raise forms.ValidationError(f"{owner} already has a schedule named {name!r}.")
        foreign = [s for s in data.get("sources") or () if owner and s.owner_id != owner.pk]
        if foreign:
            raise forms.ValidationError("A schedule's sources must be its owner's.")
        return data


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    form = ScheduleForm
    list_display = (
        "id",
        "name",
        "owner",
        "timing_text",
        "enabled",
        "next_run_at",
        "last_outcome",
        "last_run",
        "last_fired_at",
    )
    list_filter = ("enabled", "last_outcome")
    search_fields = ("name", "owner__username")
    list_select_related = ("owner", "last_run")
    raw_id_fields = ("owner", "sources")
    readonly_fields = (
        "next_run_at",
        "last_run",
        "last_fired_at",
        "last_outcome",
        "last_reason",
        "created_at",
        "updated_at",
    )
    actions = ["enable", "disable"]

    def get_readonly_fields(self, request: HttpRequest, obj: Schedule | None = None) -> Any:
        # A schedule's sources are its owner's: another owner is another schedule.
        return (*self.readonly_fields, "owner") if obj else self.readonly_fields

    def save_model(self, request: HttpRequest, obj: Schedule, form: Any, change: bool) -> None:
        # Through the services, as on Configure and in the API; the sources are set after.
        data = form.cleaned_data
        fields = {
            "name": data["name"],
            "interval_hours": data["interval_hours"],
            "cron": data["cron"],
            "options": data["options"],
            "enabled": data["enabled"],
        }
        ids = [s.pk for s in data["sources"]]
        if change:
            current = Schedule.objects.get(pk=obj.pk)
            retime = (current.interval_hours, current.cron) != (obj.interval_hours, obj.cron)
            if not retime:  # an unchanged timing keeps its next run
                del fields["interval_hours"], fields["cron"]
            schedules.schedule_update(current, source_ids=ids, **fields)
            obj.pk = current.pk
        else:
            created = schedules.schedule_create(owner=data["owner"], source_ids=ids, **fields)
            obj.pk = created.pk
        obj.refresh_from_db()

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        pass  # the services set the sources

    @admin.action(description="Enable selected schedules")
    def enable(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        for schedule in queryset:
            schedules.schedule_update(schedule, enabled=True)

    @admin.action(description="Disable selected schedules")
    def disable(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        for schedule in queryset:
            schedules.schedule_update(schedule, enabled=False)
