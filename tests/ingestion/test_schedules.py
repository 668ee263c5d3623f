"""Schedules (ingestion.schedules): validation with clear errors, the cron tick starting due
schedules through the stepper's services on a real worker, skipping (never stacking) behind
an active run, two concurrent ticks starting a schedule once, and sources paused after
failing in a row."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from ingestion import schedules, services
from ingestion.models import Job, Schedule, ScheduleOutcome, Source
from ingestion.run_kinds import INGEST, PREVIEW
from ingestion.schedules import ScheduleError
from runs import services as run_services
from runs.models import IngestionRun, RunStatus
from tests.ingestion.boards import greenhouse_job, mount_greenhouse

pytestmark = pytest.mark.django_db(transaction=True)


def make_due(schedule: Schedule, *, ago: timedelta = timedelta(minutes=1)) -> Schedule:
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=timezone.now() - ago)
    schedule.refresh_from_db()
    return schedule


@pytest.fixture
def acme_board(boards):  # type: ignore[no-untyped-def]
    mount_greenhouse(boards, "acme", [greenhouse_job(1, "Engineer"), greenhouse_job(2, "Designer")])
    return boards


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hours", "message"),
    [
        (0, "from 1 to 720, not 0"),
        (721, "from 1 to 720, not 721"),
        ("six", "not 'six'"),
        ("-3", "not '-3'"),
        ("²", "not '²'"),
        (True, "whole number"),
    ],
)
def test_an_interval_out_of_range_is_refused_with_a_clear_error(
    user, greenhouse_source, hours, message
):
    with pytest.raises(ScheduleError, match=message):
        schedules.schedule_create(
            owner=user, source_ids=[greenhouse_source.pk], interval_hours=hours
        )
    assert not Schedule.objects.exists()


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * * *", "five fields .* not 4"),
        ("0 0 * * * *", "five fields .* not 6"),
        ("61 * * * *", "not a valid cron expression"),
        ("0 25 * * *", "not a valid cron expression"),
        ("every day", "five fields"),
        ("0 0 31 2 *", "never comes round"),
        ("x" * 101, "at most 100"),
    ],
)
def test_a_bad_cron_expression_is_refused_with_a_clear_error(
    user, greenhouse_source, expression, message
):
    with pytest.raises(ScheduleError, match=message):
        schedules.schedule_create(owner=user, source_ids=[greenhouse_source.pk], cron=expression)


def test_a_schedule_takes_either_an_interval_or_a_cron_expression(user, greenhouse_source):
    ids = [greenhouse_source.pk]
    with pytest.raises(ScheduleError, match="either every N hours or a cron expression, not both"):
        schedules.schedule_create(owner=user, source_ids=ids, interval_hours=6, cron="0 * * * *")
    with pytest.raises(ScheduleError, match="either every N hours or a cron expression"):
        schedules.schedule_create(owner=user, source_ids=ids)


def test_a_schedule_needs_sources_of_its_owner(user, other_user, greenhouse_source):
    with pytest.raises(ScheduleError, match="Select at least one source"):
        schedules.schedule_create(owner=user, source_ids=[], interval_hours=6)
    with pytest.raises(ScheduleError, match="No such source"):
        schedules.schedule_create(
            owner=other_user, source_ids=[greenhouse_source.pk], interval_hours=6
        )


def test_unknown_options_and_kinds_are_refused(user, greenhouse_source):
    ids = [greenhouse_source.pk]
    with pytest.raises(ScheduleError, match="Unknown schedule options: speed"):
        schedules.schedule_create(
            owner=user, source_ids=ids, interval_hours=1, options={"speed": 1}
        )
    with pytest.raises(ScheduleError, match="not 'diagnostic'"):
        schedules.schedule_create(
            owner=user, source_ids=ids, interval_hours=1, options={"kind": "diagnostic"}
        )


def test_two_schedules_of_one_owner_cannot_share_a_name(user, greenhouse_source):
    ids = [greenhouse_source.pk]
    schedules.schedule_create(owner=user, source_ids=ids, interval_hours=6, name="Boards")
    with pytest.raises(ScheduleError, match="already have a schedule named 'Boards'"):
        schedules.schedule_create(owner=user, source_ids=ids, cron="0 * * * *", name="Boards")


def test_a_cron_expression_is_normalised_and_its_next_time_computed(user, greenhouse_source):
    schedule = schedules.schedule_create(
        owner=user, source_ids=[greenhouse_source.pk], cron="  0   */6 * * * "
    )
    assert schedule.cron == "0 */6 * * *"
    assert schedule.name == "1 source, cron 0 */6 * * *"
    after = datetime(2026, 1, 1, 7, 30, tzinfo=UTC)
    assert schedules.next_run_after(schedule, after) == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert schedule.next_run_at > timezone.now()


def test_an_interval_keeps_its_rhythm_and_a_long_outage_starts_one_run(user, greenhouse_source):
    schedule = schedules.schedule_create(
        owner=user, source_ids=[greenhouse_source.pk], interval_hours=6
    )
    now = timezone.now()
    assert now + timedelta(hours=5, minutes=59) < schedule.next_run_at <= now + timedelta(hours=6)
    # Due a minute ago: the next is six hours after the due time, not after the tick.
    make_due(schedule)
    due_at = schedule.next_run_at
    schedules.schedules_run_due()
    schedule.refresh_from_db()
    assert schedule.next_run_at == due_at + timedelta(hours=6)
    # Due three days ago (the scheduler was down): one run, the next in the future.
    run_services.run_request_abort(schedule.last_run)
    make_due(schedule, ago=timedelta(days=3))
    assert len(schedules.schedules_run_due()) == 1
    schedule.refresh_from_db()
    assert schedule.next_run_at > timezone.now()
    assert IngestionRun.objects.filter(owner=user).count() == 2


# --- the tick ---------------------------------------------------------------------------------


def test_a_due_schedule_starts_an_ingest_that_a_worker_runs(user, acme_board, work):
    source = Source.objects.create(owner=user, company="Acme", kind="greenhouse", identifier="acme")
    Source.objects.create(owner=user, company="Other", kind="greenhouse", identifier="other")
    schedule = schedules.schedule_create(
        owner=user, source_ids=[source.pk], interval_hours=6, name="Acme twice a day"
    )
    assert schedules.schedules_run_due() == []  # not due yet
    make_due(schedule)
    fired = schedules.schedules_run_due()
    assert [s.pk for s in fired] == [schedule.pk]
    schedule.refresh_from_db()
    run = schedule.last_run
    assert run is not None and run.kind == INGEST
    assert schedule.last_outcome == ScheduleOutcome.STARTED and schedule.last_reason == ""
    assert [entry["id"] for entry in run.config["sources"]] == [source.pk]
    assert run.config["origin"] == {
        "schedule": schedule.pk,
        "name": "Acme twice a day",
        "label": "schedule “Acme twice a day”",
    }
    assert run.origin_label == "schedule “Acme twice a day”"
    snapshot = schedule.snapshot()
    assert snapshot["sourceIds"] == [source.pk] and snapshot["intervalHours"] == 6
    assert snapshot["lastOutcome"] == "started" and snapshot["lastRunId"] == run.pk
    assert snapshot["cron"] is None and snapshot["options"] == {"kind": "ingest"}
    run = work(run)
    assert run.status == RunStatus.FINISHED
    assert Job.objects.filter(owner=user, source=source).count() == 2


def test_a_preview_schedule_starts_a_preview(user, greenhouse_source, acme_board):
    schedule = schedules.schedule_create(
        owner=user, source_ids=[greenhouse_source.pk], interval_hours=1, options={"kind": PREVIEW}
    )
    make_due(schedule)
    schedules.schedules_run_due()
    schedule.refresh_from_db()
    assert schedule.last_run is not None and schedule.last_run.kind == PREVIEW


def test_an_active_run_makes_the_schedule_skip_with_a_reason_not_stack(user, greenhouse_source):
    active = services.preview_start(owner=user)
    schedule = make_due(
        schedules.schedule_create(owner=user, source_ids=[greenhouse_source.pk], interval_hours=2)
    )
    schedules.schedules_run_due()
    schedule.refresh_from_db()
    assert schedule.last_outcome == ScheduleOutcome.SKIPPED
    assert f"run #{active.pk} (preview, pending) was still active" in schedule.last_reason
    assert schedule.last_run is None
    assert list(IngestionRun.objects.filter(owner=user)) == [active]  # nothing queued behind it
    assert schedule.next_run_at > timezone.now()  # tried again at its next time, not every tick
    assert schedules.schedules_run_due() == []


def test_a_schedule_whose_sources_are_all_paused_is_skipped(user, greenhouse_source):
    schedule = make_due(
        schedules.schedule_create(owner=user, source_ids=[greenhouse_source.pk], interval_hours=2)
    )
    services.source_update(greenhouse_source, enabled=False)
    schedules.schedules_run_due()
    schedule.refresh_from_db()
    assert schedule.last_outcome == ScheduleOutcome.SKIPPED
    assert "paused, disabled or deleted" in schedule.last_reason
    assert not IngestionRun.objects.exists()


def test_a_disabled_schedule_is_not_due_and_enabling_it_sets_its_next_run_from_now(
    user, greenhouse_source
):
    schedule = schedules.schedule_create(
        owner=user, source_ids=[greenhouse_source.pk], interval_hours=3, enabled=False
    )
    make_due(schedule, ago=timedelta(days=1))
    assert schedules.schedules_run_due() == []
    schedules.schedule_update(schedule, enabled=True)
    assert schedule.next_run_at > timezone.now() + timedelta(hours=2)


def test_two_concurrent_ticks_start_each_schedule_once(django_user_model, settings):
    settings.INTAKE_QUOTA_RUNS_PER_DAY = 0
    settings.INTAKE_QUOTA_REQUESTS_PER_DAY = 0
    count = 12
    for n in range(count):
        owner = django_user_model.objects.create_user(username=f"u{n}")
        source = Source.objects.create(
            owner=owner, company="Acme", kind="greenhouse", identifier="acme"
        )
        make_due(schedules.schedule_create(owner=owner, source_ids=[source.pk], interval_hours=1))
    barrier = threading.Barrier(2)
    results: list[list[Schedule]] = []
    errors: list[BaseException] = []

    def tick() -> None:
        try:
            barrier.wait()
            results.append(schedules.schedules_run_due())
        except BaseException as exc:  # reported below, with the thread's own failure
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=tick) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert sum(len(fired) for fired in results) == count
    assert IngestionRun.objects.count() == count
    assert set(Schedule.objects.values_list("last_outcome", flat=True)) == {"started"}


# --- pausing a failing source -----------------------------------------------------------------


def test_a_source_failing_three_times_in_a_row_is_paused_and_a_success_resets_it(
    user, boards, work
):
    source = Source.objects.create(owner=user, company="Gone", kind="greenhouse", identifier="gone")
    boards.route("/v1/boards/gone/jobs", status=404, json={"error": "no such board"})
    for expected in (1, 2):
        work(services.preview_start(owner=user, source_ids=[source.pk]))
        source.refresh_from_db()
        assert source.failures_in_row == expected and source.enabled
    mount_greenhouse(boards, "gone", [greenhouse_job(1, "Back")])
    work(services.preview_start(owner=user, source_ids=[source.pk]))
    source.refresh_from_db()
    assert source.failures_in_row == 0 and source.enabled

    boards.route("/v1/boards/gone/jobs", status=404, json={"error": "no such board"})
    for _ in range(3):
        run = work(services.preview_start(owner=user, source_ids=[source.pk]))
    source.refresh_from_db()
    assert source.failures_in_row == 3
    assert not source.enabled and source.paused_at is not None
    assert source.paused_reason.startswith("its listing failed 3 times in a row (last: ")
    paused = run.events.get(type="source.paused")
    assert "Gone (Greenhouse board) is paused: its listing failed 3 times" in paused.message

    services.source_update(source, enabled=True)
    source.refresh_from_db()
    assert source.enabled and source.failures_in_row == 0 and source.paused_reason == ""


def test_pausing_can_be_turned_off(user, boards, work, settings):
    settings.INTAKE_SOURCE_PAUSE_AFTER = 0
    source = Source.objects.create(owner=user, company="Gone", kind="greenhouse", identifier="gone")
    boards.route("/v1/boards/gone/jobs", status=404, json={"error": "no such board"})
    for _ in range(3):
        work(services.preview_start(owner=user, source_ids=[source.pk]))
    source.refresh_from_db()
    assert source.failures_in_row == 3 and source.enabled
