"""The stale-run check in the cron process (`manage.py cron`): it ends a run whose worker was
killed, and it needs neither a worker nor Redis to do so."""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from runs import services
from runs.models import IngestionRun, RunKind, RunStatus
from tests.support import Proc, ValkeyServer, child_env, start_worker, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

FAST = {"INTAKE_RUN_STALE_AFTER": 3, "INTAKE_REAPER_INTERVAL": 1, "INTAKE_HEARTBEAT_INTERVAL": 0.5}


def start_cron(log_dir: Path, **env: Any) -> Proc:
    argv = [sys.executable, "manage.py", "cron"]
    return Proc("cron", argv, env=child_env(**env), log_dir=log_dir)


def test_a_run_whose_worker_was_killed_is_ended_by_the_scheduled_reaper(
    user, procs, tmp_path, redis_client
):
    doomed = start_worker(tmp_path, name="doomed", **FAST)
    procs.append(doomed)
    run = services.run_start(
        owner=user, kind=RunKind.DIAGNOSTIC, config={"items": 5000, "delay": 0.05}
    )
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

    again = services.run_start(owner=user, kind=RunKind.DIAGNOSTIC, config={"items": 2, "delay": 0})
    wait_for(
        lambda: IngestionRun.objects.get(pk=again.pk).status == RunStatus.FINISHED,
        timeout=30,
        what="a new run to finish on the surviving worker",
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
            kind=RunKind.DIAGNOSTIC,
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
        assert cron.alive(), cron.output()
        assert "Redis is back" in cron.output()
        # Nothing was queued for a worker meanwhile.
        assert valkey.client().llen("rq:queue:default") == 0
    finally:
        valkey.stop()
