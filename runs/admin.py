from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from runs import services
from runs.exceptions import RunNotActive
from runs.models import IngestionRun, RunEvent


class RunEventInline(admin.TabularInline):
    model = RunEvent
    fields = ("seq", "type", "message", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("-seq",)
    max_num = 0
    show_change_link = True


@admin.register(IngestionRun)
class IngestionRunAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "owner",
        "kind",
        "status",
        "phase",
        "items_done",
        "total_jobs",
        "created_at",
        "finished_at",
        "items",
    )
    list_filter = ("status", "kind")
    search_fields = ("id", "owner__username", "idempotency_key")
    list_select_related = ("owner",)
    raw_id_fields = ("owner", "preview")
    date_hierarchy = "created_at"
    actions = ["abort_runs"]
    inlines = [RunEventInline]
    # The lifecycle moves only through runs.services; the admin shows it, never edits it.
    readonly_fields = (
        "items",
        "kind",
        "status",
        "owner",
        "preview",
        "config",
        "total_jobs",
        "items_done",
        "jobs_new",
        "jobs_updated",
        "jobs_ready",
        "jobs_skipped",
        "jobs_expired",
        "jobs_failed",
        "outcome_counts",
        "created_at",
        "started_at",
        "finished_at",
        "heartbeat_at",
        "abort_requested_at",
        "progress_published_at",
        "error_message",
        "summary",
        "queue_job_ids",
        "idempotency_key",
        "last_event_seq",
    )

    @admin.display(description="Phase")
    def phase(self, run: IngestionRun) -> str:
        return run.phase

    @admin.display(description="Items")
    def items(self, run: IngestionRun) -> SafeString:
        # The run item list narrowed to this run: read through its index, searched in full.
        url = reverse("admin:ingestion_runitem_changelist")
        return format_html('<a href="{}?run__id__exact={}">items</a>', url, run.pk)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # runs start through the pages or `manage.py`, never a bare row

    @admin.action(description="Abort selected runs")
    def abort_runs(self, request: HttpRequest, queryset: QuerySet[IngestionRun]) -> None:
        for run in queryset:
            try:
                services.run_request_abort(run)
            except RunNotActive as exc:
                self.message_user(request, str(exc), messages.WARNING)
            else:
                self.message_user(request, f"Abort requested for run #{run.pk} ({run.status}).")


@admin.register(RunEvent)
class RunEventAdmin(admin.ModelAdmin):
    list_display = ("id", "run", "seq", "type", "message", "created_at")
    list_filter = ("type",)
    list_select_related = ("run",)
    raw_id_fields = ("run",)
    search_fields = ("run__id", "type", "message")
    readonly_fields = ("run", "seq", "type", "message", "payload", "snapshot", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # events are append-only, written by runs.transitions.publish_event

    def has_change_permission(self, request: HttpRequest, obj: RunEvent | None = None) -> bool:
        return False
