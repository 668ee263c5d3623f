"""Workers killed in the middle of a run: the stale-run check in the cron process
(`manage.py cron`) ends the run, needing neither a worker nor Redis; with no worker or
scheduler left, the read paths (status poll, abort) do; a killed work horse ends its run at
once. The recovery times these print (`FIGURE ...`, with `pytest -s`) are recorded in
docs/operations.md."""

from __future__ import annotations

import os
import time
from datetime import timedelta

import psutil
import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from runs import services, stale
from runs.models import IngestionRun, RunStatus
from runs.workloads import DIAGNOSTIC
from tests.support import Proc, ValkeyServer, start_cron, start_worker, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

FAST = {"INTAKE_RUN_STALE_AFTER": 3, "INTAKE_REAPER_INTERVAL": 1, "INTAKE_HEARTBEAT_INTERVAL": 0.5}


def test_a_run_whose_worker_was_killed_is_ended_by_the_scheduled_reaper(
    user, procs, tmp_path, redis_client
):
    doomed = start_worker(tmp_path, name="doomed", **FAST)
    procs.append(doomed)
    run = services.run_start(owner=user, kind=DIAGNOSTIC, config={"items": 5000, "delay": 0.05})
    wait_for(
        lambda: IngestionRun.objects.filter(pk=run.pk, items_done__gte=3).exists(),
        timeout=30,
        what="the run to get going",
    )
    doomed.kill_hard()
    killed_at = time.monotonic()
    done_at_kill = IngestionRun.objects.get(pk=run.pk).items_done

    # What keeps running elsewhere: another worker and the cron scheduler.
    procs.append(start_worker(tmp_path, name="survivor", **FAST))
    procs.append(start_cron(tmp_path, **FAST))

    def ended() -> bool:
        run.refresh_from_db()
        return run.is_terminal

    wait_for(ended, timeout=40, interval=0.2, what="the reaper to end the run")
    elapsed = time.monotonic() - killed_at
    assert run.status == RunStatus.ERROR
    assert "worker stopped responding" in run.error_message
    # Limit 3 s + reaper every 1 s + starting the survivor's Python and Django.
    assert elapsed < 20, f"took {elapsed:.1f} s"
    assert run.items_done >= done_at_kill  # what was done before the kill is kept

    again = services.run_start(owner=user, kind=DIAGNOSTIC, config={"items": 2, "delay": 0})
    wait_for(
        lambda: IngestionRun.objects.get(pk=again.pk).status == RunStatus.FINISHED,
        timeout=30,
        what="a new run to finish on the surviving worker",
    )


# --- no worker and no scheduler left: the read paths end the run ------------------------------


def diagnostic_under_way(user, worker: Proc) -> IngestionRun:  # type: ignore[no-untyped-def]
    run = services.run_start(owner=user, kind=DIAGNOSTIC, config={"items": 5000, "delay": 0.05})
    wait_for(
        lambda: IngestionRun.objects.filter(pk=run.pk, items_done__gte=3).exists(),
        timeout=30,
        what="the run to get going",
    )
    return run


def signed_in(user) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(user)
    return client


def test_with_every_worker_dead_the_status_poll_ends_the_run_within_the_stale_limit(
    user, procs, tmp_path, redis_client, settings
):
    settings.INTAKE_RUN_STALE_AFTER = FAST["INTAKE_RUN_STALE_AFTER"]
    only = start_worker(tmp_path, name="only", **FAST)
    procs.append(only)
    run = diagnostic_under_way(user, only)
    only.kill_hard()  # every worker gone; no scheduler runs either
    killed_at = time.monotonic()
    client = signed_in(user)

    def poll() -> dict:
        state = client.get(reverse("runs:events", args=[run.pk])).json()["run"]
        return state if state["terminal"] else {}

    state = wait_for(poll, timeout=30, interval=0.2, what="the poll to end the run")
    elapsed = time.monotonic() - killed_at
    assert state["status"] == RunStatus.ERROR
    assert "worker stopped responding" in state["errorMessage"]
    # The limit (3 s) after the last beat, and the poll's interval.
    assert elapsed < FAST["INTAKE_RUN_STALE_AFTER"] + 5, f"took {elapsed:.1f} s"
    print(f"\nFIGURE every worker killed: ended by the status poll {elapsed:.1f} s later")
    again = services.run_start(owner=user, kind=DIAGNOSTIC, config={"items": 1})
    assert again.status == RunStatus.PENDING  # the owner is not locked out


def test_with_every_worker_dead_abort_ends_the_run(user, procs, tmp_path, redis_client, settings):
    settings.INTAKE_RUN_STALE_AFTER = FAST["INTAKE_RUN_STALE_AFTER"]
    only = start_worker(tmp_path, name="only", **FAST)
    procs.append(only)
    run = diagnostic_under_way(user, only)
    only.kill_hard()
    client = signed_in(user)
    abort = reverse("runs:abort", args=[run.pk])
    # At once: its heartbeat is still fresh, so the worker may yet stop it; asked to.
    client.post(abort, HTTP_HX_REQUEST="true")
    run.refresh_from_db()
    assert run.abort_requested_at is not None and not run.is_terminal
    wait_for(
        lambda: (
            stale.run_end_if_stale(IngestionRun.objects.get(pk=run.pk))
            or IngestionRun.objects.get(pk=run.pk).is_terminal
        ),
        timeout=30,
        interval=0.2,
        what="the run to go stale",
    )
    run.refresh_from_db()
    assert run.status == RunStatus.ABORTED  # what was asked for, though no worker was left
    assert "stopped responding" in run.events.order_by("-seq").first().message


def test_abort_of_a_run_whose_worker_died_a_while_ago_ends_it_at_once(
    user, procs, tmp_path, redis_client, settings
):
    settings.INTAKE_RUN_STALE_AFTER = FAST["INTAKE_RUN_STALE_AFTER"]
    only = start_worker(tmp_path, name="only", **FAST)
    procs.append(only)
    run = diagnostic_under_way(user, only)
    only.kill_hard()
    time.sleep(FAST["INTAKE_RUN_STALE_AFTER"] + 0.5)  # nobody looked meanwhile
    started = time.monotonic()
    signed_in(user).post(reverse("runs:abort", args=[run.pk]), HTTP_HX_REQUEST="true")
    took = time.monotonic() - started
    run.refresh_from_db()
    assert run.status == RunStatus.ABORTED
    print(f"\nFIGURE abort of a run whose worker is dead: ended in {took * 1000:.0f} ms")


def test_a_run_whose_work_horse_is_killed_ends_at_once_saying_so(
    user, procs, tmp_path, redis_client
):
    slow = {**FAST, "INTAKE_RUN_STALE_AFTER": 120}  # the stale check must not be what ends it
    only = start_worker(tmp_path, name="only", **slow)
    procs.append(only)
    run = diagnostic_under_way(user, only)
    horses = [
        child
        for child in psutil.Process(only.pid).children()
        if os.getpgid(child.pid) == child.pid  # RQ puts a horse in a group of its own
    ]
    assert len(horses) == 1
    horses[0].kill()
    killed_at = time.monotonic()
    wait_for(
        lambda: IngestionRun.objects.get(pk=run.pk).is_terminal,
        timeout=30,
        interval=0.05,
        what="the run to end",
    )
    elapsed = time.monotonic() - killed_at
    run.refresh_from_db()
    assert run.status == RunStatus.ERROR
    assert "was killed by signal 9 (SIGKILL)" in run.error_message
    print(f"\nFIGURE kill -9 of a run's own work horse: run ended {elapsed:.2f} s later")
    again = services.run_start(owner=user, kind=DIAGNOSTIC, config={"items": 2})
    wait_for(
        lambda: IngestionRun.objects.get(pk=again.pk).status == RunStatus.FINISHED,
        timeout=30,
        what="the same worker to run the next run",
    )


def test_the_cron_process_ends_stale_runs_with_no_worker_and_with_redis_down(
    user, procs, tmp_path, redis_client
):
    valkey = ValkeyServer(tmp_path / "valkey")
    valkey.start()
    try:
        cron = start_cron(tmp_path, REDIS_URL=valkey.url, **FAST)
        procs.append(cron)
        wait_for(
            lambda: valkey.client().zcard("rq:cron_schedulers") == 1,
            timeout=30,
            what="the cron scheduler to register",
        )
        valkey.stop()

        # A run whose worker went silent, and no worker anywhere.
        beat_at = timezone.now()
        run = IngestionRun.objects.create(
            owner=user,
            kind=DIAGNOSTIC,
            status=RunStatus.INGESTING,
            started_at=beat_at - timedelta(seconds=1),
            heartbeat_at=beat_at,
        )

        def ended() -> bool:
            run.refresh_from_db()
            return run.is_terminal

        wait_for(ended, timeout=30, interval=0.2, what="the cron process to end the run")
        silent_for = (run.finished_at - beat_at).total_seconds()
        print(f"a stale run ended {silent_for:.1f} s after its last heartbeat")
        assert run.status == RunStatus.ERROR
        assert "worker stopped responding" in run.error_message
        # Ended within the limit (3 s) and one check interval (1 s), with room for a busy
        # machine; the queued reaper job it replaces would have waited for a worker forever.
        assert silent_for < 15, f"ended {silent_for:.1f} s after the last heartbeat"

        valkey.start()
        wait_for(
            lambda: valkey.client().zcard("rq:cron_schedulers") == 1,
            timeout=30,
            what="the cron scheduler to come back to the restarted Redis",
        )
        # The scheduler's heartbeat lands in Redis just before the process logs the recovery.
        wait_for(
            lambda: "Redis is back" in cron.output(),
            timeout=10,
            what="the cron process to log that Redis is back",
        )
        assert cron.alive(), cron.output()
        # Nothing was queued for a worker meanwhile.
        assert valkey.client().llen("rq:queue:default") == 0
    finally:
        valkey.stop()
