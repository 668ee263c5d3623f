"""Schedules: a selection of sources re-read every N hours or at the times of a cron
expression, started by the cron scheduler (docs/schedules.md). Thin handlers over
ingestion.schedules, the functions Configure and the admin use."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from django.http import HttpRequest, HttpResponse
from ninja import Query, Status
from pydantic import Field

from api.auth import user_of
from api.pagination import DEFAULT_LIMIT, MAX_LIMIT, id_page
from api.problems import Problem
from api.routing import api_router
from api.schemas import CamelSchema, ObjectId, StrictCamelSchema
from ingestion import schedules
from ingestion.models import Schedule

router = api_router(tags=["schedules"])


class ScheduleOptions(StrictCamelSchema):
    kind: Literal["ingest", "preview"] = "ingest"


class ScheduleOut(CamelSchema):
    id: int
    name: str
    source_ids: list[int]
    interval_hours: int | None
    cron: str | None
    options: dict[str, Any]
    enabled: bool
    next_run_at: datetime | None
    last_run_id: int | None
    last_fired_at: datetime | None
    last_outcome: str | None
    last_reason: str
    created_at: datetime | None
    updated_at: datetime | None


class ScheduleList(CamelSchema):
    items: list[ScheduleOut]
    next_cursor: str | None


class ScheduleCreate(StrictCamelSchema):
    source_ids: list[ObjectId] = Field(..., min_length=1, max_length=1000)
    interval_hours: int | None = Field(None, description="Every N hours (1-720); or `cron`.")
    cron: str = Field("", max_length=100, description="A five-field cron expression.")
    name: str = Field("", max_length=200)
    options: ScheduleOptions = Field(default_factory=ScheduleOptions)
    enabled: bool = True


class SchedulePatch(StrictCamelSchema):
    source_ids: list[ObjectId] | None = Field(None, min_length=1, max_length=1000)
    interval_hours: int | None = None
    cron: str | None = Field(None, max_length=100)
    name: str | None = Field(None, max_length=200)
    options: ScheduleOptions | None = None
    enabled: bool | None = None


class ScheduleFilters(CamelSchema):
    cursor: str | None = None
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)


def _refused(exc: schedules.ScheduleError) -> Problem:
    return Problem(422, str(exc), kind="validation-failed")


def _get(request: HttpRequest, schedule_id: int) -> Schedule:
    try:
        return schedules.schedule_for_owner(user_of(request), schedule_id)
    except Schedule.DoesNotExist:
        raise Problem(404, "No such schedule.", kind="not-found") from None


@router.get("", response=ScheduleList, summary="Your schedules")
def schedule_list(request: HttpRequest, filters: Query[ScheduleFilters]) -> Any:
    page = id_page(schedules.schedules_for_owner(user_of(request)), filters.cursor, filters.limit)
    return {"items": [s.snapshot() for s in page.rows], "next_cursor": page.next_cursor}


@router.post(
    "",
    response={201: ScheduleOut, 422: None},
    summary="Schedule sources: every N hours, or by a cron expression",
    description=(
        "Exactly one of `intervalHours` and `cron`. The cron scheduler starts the run when "
        "due; while your previous run is still active the start is skipped, with the reason "
        "in `lastReason`."
    ),
)
def schedule_create(request: HttpRequest, body: ScheduleCreate, response: HttpResponse) -> Any:
    try:
        schedule = schedules.schedule_create(
            owner=user_of(request),
            source_ids=body.source_ids,
            interval_hours=body.interval_hours,
            cron=body.cron,
            name=body.name,
            options=body.options.model_dump(),
            enabled=body.enabled,
        )
    except schedules.ScheduleError as exc:
        raise _refused(exc) from None
    response["Location"] = f"/api/v1/schedules/{schedule.pk}"
    return Status(201, _get(request, schedule.pk).snapshot())


@router.get("/{int:schedule_id}", response={200: ScheduleOut, 404: None}, summary="One schedule")
def schedule_detail(request: HttpRequest, schedule_id: int) -> Any:
    return _get(request, schedule_id).snapshot()


@router.patch(
    "/{int:schedule_id}",
    response={200: ScheduleOut, 404: None, 422: None},
    summary="Change a schedule's sources, timing, name, options or enabled flag",
)
def schedule_patch(request: HttpRequest, schedule_id: int, body: SchedulePatch) -> Any:
    schedule = _get(request, schedule_id)
    sent = body.model_dump(exclude_unset=True, by_alias=False)
    # null means "leave it" for every field but the interval, where it clears the timing
    # (to be replaced by a cron expression in the same request).
    sent = {k: v for k, v in sent.items() if v is not None or k == "interval_hours"}
    try:
        schedules.schedule_update(schedule, **sent)
    except schedules.ScheduleError as exc:
        raise _refused(exc) from None
    return _get(request, schedule_id).snapshot()


@router.delete("/{int:schedule_id}", response={204: None, 404: None}, summary="Delete a schedule")
def schedule_delete(request: HttpRequest, schedule_id: int) -> Any:
    schedules.schedule_delete(_get(request, schedule_id))
    return Status(204, None)
