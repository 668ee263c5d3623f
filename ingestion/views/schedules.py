"""Schedules on Configure: "Schedule these sources" for the ticked selection, and the list of
the owner's schedules with enable/disable and delete. Thin: ingestion.schedules does the
work (the admin and the API call the same functions)."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from ingestion import schedules
from ingestion.models import Schedule
from ingestion.views.common import HtmxHttpRequest, owner_of
from project.params import ParamError, Params

TIMINGS = ("hours", "cron")


def list_context(owner: User) -> dict[str, object]:
    """What the schedules region of Configure shows."""
    return {
        "schedules": list(schedules.schedules_for_owner(owner)),
        "schedule_kinds": schedules.RUN_KINDS,
        "interval_max": schedules.INTERVAL_HOURS_MAX,
        "time_zone": settings.TIME_ZONE,
    }


def _get_schedule_for_user(request: HtmxHttpRequest, schedule_id: int) -> Schedule:
    try:
        return schedules.schedule_for_owner(owner_of(request), schedule_id)
    except Schedule.DoesNotExist:
        raise Http404("No such schedule.") from None


def _answer(request: HtmxHttpRequest, text: str, *, error: bool = False) -> HttpResponse:
    """htmx: the schedules region again, saying `text`; a browser: back to Configure."""
    if not request.htmx:
        (messages.error if error else messages.success)(request, text)
        return redirect("ingestion:configure")
    context = {**list_context(owner_of(request)), "schedule_status": text, "schedule_error": error}
    return render(request, "ingestion/configure.html#schedule-list", context)


@login_required
@require_POST
def schedule_create(request: HtmxHttpRequest) -> HttpResponse:
    params = Params(request.POST, strict=True)
    try:
        timing = params.choice("timing", TIMINGS, default="hours")
        every = params.text("every_hours", max_length=20)
        schedule = schedules.schedule_create(
            owner=owner_of(request),
            source_ids=params.ids("source"),
            interval_hours=every if timing == "hours" else None,
            cron=params.text("cron", max_length=schedules.CRON_MAX + 50)
            if timing == "cron"
            else "",
            name=params.text("schedule_name", max_length=schedules.NAME_MAX),
            options={"kind": params.choice("schedule_kind", schedules.RUN_KINDS, default="ingest")},
        )
    except (schedules.ScheduleError, ParamError) as exc:
        return _answer(request, f"Not scheduled: {exc}", error=True)
    when = schedule.next_run_at.strftime("%Y-%m-%d %H:%M %Z")
    return _answer(request, f"Scheduled {schedule.name}; its first run is at {when}.")


@login_required
@require_POST
def schedule_toggle(request: HtmxHttpRequest, schedule_id: int) -> HttpResponse:
    schedule = _get_schedule_for_user(request, schedule_id)
    schedules.schedule_update(schedule, enabled=not schedule.enabled)
    state = "Enabled" if schedule.enabled else "Disabled"
    return _answer(request, f"{state} schedule {schedule.name}.")


@login_required
@require_POST
def schedule_delete(request: HtmxHttpRequest, schedule_id: int) -> HttpResponse:
    schedule = _get_schedule_for_user(request, schedule_id)
    name = schedule.name
    schedules.schedule_delete(schedule)
    return _answer(request, f"Deleted schedule {name}; the runs it started are kept.")
