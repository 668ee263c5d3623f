"""RQ tasks: thin, take ids, call services."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Callable
from typing import Any

import django_rq
from django.db import close_old_connections, connections
from django.utils.module_loading import import_string
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus, get_current_job

from runs import dbretry, executors, services
from runs.context import RunContext
from runs.exceptions import IllegalTransition, RunAborted, RunFailed, RunGone
from runs.models import RUNNING_STATUSES, IngestionRun, RunStatus

logger = logging.getLogger(__name__)

QUEUE_NAME = "default"
# Further attempts at a part (RQ's Retry(max=...): 2 means 3 attempts in all).
PART_RETRIES = 2


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
    except IllegalTransition as exc:
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
    return _drive(
        run, lambda ctx: bool(import_string(func_path)(ctx, *args)), "done", resumable=True
    )


def _drive(
    run: IngestionRun,
    work: Callable[[RunContext], bool],
    unfinished: str,
    *,
    resumable: bool = False,
) -> str:
    """Run `work` under the run's lifecycle: when it returns True the run is finished here;
    False returns `unfinished` (others finish it). RunAborted ends the run aborted (work done
    is kept), RunFailed ends it in error with its message, any other exception as an
    internal error; RunGone (ended elsewhere) stops without writing. A transient database
    error in `resumable` work (a part) is raised to RQ while the job has attempts left: RQ
    queues the part again and it resumes after its last commit."""
    ctx = RunContext(run)
    try:
        with ctx.beating():
            if not work(ctx):
                return unfinished
        ctx.checkpoint(force=True)
    except RunAborted:
        with contextlib.suppress(RunGone):
            # Counted by the row as it ends, not by this worker: other workers' parts of
            # the run did their share too.
            services.run_finish(run, status=RunStatus.ABORTED, message=services.aborted_message)
        return "aborted"
    except RunFailed as exc:
        with contextlib.suppress(RunGone):
            services.run_fail(run, message=str(exc))
        return "error"
    except RunGone as exc:
        logger.info("Run %s was ended elsewhere; this worker stops: %s", run.pk, exc)
        return "gone"
    except Exception as exc:
        message = f"Internal error: {type(exc).__name__}: {exc}"
        if dbretry.is_transient(exc):
            dbretry.reset_connection()
            job = get_current_job()
            if resumable and job is not None and job.should_retry:
                logger.warning("Run %s: database error, its part is queued again: %s", run.pk, exc)
                raise
            message = (
                f"The database connection failed ({exc}). The run was ended; work it "
                "finished is kept."
            )
        logger.exception("Run %s failed", run.pk)
        with contextlib.suppress(RunGone):
            services.run_fail(run, message=message)
        return "error"
    try:
        services.run_finish(run)
    except RunGone:
        return "gone"
    return "finished"


def work_horse_died(job: Job, wait_status: int | None) -> None:
    """Called in the worker's own process (runs.worker.IntakeWorker) when the work horse
    running `job` died before finishing it, before RQ requeues or fails the job.

    A part with attempts left is queued again by RQ and resumes where it stopped: the run's
    feed says so. A run's own job is not retried (its listing cannot resume), and a part out
    of attempts cannot go on: the run ends now, saying what happened to its worker, instead
    of waiting for the stale check to call it unresponsive."""
    func = job.func_name
    if func not in (_EXECUTE_RUN, _EXECUTE_PART) or not job.args:
        return
    run_id = int(job.args[0])
    died = _death(wait_status)
    try:
        run = IngestionRun.objects.filter(pk=run_id, status__in=RUNNING_STATUSES).first()
        if run is None:
            return  # already ended (aborted, reaped): nothing is waiting for this job
        if func == _EXECUTE_RUN:
            services.run_fail(
                run,
                message=f"The worker process running this run {died}. The run cannot resume "
                "from where it stopped, so it was ended; work it finished is kept.",
            )
            return
        part = job.id.removeprefix(f"intake-run-{run_id}-").replace("-", " ")
        if job.should_retry:
            attempt = PART_RETRIES - (job.retries_left or 0) + 2
            services.publish_event(
                run,
                type="run.part_retried",
                message=f"The worker process running {part} {died}; {part} is queued again "
                f"and resumes after its last committed batch (attempt {attempt} of "
                f"{PART_RETRIES + 1}).",
                payload={"jobId": job.id, "attempt": attempt, "waitStatus": wait_status},
                require_active=True,
            )
        else:
            services.run_fail(
                run,
                message=f"The worker process running {part} {died}, and {part} has no "
                "attempts left, so the run was ended; work it finished is kept.",
            )
    except RunGone:
        pass
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


_EXECUTE_RUN = f"{__name__}.execute_run"
_EXECUTE_PART = f"{__name__}.execute_part"


def _death(wait_status: int | None) -> str:
    """How a process ended, from its waitpid status, as the end of a sentence."""
    if wait_status is not None and os.WIFSIGNALED(wait_status):
        number = os.WTERMSIG(wait_status)
        try:
            name = f" ({signal.Signals(number).name})"
        except ValueError:
            name = ""
        return f"was killed by signal {number}{name}"
    if wait_status is not None and os.WIFEXITED(wait_status):
        return f"exited unexpectedly with status {os.WEXITSTATUS(wait_status)}"
    return "died unexpectedly"


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
