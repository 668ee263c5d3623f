"""Schedules: a selection of sources read again every N hours or at the times of a cron
expression, without anyone clicking. Writes and reads for the pages, the admin and the API
(one code path per action), and the cron tick that starts what is due.

The tick (`schedules_run_due`, queued every minute by `manage.py cron`, project/cron.py)
claims each due schedule with a conditional UPDATE of its `next_run_at` from the value it
read, so two schedulers (or a tick queued twice) start a schedule once. It starts the run
through the stepper's own services (services.ingest_start / preview_start); when the owner's
previous run is still active the schedule is skipped with the reason recorded, never stacked
behind it."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from croniter import croniter
from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from ingestion import run_kinds, services
from ingestion.models import Schedule, ScheduleOutcome, Source
from runs import stale
from runs.exceptions import RunError, RunInProgress
from runs.models import IngestionRun

logger = logging.getLogger(__name__)

# "Every N hours": from one hour to thirty days.
INTERVAL_HOURS_MAX = 30 * 24
# Run options a schedule keeps, with their defaults (what the stepper's buttons choose).
RUN_KINDS = (run_kinds.INGEST, run_kinds.PREVIEW)
DEFAULT_OPTIONS: dict[str, Any] = {"kind": run_kinds.INGEST}
NAME_MAX = 200
CRON_MAX = 100


class ScheduleError(ValueError):
    """A schedule could not be created or changed; the message says why, for the user."""


# --- validation -------------------------------------------------------------------------------


def clean_interval(value: object) -> int:
    """Whole hours from 1 to INTERVAL_HOURS_MAX (an int, or its text from a form or JSON)."""
    text = str(value).strip()
    if isinstance(value, bool) or not text.isascii() or not text.isdigit() or len(text) > 6:
        raise ScheduleError(
            f"Every how many hours: a whole number from 1 to {INTERVAL_HOURS_MAX}, not {text!r}."
        )
    hours = int(text)
    if not 1 <= hours <= INTERVAL_HOURS_MAX:
        raise ScheduleError(
            f"Every how many hours: a whole number from 1 to {INTERVAL_HOURS_MAX}, not {hours}."
        )
    return hours


def clean_cron(value: str) -> str:
    """A standard five-field cron expression (minute hour day-of-month month day-of-week),
    with its fields separated by single spaces."""
    expression = " ".join(str(value).split())
    if not expression:
        raise ScheduleError("Give a cron expression, such as '0 */6 * * *' (every 6 hours).")
    if len(expression) > CRON_MAX or not expression.isascii():
        raise ScheduleError(f"A cron expression is at most {CRON_MAX} plain characters.")
    fields = expression.split(" ")
    if len(fields) != 5:
        raise ScheduleError(
            f"A cron expression has five fields (minute hour day month weekday), not "
            f"{len(fields)}: {expression!r}."
        )
    if not croniter.is_valid(expression):
        raise ScheduleError(
            f"{expression!r} is not a valid cron expression (minute 0-59, hour 0-23, day "
            "1-31, month 1-12, weekday 0-6; * , - / allowed)."
        )
    try:
        croniter(expression, timezone.now()).get_next(datetime)
    except (ValueError, KeyError, OverflowError) as exc:  # e.g. 31 February: it never comes
        raise ScheduleError(f"{expression!r} never comes round: {exc}.") from None
    return expression


def clean_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The run options a schedule keeps: `kind` ("ingest", the default, or "preview")."""
    cleaned = dict(DEFAULT_OPTIONS)
    if options is None:
        return cleaned
    if not isinstance(options, Mapping):
        raise ScheduleError("Options must be an object such as {'kind': 'ingest'}.")
    unknown = sorted(str(key) for key in options if key not in DEFAULT_OPTIONS)
    if unknown:
        raise ScheduleError(f"Unknown schedule options: {', '.join(unknown)}.")
    kind = options.get("kind", cleaned["kind"])
    if kind not in RUN_KINDS:
        raise ScheduleError(f"A schedule starts an {' or a '.join(RUN_KINDS)}, not {kind!r}.")
    cleaned["kind"] = kind
    return cleaned


def clean_timing(interval_hours: object, cron: str) -> tuple[int | None, str]:
    """(interval_hours, cron) with exactly one of them given and valid, the other empty."""
    has_interval = interval_hours not in (None, "")
    has_cron = bool(str(cron or "").strip())
    if has_interval == has_cron:
        raise ScheduleError(
            "Choose either every N hours or a cron expression"
            + (", not both." if has_interval else ".")
        )
    if has_interval:
        return clean_interval(interval_hours), ""
    return None, clean_cron(cron)


def _clean_name(name: str, *, default: str) -> str:
    name = " ".join(str(name or "").split())[:NAME_MAX]
    return name or default


def _owned_sources(owner: User, source_ids: Iterable[int]) -> list[Source]:
    try:
        return services.select_sources(owner, list(source_ids))
    except (services.SourceError, TypeError, ValueError) as exc:
        message = str(exc) if isinstance(exc, services.SourceError) else "Invalid source ids."
        raise ScheduleError(message) from None


# --- timing -----------------------------------------------------------------------------------


def next_run_after(schedule: Schedule, after: datetime) -> datetime:
    """The schedule's first time strictly after `after`: the next of its cron expression (in
    TIME_ZONE), or `after` plus its interval."""
    if schedule.interval_hours:
        return after + timedelta(hours=schedule.interval_hours)
    local = timezone.localtime(after)
    return croniter(schedule.cron, local).get_next(datetime)


def _following(schedule: Schedule, due_at: datetime, now: datetime) -> datetime:
    """When a schedule due at `due_at` is due next, seen at `now`: the time after `due_at`
    (so an interval keeps its rhythm however late the tick), but never in the past — a
    scheduler that was down for a day starts one run, not every one it missed."""
    following = next_run_after(schedule, due_at)
    if following <= now:
        following = next_run_after(schedule, now)
    return following


# --- writes -----------------------------------------------------------------------------------


def schedule_create(
    *,
    owner: User,
    source_ids: Iterable[int],
    interval_hours: int | str | None = None,
    cron: str = "",
    name: str = "",
    options: Mapping[str, Any] | None = None,
    enabled: bool = True,
) -> Schedule:
    """Schedule these sources of the owner's: every `interval_hours` hours, or at the times
    of `cron` (exactly one of them). The first run is one interval from now, or the cron
    expression's next time."""
    sources = _owned_sources(owner, source_ids)
    interval, expression = clean_timing(interval_hours, cron)
    default = f"{len(sources)} source{'s' if len(sources) != 1 else ''}, " + (
        f"every {interval} hours" if interval else f"cron {expression}"
    )
    schedule = Schedule(
        owner=owner,
        name=_clean_name(name, default=default),
        interval_hours=interval,
        cron=expression,
        options=clean_options(options),
        enabled=enabled,
    )
    schedule.next_run_at = next_run_after(schedule, timezone.now())
    try:
        with transaction.atomic():
            schedule.save()
            schedule.sources.set(sources)
    except IntegrityError:
        raise ScheduleError(f"You already have a schedule named {schedule.name!r}.") from None
    return schedule


def schedule_update(schedule: Schedule, **fields: Any) -> Schedule:
    """Change a schedule's name, sources (`source_ids`), timing (`interval_hours` or `cron`:
    giving one replaces the other), options or enabled flag. A new timing, or enabling it
    again, sets its next run from now."""
    allowed = {"name", "source_ids", "interval_hours", "cron", "options", "enabled"}
    unknown = set(fields) - allowed
    if unknown:
        raise ScheduleError(f"These fields cannot be changed: {', '.join(sorted(unknown))}.")
    sources = None
    if "source_ids" in fields:
        sources = _owned_sources(schedule.owner, fields["source_ids"])
    retime = False
    if "interval_hours" in fields or "cron" in fields:
        interval = fields.get("interval_hours")
        cron = fields.get("cron", "")
        schedule.interval_hours, schedule.cron = clean_timing(interval, cron)
        retime = True
    if "name" in fields:
        schedule.name = _clean_name(fields["name"], default=schedule.name)
    if "options" in fields:
        schedule.options = clean_options(fields["options"])
    if "enabled" in fields:
        enabled = bool(fields["enabled"])
        retime = retime or (enabled and not schedule.enabled)
        schedule.enabled = enabled
    if retime:
        schedule.next_run_at = next_run_after(schedule, timezone.now())
    try:
        with transaction.atomic():
            schedule.save()
            if sources is not None:
                schedule.sources.set(sources)
    except IntegrityError:
        raise ScheduleError(f"You already have a schedule named {schedule.name!r}.") from None
    return schedule


def schedule_delete(schedule: Schedule) -> None:
    """Delete a schedule. The runs it started stay (their history still names it)."""
    schedule.delete()


# --- reads ------------------------------------------------------------------------------------


def schedules_for_owner(owner: User) -> QuerySet[Schedule]:
    """The owner's schedules with their sources and last run, by name."""
    return (
        Schedule.objects.filter(owner=owner)
        .select_related("last_run")
        .prefetch_related("sources")
        .order_by("name", "id")
    )


def schedule_for_owner(owner: User, schedule_id: int) -> Schedule:
    """One of the owner's schedules (Schedule.DoesNotExist for another's: a 404)."""
    return schedules_for_owner(owner).get(pk=schedule_id)


# --- the tick ---------------------------------------------------------------------------------


def schedules_run_due(*, now: datetime | None = None) -> list[Schedule]:
    """Start every enabled schedule that is due (at most INTAKE_SCHEDULES_PER_TICK). Returns
    those this call claimed, each with its `last_outcome` and `last_reason`."""
    now = now or timezone.now()
    due = list(
        Schedule.objects.filter(enabled=True, next_run_at__lte=now)
        .order_by("next_run_at", "id")
        .values_list("pk", "next_run_at")[: settings.INTAKE_SCHEDULES_PER_TICK]
    )
    fired = []
    for pk, due_at in due:
        schedule = Schedule.objects.select_related("owner").filter(pk=pk).first()
        if schedule is None:
            continue
        following = _following(schedule, due_at, now)
        # The claim: the row moves on from the time this tick read, or another tick (another
        # scheduler, the same tick queued twice) has claimed it and this one starts nothing.
        claimed = Schedule.objects.filter(pk=pk, enabled=True, next_run_at=due_at).update(
            next_run_at=following
        )
        if claimed != 1:
            continue
        schedule.next_run_at = following
        schedule_fire(schedule, now=now)
        fired.append(schedule)
    return fired


def schedule_fire(schedule: Schedule, *, now: datetime | None = None) -> IngestionRun | None:
    """Start the schedule's run now, through the stepper's services, and record what came of
    it on the schedule: started (with the run), or skipped with the reason (the owner's
    previous run still active, every source paused or deleted, the quota used up)."""
    now = now or timezone.now()
    owner = schedule.owner
    run = None
    outcome, reason = ScheduleOutcome.SKIPPED, ""
    active = stale.run_active_for_owner(owner)
    source_ids = list(schedule.sources.filter(enabled=True).values_list("pk", flat=True))
    if active is not None:
        reason = _still_active(active)
    elif not source_ids:
        reason = "Every source of this schedule is paused, disabled or deleted."
    else:
        start = (
            services.preview_start
            if schedule.options.get("kind") == run_kinds.PREVIEW
            else services.ingest_start
        )
        origin = {
            "schedule": schedule.pk,
            "name": schedule.name,
            "label": f"schedule “{schedule.name}”",
        }
        try:
            run = start(owner=owner, source_ids=source_ids, origin=origin)
        except RunInProgress as exc:  # started since the check above: still not stacked
            reason = _still_active(exc.active_run)
        except (services.SourceError, RunError) as exc:  # the quota, among others
            reason = str(exc)
        except Exception as exc:
            # One broken schedule must not stop the tick from starting the others.
            logger.exception("Schedule %s could not start its run", schedule.pk)
            outcome, reason = ScheduleOutcome.FAILED, f"The run could not start: {exc}"
        else:
            outcome = ScheduleOutcome.STARTED
    fields: dict[str, Any] = {
        "last_fired_at": now,
        "last_outcome": outcome,
        "last_reason": reason,
    }
    if run is not None:
        fields["last_run"] = run
    Schedule.objects.filter(pk=schedule.pk).update(**fields)
    for key, value in fields.items():
        setattr(schedule, key, value)
    if reason:
        logger.info("Schedule %s %s: %s", schedule.pk, outcome, reason)
    return run


def _still_active(run: IngestionRun) -> str:
    return (
        f"Skipped: run #{run.pk} ({run.get_kind_display().lower()}, {run.status}) was still "
        "active; a scheduled run is never queued behind another."
    )
