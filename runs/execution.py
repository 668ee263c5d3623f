"""Executing a run's work under its lifecycle: how the way the work ended decides how the run
ends. The RQ tasks (runs/tasks.py) call these with ids; they call the executors with a
RunContext and end the run through the services.

A service module of its own, above runs.context rather than in runs.services: it builds the
RunContext, and the RunContext calls the services."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from django.utils.module_loading import import_string
from rq.job import get_current_job

from runs import dbretry, executors, services, transitions
from runs.context import RunContext
from runs.exceptions import IllegalTransition, RunAborted, RunError, RunFailed, RunGone
from runs.logcontext import run_logging
from runs.models import ACTIVE_STATUSES, RUNNING_STATUSES, IngestionRun, RunStatus
from runs.queue import LostJob

logger = logging.getLogger(__name__)


def run_pick_up(run_id: int) -> str:
    """Take a queued run from pending to a terminal state: move it to initializing and
    execute its kind's executor. Returns what became of it ("finished", "deferred" when its
    parts carry on and the last one finishes it, "skipped" when it was aborted or ended while
    queued, and see run_execute). What is logged meanwhile carries the run's id."""
    with run_logging(run_id):
        return _pick_up(run_id)


def _pick_up(run_id: int) -> str:
    run = IngestionRun.objects.filter(pk=run_id).first()
    if run is None:
        logger.warning("Run %s vanished before a worker picked it up", run_id)
        return "missing"
    try:
        transitions.run_transition(run, to=RunStatus.INITIALIZING, expected=[RunStatus.PENDING])
    except IllegalTransition as exc:
        # Aborted or reaped while queued: nothing to do, and nothing may be written.
        logger.info("Not executing run %s: %s", run_id, exc)
        return "skipped"

    def work(ctx: RunContext) -> bool:
        executor = executors.get_executor(run.kind)
        if executor is None:
            raise RunError(
                f"Runs of kind {run.kind!r} cannot be executed by this version of Intake."
            )
        return executor(ctx) is not executors.DEFERRED

    # "deferred": its part jobs carry on and the last one finishes the run.
    return run_execute(run, work, "deferred")


def run_execute_part(run_id: int, func_path: str, args: tuple[Any, ...]) -> str:
    """Execute one part of a run's work (a chunk of an ingest), queued by
    RunContext.enqueue_parts so several workers share one run. `func(ctx, *args)` returns
    True when it completed the run's last part: the run is then finished here. Abort, a
    vanished run and errors end the run as run_execute says; a part is resumable."""
    with run_logging(run_id):
        return _execute_part(run_id, func_path, args)


def _execute_part(run_id: int, func_path: str, args: tuple[Any, ...]) -> str:
    run = IngestionRun.objects.filter(pk=run_id).first()
    if run is None or run.status not in RUNNING_STATUSES:
        return "skipped"  # aborted, reaped or finished while this part was queued
    return run_execute(
        run, lambda ctx: bool(import_string(func_path)(ctx, *args)), "done", resumable=True
    )


def run_execute(
    run: IngestionRun,
    work: Callable[[RunContext], bool],
    unfinished: str,
    *,
    resumable: bool = False,
) -> str:
    """Run `work` under the run's lifecycle, its heartbeat beaten meanwhile: when it returns
    True the run is finished here; False returns `unfinished` (others finish it).
    RunAborted ends the run aborted (work done is kept), RunFailed ends it in error with its
    message, any other exception as an internal error; RunGone stops without writing when
    the run was ended elsewhere, and ends it as an internal error when it was not (see
    _end_left_active). A transient database error in `resumable` work (a part) is raised to
    RQ while the job has attempts left: RQ queues the part again and it resumes after its
    last commit."""
    ctx = RunContext(run)
    try:
        with ctx.beating():
            if not work(ctx):
                return unfinished
        ctx.checkpoint(force=True)
    except RunAborted:
        try:
            # Counted by the row as it ends, not by this worker: other workers' parts of
            # the run did their share too.
            services.run_finish(run, status=RunStatus.ABORTED, message=services.aborted_message)
        except RunGone as exc:
            if _end_left_active(run, exc):
                return "error"
        return "aborted"
    except RunFailed as exc:
        with contextlib.suppress(RunGone):
            services.run_fail(run, message=str(exc))
        return "error"
    except RunGone as exc:
        return "error" if _end_left_active(run, exc) else "gone"
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
    except RunGone as exc:
        return "error" if _end_left_active(run, exc) else "gone"
    _after_finish(run)
    return "finished"


def _after_finish(run: IngestionRun) -> None:
    """The kind's upkeep after the run is finished (executors.register): the run's end is
    stamped already, so nothing here holds it up, and a failure here is not the run's."""
    upkeep = executors.after_finish(run.kind)
    if upkeep is None:
        return
    try:
        upkeep(run)
    except Exception:
        logger.exception("Run %s: the upkeep after it finished failed", run.pk)
        dbretry.reset_connection()


def _end_left_active(run: IngestionRun, exc: RunGone) -> bool:
    """After a RunGone, end the run as error unless it really was ended elsewhere; True when
    this worker ended it.

    RunGone says a write of the worker was refused, which means "ended elsewhere" only when
    the row is terminal. The run's own writes can be refused while it is still active: a
    stage change from a state the row is not in (set_stage when it is ingesting already),
    or a write that needs a running run (the heartbeat, the abort check, queueing parts,
    finishing) while it is still pending. Left as it is, such a run holds its owner's one
    active slot until the stale check ends it minutes later, blaming an unresponsive worker.
    run_fail is a conditional UPDATE from the active states: a run that another worker, an
    abort or the reaper ended meanwhile keeps the end they gave it."""
    status = IngestionRun.objects.filter(pk=run.pk).values_list("status", flat=True).first()
    if status in ACTIVE_STATUSES:
        try:
            services.run_fail(
                run,
                message=f"Internal error: the run's worker could not go on while the run was "
                f"{status}: {exc} The run was ended; work it finished is kept.",
            )
        except RunGone:
            pass  # ended elsewhere since the read: that end stands
        else:
            logger.error("Run %s was still %s when its worker stopped: %s", run.pk, status, exc)
            return True
    logger.info("Run %s was ended elsewhere; this worker stops: %s", run.pk, exc)
    return False


def run_work_horse_died(lost: LostJob) -> None:
    """Tell the run that the work horse running one of its jobs died, before RQ requeues or
    fails the job (runs.tasks.work_horse_died).

    A part with attempts left is queued again by RQ and resumes where it stopped: the run's
    feed says so. A run's own job is not retried (its listing cannot resume), and a part out
    of attempts cannot go on: the run ends now, saying what happened to its worker, instead
    of waiting for the stale check to call it unresponsive."""
    with run_logging(lost.run_id):
        _work_horse_died(lost)


def _work_horse_died(lost: LostJob) -> None:
    run = IngestionRun.objects.filter(pk=lost.run_id, status__in=RUNNING_STATUSES).first()
    if run is None:
        return  # already ended (aborted, reaped): nothing is waiting for this job
    try:
        if lost.part is None:
            services.run_fail(
                run,
                message=f"The worker process running this run {lost.death}. The run cannot "
                "resume from where it stopped, so it was ended; work it finished is kept.",
            )
        elif lost.retried:
            transitions.publish_event(
                run,
                type="run.part_retried",
                message=f"The worker process running {lost.part} {lost.death}; {lost.part} is "
                f"queued again and resumes after its last committed batch (attempt "
                f"{lost.attempt} of {lost.attempts}).",
                payload={
                    "jobId": lost.job_id,
                    "attempt": lost.attempt,
                    "waitStatus": lost.wait_status,
                },
                require_active=True,
            )
        elif lost.attempts == 1:  # a part queued without retries: it cannot resume
            services.run_fail(
                run,
                message=f"The worker process running {lost.part} {lost.death}. "
                f"{lost.part.capitalize()} cannot resume from where it stopped, so the run "
                "was ended; work it finished is kept.",
            )
        else:
            services.run_fail(
                run,
                message=f"The worker process running {lost.part} {lost.death}, and {lost.part} "
                "has no attempts left, so the run was ended; work it finished is kept.",
            )
    except RunGone:
        pass
