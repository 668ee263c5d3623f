"""A worker killed with SIGKILL in the middle of a run: the scheduled reaper ends the run."""

from __future__ import annotations

import sys
import time

import pytest

from runs import services
from runs.models import IngestionRun, RunKind, RunStatus
from tests.support import Proc, child_env, start_worker, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

FAST = {"INTAKE_RUN_STALE_AFTER": 3, "INTAKE_REAPER_INTERVAL": 1, "INTAKE_HEARTBEAT_INTERVAL": 0.5}


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
    cron = [sys.executable, "manage.py", "rqcron", "project.cron"]
    procs.append(Proc("cron", cron, env=child_env(**FAST), log_dir=tmp_path))

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
