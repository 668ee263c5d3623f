"""The heartbeat thread a worker runs beside its work: a long call is not a dead worker, a
stuck one is."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from runs import services, stale, transitions
from runs.context import RunContext
from runs.models import IngestionRun, RunStatus
from runs.workloads import DIAGNOSTIC

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fast(settings):  # type: ignore[no-untyped-def]
    settings.INTAKE_HEARTBEAT_INTERVAL = 0.1
    settings.INTAKE_RUN_STALE_AFTER = 1
    return settings


def running(user) -> IngestionRun:  # type: ignore[no-untyped-def]
    run = services.run_start(owner=user, kind=DIAGNOSTIC, config={"items": 1})
    transitions.run_transition(run, to=RunStatus.INITIALIZING)
    return IngestionRun.objects.get(pk=run.pk)


def silence(run: IngestionRun) -> timedelta:
    return timezone.now() - IngestionRun.objects.get(pk=run.pk).heartbeat_at


def test_a_call_longer_than_the_stale_limit_keeps_its_run_alive(user, redis_client, fast):
    run = running(user)
    ctx = RunContext(run)
    with ctx.beating():
        time.sleep(2.0)  # one long call: no checkpoint, twice the stale limit
        assert silence(run) < timedelta(seconds=0.8)
        assert stale.run_reap_stale() == []
    assert IngestionRun.objects.get(pk=run.pk).status == RunStatus.INITIALIZING


def test_a_worker_stuck_past_the_limit_stops_beating_and_its_run_goes_stale(
    user, redis_client, fast
):
    fast.INTAKE_RUN_STUCK_AFTER = 0.5
    run = running(user)
    ctx = RunContext(run)
    with ctx.beating():
        time.sleep(2.0)
        assert silence(run) > timedelta(seconds=1)
        assert [r.pk for r in stale.run_reap_stale()] == [run.pk]


def test_checkpoints_keep_a_worker_counted_as_making_progress(user, redis_client, fast):
    fast.INTAKE_RUN_STUCK_AFTER = 0.5
    run = running(user)
    ctx = RunContext(run)
    with ctx.beating():
        for _ in range(20):
            time.sleep(0.1)
            ctx.checkpoint()
        assert silence(run) < timedelta(seconds=0.8)


def test_the_thread_leaves_an_aborting_run_to_its_checkpoints(user, redis_client, fast):
    run = running(user)
    ctx = RunContext(run)
    with ctx.beating():
        time.sleep(0.3)
        services.run_request_abort(IngestionRun.objects.get(pk=run.pk))
        time.sleep(1.5)
        # Stuck in a call with an abort pending: the run goes stale and the next look ends it
        # as the owner asked, instead of the thread keeping it alive.
        assert stale.run_end_if_stale(IngestionRun.objects.get(pk=run.pk))
    assert IngestionRun.objects.get(pk=run.pk).status == RunStatus.ABORTED
