"""RQ tasks: thin, take ids, call services."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

import django_rq
from django.db import close_old_connections
from django.utils.module_loading import import_string
from rq import get_current_job
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus

from runs import executors, services
from runs.context import RunAborted, RunContext, RunFailed
from runs.models import RUNNING_STATUSES, IngestionRun, RunStatus

logger = logging.getLogger(__name__)

QUEUE_NAME = "default"


def get_queue():  # type: ignore[no-untyped-def]
    # In a work horse, queue on the worker's own connection: it waits out a Redis outage
    # (runs.outage), where a new one would fail the run that is queuing its parts.
    job = get_current_job()
    return django_rq.get_queue(QUEUE_NAME, connection=job.connection if job else None)


def execute_run(run_id: int) -> str:
    """Execute one run from pending to a terminal state."""
    close_old_connections()
    run = IngestionRun.objects.filter(pk=run_id).first()
    if run is None:
        logger.warning("Run %s vanished before a worker picked it up", run_id)
        return "missing"
    try:
        services.run_transition(run, to=RunStatus.INITIALIZING, expected=[RunStatus.PENDING])
    except services.IllegalTransition as exc:
        # Aborted or reaped while queued: nothing to do, and nothing may be written.
        logger.info("Not executing run %s: %s", run_id, exc)
        return "skipped"

    # "deferred": its part jobs carry on and the last one finishes the run.
    return _drive(
        run, lambda ctx: executors.get_executor(run.kind)(ctx) is not executors.DEFERRED, "deferred"
    )


def execute_part(run_id: int, func_path: str, *args: Any) -> str:
    """One part of a run's work (a chunk of an ingest), queued by RunContext.enqueue_parts
    so several workers share one run. `func(ctx, *args)` returns True when it completed the
    run's last part: the run is then finished here. Abort, a vanished run and errors end the
    run the same way execute_run does."""
    close_old_connections()
    run = IngestionRun.objects.filter(pk=run_id).first()
    if run is None or run.status not in RUNNING_STATUSES:
        return "skipped"  # aborted, reaped or finished while this part was queued
    return _drive(run, lambda ctx: bool(import_string(func_path)(ctx, *args)), "done")


def _drive(run: IngestionRun, work: Callable[[RunContext], bool], unfinished: str) -> str:
    """Run `work` under the run's lifecycle: when it returns True the run is finished here;
    False returns `unfinished` (others finish it). RunAborted ends the run aborted (work done
    is kept), RunFailed ends it in error with its message, any other exception as an
    internal error; RunGone (ended elsewhere) stops without writing."""
    ctx = RunContext(run)
    try:
        if not work(ctx):
            return unfinished
        ctx.checkpoint(force=True)
    except RunAborted:
        with contextlib.suppress(services.RunGone):
            services.run_finish(
                run,
                status=RunStatus.ABORTED,
                message=f"Aborted at your request after {run.items_done} items; "
                "finished work is kept.",
            )
        return "aborted"
    except RunFailed as exc:
        with contextlib.suppress(services.RunGone):
            services.run_fail(run, message=str(exc))
        return "error"
    except services.RunGone as exc:
        logger.info("Run %s was ended elsewhere; this worker stops: %s", run.pk, exc)
        return "gone"
    except Exception as exc:
        logger.exception("Run %s failed", run.pk)
        with contextlib.suppress(services.RunGone):
            services.run_fail(run, message=f"Internal error: {type(exc).__name__}: {exc}")
        return "error"
    try:
        services.run_finish(run)
    except services.RunGone:
        return "gone"
    return "finished"


def reap_stale_runs() -> int:
    """The stale-run check as an RQ job, for whoever wants to queue one; `manage.py cron`
    runs the check itself, so that it needs no worker."""
    close_old_connections()
    return len(services.run_reap_stale())


def cancel_jobs(job_ids: list[str]) -> None:
    """Best effort: drop queued jobs and stop started ones (a stuck worker's last resort).
    Our run state lives in the database; this only saves a worker from useless work."""
    queue = get_queue()
    for job_id in job_ids:
        try:
            job = Job.fetch(job_id, connection=queue.connection)
        except NoSuchJobError:
            continue
        except Exception:
            logger.warning("Could not look up queued job %s", job_id, exc_info=True)
            continue
        try:
            status = job.get_status()
            if status == JobStatus.STARTED:
                send_stop_job_command(queue.connection, job_id)
            elif status in (JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED):
                job.cancel()
        except (InvalidJobOperation, NoSuchJobError):
            pass
        except Exception:
            logger.warning("Could not cancel job %s", job_id, exc_info=True)
