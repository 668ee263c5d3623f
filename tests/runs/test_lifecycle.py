"""The lifecycle's rules, through the services (no worker needed)."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from rq.job import Job, JobStatus

from runs import services, stale, transitions
from runs.exceptions import IllegalTransition, RunError, RunGone, RunInProgress, RunNotActive
from runs.models import IngestionRun, RunEvent, RunStatus
from runs.workloads import DIAGNOSTIC

pytestmark = pytest.mark.django_db(transaction=True)


def start(user, **kwargs) -> IngestionRun:  # type: ignore[no-untyped-def]
    return services.run_start(owner=user, kind=DIAGNOSTIC, config={"items": 3}, **kwargs)


def running_run_silent_for(user, seconds: float) -> IngestionRun:  # type: ignore[no-untyped-def]
    """A running run whose last heartbeat was `seconds` ago."""
    run = start(user)
    transitions.run_transition(run, to=RunStatus.INITIALIZING)
    IngestionRun.objects.filter(pk=run.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=seconds)
    )
    return IngestionRun.objects.get(pk=run.pk)


def test_start_creates_a_pending_run_with_a_created_event_and_a_queued_job(user, redis_client):
    run = start(user)
    assert run.status == RunStatus.PENDING
    assert [e.type for e in run.events.all()] == ["run.created"]
    job = Job.fetch(run.queue_job_ids[0], connection=redis_client)
    assert job.get_status() == JobStatus.QUEUED
    assert job.args == (run.pk,)


def test_start_refuses_a_second_active_run_and_names_the_active_one(user, redis_client):
    first = start(user)
    with pytest.raises(RunInProgress, match=f"Run #{first.pk}") as info:
        start(user)
    assert info.value.active_run == first
    assert IngestionRun.objects.filter(owner=user).count() == 1


def test_the_database_itself_refuses_a_second_active_run(user, redis_client):
    start(user)
    with pytest.raises(IntegrityError), transaction.atomic():
        IngestionRun.objects.create(owner=user, kind=DIAGNOSTIC)


def test_another_owner_may_run_at_the_same_time(user, other_user, redis_client):
    start(user)
    assert start(other_user).status == RunStatus.PENDING


def test_a_new_run_may_start_once_the_active_one_is_terminal(user, redis_client):
    first = start(user)
    services.run_request_abort(first)
    assert start(user).pk != first.pk


def test_an_idempotency_key_returns_the_same_run(user, redis_client):
    first = start(user, idempotency_key="abc-1")
    again = start(user, idempotency_key="abc-1")
    assert again.pk == first.pk
    services.run_request_abort(first)
    # Even after it ended, the same key names the same run rather than starting another.
    assert start(user, idempotency_key="abc-1").pk == first.pk
    assert IngestionRun.objects.count() == 1


def test_a_key_whose_run_committed_after_the_lookup_returns_that_run(
    user, redis_client, monkeypatch
):
    # Four concurrent API starts with one key: one's lookup can miss the winner, which then
    # commits before the active-run check. That is the same request, not a conflict.
    first = start(user, idempotency_key="race-1")
    real = services._run_with_key
    calls = []

    def missed_once(owner, key):  # type: ignore[no-untyped-def]
        calls.append(key)
        return None if len(calls) == 1 else real(owner, key)

    monkeypatch.setattr(services, "_run_with_key", missed_once)
    assert start(user, idempotency_key="race-1").pk == first.pk
    with pytest.raises(RunInProgress):
        start(user, idempotency_key="another-key")


def test_a_blank_idempotency_key_is_refused(user, redis_client):
    with pytest.raises(RunError, match="idempotency key"):
        start(user, idempotency_key="  ")


def test_an_unknown_kind_is_refused_clearly(user):
    with pytest.raises(RunError, match="Unknown run kind"):
        services.run_start(owner=user, kind="bogus")


def test_transitions_follow_the_lifecycle(user, redis_client):
    run = start(user)
    transitions.run_transition(run, to=RunStatus.INITIALIZING)
    transitions.run_transition(run, to=RunStatus.INGESTING)
    transitions.run_transition(run, to=RunStatus.FINISHED)
    run.refresh_from_db()
    assert run.status == RunStatus.FINISHED
    assert run.started_at and run.finished_at and run.started_at <= run.finished_at
    assert [e.type for e in run.events.order_by("seq")] == [
        "run.created",
        "run.initializing",
        "run.ingesting",
        "run.finished",
    ]
    assert list(run.events.order_by("seq").values_list("seq", flat=True)) == [1, 2, 3, 4]


@pytest.mark.parametrize(
    "path, illegal",
    [
        ([], RunStatus.INGESTING),  # pending cannot skip initializing
        ([], RunStatus.FINISHED),
        ([RunStatus.INITIALIZING], RunStatus.PENDING),  # no way back
        ([RunStatus.INITIALIZING, RunStatus.INGESTING], RunStatus.INITIALIZING),
    ],
)
def test_illegal_transitions_are_refused(user, redis_client, path, illegal):
    run = start(user)
    for status in path:
        transitions.run_transition(run, to=status)
    before = IngestionRun.objects.get(pk=run.pk).status
    with pytest.raises(IllegalTransition):
        transitions.run_transition(run, to=illegal)
    assert IngestionRun.objects.get(pk=run.pk).status == before


@pytest.mark.parametrize("terminal", [RunStatus.FINISHED, RunStatus.ERROR, RunStatus.ABORTED])
def test_terminal_states_are_final(user, redis_client, terminal):
    run = start(user)
    transitions.run_transition(run, to=RunStatus.INITIALIZING)
    transitions.run_transition(run, to=terminal)
    for target in RunStatus.values:
        with pytest.raises(IllegalTransition, match="already"):
            transitions.run_transition(run, to=target)
    assert IngestionRun.objects.get(pk=run.pk).status == terminal


def test_abort_of_a_pending_run_ends_it_at_once_and_cancels_its_queued_job(user, redis_client):
    run = start(user)
    services.run_request_abort(run)
    run.refresh_from_db()
    assert run.status == RunStatus.ABORTED
    assert run.finished_at is not None
    job = Job.fetch(run.queue_job_ids[0], connection=redis_client)
    assert job.get_status() == JobStatus.CANCELED


def test_abort_of_a_running_run_sets_the_flag_and_is_idempotent(user, redis_client):
    run = start(user)
    transitions.run_transition(run, to=RunStatus.INITIALIZING)
    services.run_request_abort(run)
    first_request = IngestionRun.objects.get(pk=run.pk).abort_requested_at
    assert first_request is not None
    services.run_request_abort(run)
    run.refresh_from_db()
    assert run.abort_requested_at == first_request
    assert run.status == RunStatus.INITIALIZING  # the worker ends it at its next checkpoint
    assert run.events.filter(type="run.abort_requested").count() == 1


def test_abort_of_an_aborted_run_changes_nothing(user, redis_client):
    run = start(user)
    services.run_request_abort(run)
    services.run_request_abort(run)
    assert IngestionRun.objects.get(pk=run.pk).status == RunStatus.ABORTED


@pytest.mark.parametrize("terminal", [RunStatus.FINISHED, RunStatus.ERROR])
def test_abort_of_a_finished_or_failed_run_is_refused_with_a_clear_message(
    user, redis_client, terminal
):
    run = start(user)
    transitions.run_transition(run, to=RunStatus.INITIALIZING)
    transitions.run_transition(run, to=terminal)
    with pytest.raises(RunNotActive, match=f"already {terminal}"):
        services.run_request_abort(run)


def test_a_worker_checkpoint_reports_an_abort_request(user, redis_client):
    run = start(user)
    transitions.run_transition(run, to=RunStatus.INITIALIZING)
    assert services.run_heartbeat(run) is False
    services.run_request_abort(IngestionRun.objects.get(pk=run.pk))
    assert services.run_heartbeat(run) is True


def test_late_writes_to_an_ended_run_change_nothing(user, redis_client):
    run = start(user)
    worker_view = IngestionRun.objects.get(pk=run.pk)
    transitions.run_transition(worker_view, to=RunStatus.INITIALIZING)
    services.run_fail(IngestionRun.objects.get(pk=run.pk), message="reaped")
    events_before = RunEvent.objects.filter(run=run).count()

    with pytest.raises(RunGone):
        services.run_heartbeat(worker_view)
    with pytest.raises(RunGone):
        services.run_update_progress(worker_view, done=5, increments={"ready": 5})
    with pytest.raises(RunGone):
        transitions.publish_event(worker_view, type="item.done", require_active=True)
    with pytest.raises(RunGone):
        services.run_finish(worker_view)

    run.refresh_from_db()
    assert run.status == RunStatus.ERROR
    assert (run.items_done, run.jobs_ready) == (0, 0)
    assert RunEvent.objects.filter(run=run).count() == events_before


def test_progress_events_are_throttled_however_fast_the_run_goes(user, redis_client, settings):
    settings.INTAKE_PROGRESS_INTERVAL = 60
    run = start(user)
    transitions.run_transition(run, to=RunStatus.INITIALIZING)
    published = [
        services.run_update_progress(run, done=i, total=1000, increments={"ready": 1})
        for i in range(1, 201)
    ]
    assert published.count(True) == 1
    run.refresh_from_db()
    assert (run.items_done, run.jobs_ready) == (200, 200)
    assert services.run_update_progress(run, done=200, force_event=True) is True


def test_progress_is_one_locked_read_and_one_write_of_the_run(user, redis_client):
    """Recorded once per batch of every listing and chunk: the row read under its lock
    gives the counters to add to and the caller's copy, so nothing is read twice."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    run = start(user)
    transitions.run_transition(run, to=RunStatus.INITIALIZING)
    services.run_update_progress(run, increments={"ready": 1}, force_event=True)
    other_worker = IngestionRun.objects.get(pk=run.pk)
    services.run_update_progress(other_worker, increments={"ready": 2}, outcomes={"new": 2})
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        published = services.run_update_progress(
            run, done=7, increments={"ready": 4, "new": 1}, outcomes={"new": 5, "unchanged": 1}
        )
    statements = [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert published is False
    assert len(statements) == 2, statements
    # The caller's copy is the row as written, the other worker's progress included.
    assert (run.items_done, run.jobs_ready, run.jobs_new) == (7, 7, 1)
    assert run.outcome_counts == {"new": 7, "unchanged": 1}
    stored = IngestionRun.objects.get(pk=run.pk)
    assert (stored.items_done, stored.jobs_ready, stored.jobs_new) == (7, 7, 1)
    assert stored.outcome_counts == run.outcome_counts
    assert stored.heartbeat_at == run.heartbeat_at


def test_each_event_carries_the_run_status_and_counts(user, redis_client):
    run = start(user)
    transitions.run_transition(run, to=RunStatus.INITIALIZING)
    services.run_update_progress(run, done=2, total=3, increments={"ready": 2}, force_event=True)
    event = run.events.order_by("-seq").first()
    envelope = event.envelope()
    assert envelope["type"] == "run.progress"
    assert envelope["run"]["status"] == "initializing"
    assert envelope["run"]["counts"]["ready"] == 2
    assert envelope["run"]["itemsDone"] == 2 and envelope["run"]["totalJobs"] == 3


def test_events_are_broadcast_only_after_their_transaction_commits(user, redis_client):
    run = start(user)
    with mock.patch("runs.feed.broadcast") as broadcast:
        with pytest.raises(RuntimeError), transaction.atomic():
            transitions.publish_event(run, type="test.rolled_back", message="never")
            raise RuntimeError("roll back")
        broadcast.assert_not_called()
        assert not run.events.filter(type="test.rolled_back").exists()

        with transaction.atomic():
            transitions.publish_event(run, type="test.committed")
            broadcast.assert_not_called()
        broadcast.assert_called_once()
        assert broadcast.call_args.args[0]["type"] == "test.committed"


def test_the_reaper_ends_a_run_whose_heartbeat_is_stale(user, redis_client, settings):
    settings.INTAKE_RUN_STALE_AFTER = 30
    run = running_run_silent_for(user, 31)
    reaped = stale.run_reap_stale()
    assert [r.pk for r in reaped] == [run.pk]
    run.refresh_from_db()
    assert run.status == RunStatus.ERROR
    assert "worker stopped responding" in run.error_message
    assert start(user).status == RunStatus.PENDING  # the owner can start again


def test_the_reaper_leaves_a_run_with_a_fresh_heartbeat_alone(user, redis_client, settings):
    settings.INTAKE_RUN_STALE_AFTER = 30
    run = running_run_silent_for(user, 10)
    assert stale.run_reap_stale() == []
    assert IngestionRun.objects.get(pk=run.pk).status == RunStatus.INITIALIZING


def test_the_reaper_does_not_end_a_run_that_beat_after_it_looked(user, redis_client, settings):
    settings.INTAKE_RUN_STALE_AFTER = 30
    run = start(user)
    transitions.run_transition(run, to=RunStatus.INITIALIZING)
    old = timezone.now() - timedelta(seconds=31)
    IngestionRun.objects.filter(pk=run.pk).update(heartbeat_at=old)
    judged = IngestionRun.objects.get(pk=run.pk)
    services.run_heartbeat(judged)  # the worker beats between the reaper's read and write
    with pytest.raises(IllegalTransition):
        transitions.run_transition(
            judged,
            to=RunStatus.ERROR,
            expected=[RunStatus.INITIALIZING],
            where=Q(heartbeat_at=old),
        )


def test_the_reaper_ends_a_pending_run_no_worker_picked_up(user, redis_client, settings):
    settings.INTAKE_RUN_PENDING_TIMEOUT = 60
    run = start(user)
    IngestionRun.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(seconds=61))
    stale.run_reap_stale()
    run.refresh_from_db()
    assert run.status == RunStatus.ERROR
    assert "No worker picked the run up" in run.error_message


def test_reap_stale_runs_command_reports_what_it_did(user, redis_client, settings, capsys):
    from django.core.management import call_command

    settings.INTAKE_RUN_STALE_AFTER = 5
    run = running_run_silent_for(user, 300)
    call_command("reap_stale_runs")
    out = capsys.readouterr().out
    assert f"Run #{run.pk}" in out and "Reaped 1 stale run" in out


def test_a_checkpoint_reads_the_abort_flag_between_heartbeats(user, redis_client, settings):
    from runs.context import RunContext
    from runs.exceptions import RunAborted

    settings.INTAKE_HEARTBEAT_INTERVAL = 3600
    run = start(user)
    transitions.run_transition(run, to=RunStatus.INITIALIZING)
    ctx = RunContext(IngestionRun.objects.get(pk=run.pk))
    ctx.checkpoint()  # nothing requested: returns
    services.run_request_abort(IngestionRun.objects.get(pk=run.pk))
    ctx._last_check = 0.0  # as if half a second went by
    with pytest.raises(RunAborted):
        ctx.checkpoint()


def test_a_checkpoint_of_a_reaped_run_stops_the_worker(user, redis_client):
    from runs.context import RunContext

    run = start(user)
    transitions.run_transition(run, to=RunStatus.INITIALIZING)
    ctx = RunContext(IngestionRun.objects.get(pk=run.pk))
    services.run_fail(IngestionRun.objects.get(pk=run.pk), message="reaped")
    with pytest.raises(RunGone):
        ctx.checkpoint(force=True)


def test_runs_cut_off_by_a_restart_are_ended_and_pending_ones_kept(user, other_user, redis_client):
    running = start(user)
    transitions.run_transition(running, to=RunStatus.INITIALIZING)
    pending = start(other_user)
    ended = stale.run_end_orphaned(message="Intake was stopped while this run was in progress")
    assert [r.pk for r in ended] == [running.pk]
    running.refresh_from_db()
    assert running.status == RunStatus.ERROR
    assert "Intake was stopped" in running.error_message
    assert IngestionRun.objects.get(pk=pending.pk).status == RunStatus.PENDING


# --- the stale check on the read paths: no worker or scheduler needed -------------------------


def test_starting_a_run_ends_the_owners_stale_run_instead_of_refusing(user, redis_client, settings):
    settings.INTAKE_RUN_STALE_AFTER = 30
    silent = running_run_silent_for(user, 31)
    again = start(user)
    assert again.status == RunStatus.PENDING
    silent.refresh_from_db()
    assert silent.status == RunStatus.ERROR
    assert "worker stopped responding: no heartbeat for 31 s (limit 30 s)" in silent.error_message


def test_starting_a_run_still_refuses_while_the_active_run_beats(user, redis_client, settings):
    settings.INTAKE_RUN_STALE_AFTER = 30
    alive = running_run_silent_for(user, 10)
    with pytest.raises(RunInProgress, match=f"Run #{alive.pk}"):
        start(user)
    assert IngestionRun.objects.get(pk=alive.pk).status == RunStatus.INITIALIZING


def test_abort_of_a_run_whose_worker_stopped_responding_ends_it_at_once(
    user, redis_client, settings
):
    settings.INTAKE_RUN_STALE_AFTER = 30
    run = running_run_silent_for(user, 45)
    IngestionRun.objects.filter(pk=run.pk).update(items_done=7)
    services.run_request_abort(run)
    run.refresh_from_db()
    assert run.status == RunStatus.ABORTED
    last = run.events.order_by("-seq").first()
    assert last.type == "run.aborted"
    assert last.message.startswith("Aborted at your request after 7 items.")
    assert "stopped responding (no heartbeat for 45 s" in last.message


def test_abort_requested_before_the_worker_died_ends_aborted_once_it_is_stale(
    user, redis_client, settings
):
    settings.INTAKE_RUN_STALE_AFTER = 30
    run = running_run_silent_for(user, 5)
    services.run_request_abort(run)
    assert IngestionRun.objects.get(pk=run.pk).status == RunStatus.INITIALIZING  # may still stop
    IngestionRun.objects.filter(pk=run.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=31)
    )
    assert [r.pk for r in stale.run_reap_stale()] == [run.pk]
    run.refresh_from_db()
    assert run.status == RunStatus.ABORTED  # what the owner asked for, not an error
    assert run.events.order_by("-seq").first().message.startswith("Aborted at your request")


def test_the_stale_check_costs_no_query_for_a_fresh_or_ended_run(
    user, redis_client, settings, django_assert_num_queries
):
    settings.INTAKE_RUN_STALE_AFTER = 30
    run = running_run_silent_for(user, 10)
    with django_assert_num_queries(0):
        assert stale.run_end_if_stale(run) is False
    services.run_fail(run, message="ended")
    run.refresh_from_db()
    with django_assert_num_queries(0):
        assert stale.run_end_if_stale(run) is False


def test_the_owners_active_run_is_none_once_its_stale_run_is_ended(user, redis_client, settings):
    settings.INTAKE_RUN_STALE_AFTER = 30
    alive = running_run_silent_for(user, 10)
    assert stale.run_active_for_owner(user) == alive
    IngestionRun.objects.filter(pk=alive.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=40)
    )
    assert stale.run_active_for_owner(user) is None
    assert IngestionRun.objects.get(pk=alive.pk).status == RunStatus.ERROR


def test_a_pending_run_no_worker_took_is_ended_when_its_owner_starts_another(
    user, redis_client, settings
):
    settings.INTAKE_RUN_PENDING_TIMEOUT = 60
    waiting = start(user)
    IngestionRun.objects.filter(pk=waiting.pk).update(
        created_at=timezone.now() - timedelta(seconds=61)
    )
    assert start(user).status == RunStatus.PENDING
    waiting.refresh_from_db()
    assert waiting.status == RunStatus.ERROR
    assert "No worker picked the run up" in waiting.error_message


def test_the_abort_message_counts_what_every_worker_did(user, redis_client):
    from runs import execution
    from runs.exceptions import RunAborted

    run = start(user)
    transitions.run_transition(run, to=RunStatus.INITIALIZING)
    this_worker = IngestionRun.objects.get(pk=run.pk)
    services.run_update_progress(this_worker, increments={"items_done": 5000})
    # Another worker's parts of the same run, which this worker's copy knows nothing of.
    other_worker = IngestionRun.objects.get(pk=run.pk)
    services.run_update_progress(other_worker, increments={"items_done": 2000})

    def aborted_at_a_checkpoint(ctx):  # type: ignore[no-untyped-def]
        raise RunAborted("abort requested")

    assert execution.run_execute(this_worker, aborted_at_a_checkpoint, "deferred") == "aborted"
    message = run.events.order_by("-seq").first().message
    assert message == "Aborted at your request after 7,000 items; finished work is kept."


def test_a_short_silence_is_told_precisely_enough_to_be_past_its_limit(
    user, redis_client, settings
):
    settings.INTAKE_RUN_STALE_AFTER = 2
    run = running_run_silent_for(user, 2.4)
    assert stale.run_end_if_stale(run)
    assert "no heartbeat for 2.4 s (limit 2 s)" in run.error_message


def test_a_database_error_no_retry_can_cover_ends_the_run_saying_so(user, redis_client):
    from django.db import OperationalError

    from runs import execution

    run = start(user)
    transitions.run_transition(run, to=RunStatus.INITIALIZING)

    def lose_the_connection(ctx):  # type: ignore[no-untyped-def]
        raise OperationalError("server closed the connection unexpectedly")

    assert execution.run_execute(run, lose_the_connection, "deferred") == "error"
    run.refresh_from_db()
    assert run.error_message == (
        "The database connection failed (server closed the connection unexpectedly). The run "
        "was ended; work it finished is kept."
    )


# --- a worker's own write refused while its run is still active --------------------------


@pytest.fixture
def stage_twice_kind():  # type: ignore[no-untyped-def]
    """A kind whose executor moves to ingesting twice, as a listing that lost track of its
    first move would: the second move is refused while the run is still ingesting."""
    from runs import executors

    with mock.patch.dict(executors._KINDS):

        @executors.register("twice", label="Twice")
        def twice(ctx):  # type: ignore[no-untyped-def]
            ctx.set_stage(RunStatus.INGESTING)
            ctx.progress(done=2, total=4, increments={"ready": 2})
            ctx.set_stage(RunStatus.INGESTING)

        yield "twice"


def test_a_worker_whose_own_stage_change_is_refused_ends_its_run_at_once(
    user, redis_client, stage_twice_kind
):
    from runs import tasks

    run = services.run_start(owner=user, kind=stage_twice_kind)
    assert tasks.execute_run(run.pk) == "error"
    run.refresh_from_db()
    assert run.status == RunStatus.ERROR
    assert run.error_message == (
        f"Internal error: the run's worker could not go on while the run was ingesting: "
        f"Run #{run.pk} cannot go from ingesting to ingesting. The run was ended; work it "
        "finished is kept."
    )
    assert (run.items_done, run.jobs_ready) == (2, 2)  # what it committed stays
    assert run.events.order_by("-seq").first().type == "run.error"
    # The owner may start again now, not once the stale check gets to it.
    assert services.run_start(owner=user, kind=DIAGNOSTIC).status == RunStatus.PENDING


def _checkpoint(ctx):  # type: ignore[no-untyped-def]
    ctx.checkpoint(force=True)
    return True


def _queue_a_part(ctx):  # type: ignore[no-untyped-def]
    ctx.enqueue_parts("tests.runs.nothing", [("chunk-1", (1,))])
    return False


def _move_to_ingesting(ctx):  # type: ignore[no-untyped-def]
    ctx.set_stage(RunStatus.INGESTING)
    return True


def _abort(ctx):  # type: ignore[no-untyped-def]
    from runs.exceptions import RunAborted

    raise RunAborted("abort requested")


@pytest.mark.parametrize(
    "work",
    [lambda ctx: True, _checkpoint, _queue_a_part, _move_to_ingesting, _abort],
    ids=["finish", "heartbeat", "queue-parts", "set-stage", "abort"],
)
def test_a_worker_whose_running_only_write_finds_its_run_pending_ends_it(user, redis_client, work):
    from runs import execution

    run = start(user)  # never moved to initializing: every running-only write is refused
    assert execution.run_execute(run, work, "deferred") == "error"
    run.refresh_from_db()
    assert run.status == RunStatus.ERROR
    assert run.error_message.startswith(
        "Internal error: the run's worker could not go on while the run was pending: "
    )


@pytest.mark.parametrize(
    ("end", "status", "message"),
    [
        (lambda run: services.run_finish(run), RunStatus.FINISHED, ""),
        (
            lambda run: services.run_finish(run, status=RunStatus.ABORTED),
            RunStatus.ABORTED,
            "",
        ),
        (lambda run: services.run_fail(run, message="reaped"), RunStatus.ERROR, "reaped"),
    ],
    ids=["finished", "aborted", "reaped"],
)
def test_a_run_another_worker_ended_keeps_the_end_it_was_given(
    user, redis_client, end, status, message
):
    from runs import execution

    run = start(user)
    transitions.run_transition(run, to=RunStatus.INITIALIZING)

    def ended_elsewhere_then_refused(ctx):  # type: ignore[no-untyped-def]
        end(IngestionRun.objects.get(pk=run.pk))
        ctx.set_stage(RunStatus.INGESTING)

    assert execution.run_execute(run, ended_elsewhere_then_refused, "deferred") == "gone"
    ended = IngestionRun.objects.get(pk=run.pk)
    assert (ended.status, ended.error_message) == (status, message)
    assert ended.events.order_by("-seq").first().type == f"run.{status}"


def test_an_abort_that_ends_the_run_just_before_the_worker_does_wins(user, redis_client):
    from runs import execution

    run = start(user)
    transitions.run_transition(run, to=RunStatus.INITIALIZING)
    run_fail = services.run_fail

    def aborted_just_before(run, *, message):  # type: ignore[no-untyped-def]
        services.run_finish(IngestionRun.objects.get(pk=run.pk), status=RunStatus.ABORTED)
        return run_fail(run, message=message)

    def stage_twice(ctx):  # type: ignore[no-untyped-def]
        ctx.set_stage(RunStatus.INGESTING)
        ctx.set_stage(RunStatus.INGESTING)

    with mock.patch.object(services, "run_fail", side_effect=aborted_just_before):
        assert execution.run_execute(run, stage_twice, "deferred") == "gone"
    run.refresh_from_db()
    assert (run.status, run.error_message) == (RunStatus.ABORTED, "")
