"""RQ tasks: thin, take ids, call services. runs.queue queues them by these names."""

from __future__ import annotations

import logging
from typing import Any

from django.db import close_old_connections, connections
from rq.job import Job

from runs import execution, queue, stale

logger = logging.getLogger(__name__)


def execute_run(run_id: int) -> str:
    """Execute one run from pending to a terminal state (runs.execution.run_pick_up)."""
    close_old_connections()
    return execution.run_pick_up(run_id)


def execute_part(run_id: int, func_path: str, *args: Any) -> str:
    """One part of a run's work (runs.execution.run_execute_part)."""
    close_old_connections()
    return execution.run_execute_part(run_id, func_path, args)


def reap_stale_runs() -> int:
    """The stale-run check as an RQ job, for whoever wants to queue one; `manage.py cron`
    runs the check itself, so that it needs no worker."""
    close_old_connections()
    return len(stale.run_reap_stale())


def work_horse_died(job: Job, wait_status: int | None) -> None:
    """Called in the worker's own process (runs.worker.IntakeWorker) when the work horse
    running `job` died before finishing it, before RQ requeues or fails the job: the run
    hears at once what became of its work (runs.execution.run_work_horse_died)."""
    try:
        lost = queue.lost_job(job, wait_status)
        if lost is not None:
            execution.run_work_horse_died(lost)
    except Exception:
        logger.exception("Could not record the death of the work horse of %s", job.id)
    finally:
        # The worker forks its next horse from this process: it must hold no connection
        # (nor a pool of them) that a horse would inherit.
        for connection in connections.all():
            connection.close()
            close_pool = getattr(connection, "close_pool", None)
            if close_pool is not None:
                close_pool()
