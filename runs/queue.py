"""The RQ side of runs: the queue, the jobs a run is made of (their ids, lifetimes and
retries), cancelling them, and reading what RQ says of a work horse that died.

The jobs name their functions by dotted path (RQ imports them in the worker), so this module
imports none of the runs modules that decide what the jobs do: the services queue work
through it, and the tasks it names call the services."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import django_rq
from rq import Queue, Retry
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus, get_current_job

logger = logging.getLogger(__name__)

QUEUE_NAME = "default"
# The RQ tasks (runs/tasks.py), by the names RQ records on their jobs.
EXECUTE_RUN = "runs.tasks.execute_run"
EXECUTE_PART = "runs.tasks.execute_part"
# Further attempts at a part (RQ's Retry(max=...): 2 means 3 attempts in all).
PART_RETRIES = 2
# The job meta key of the attempts a part was queued with.
ATTEMPTS = "intake_attempts"
# How long RQ keeps a finished job, and a failed one (for an operator to look at).
RESULT_TTL = 3600
FAILURE_TTL = 7 * 86400


def get_queue() -> Queue:
    # In a work horse, queue on the worker's own connection: it waits out a Redis outage
    # (runs.outage), where a new one would fail the run that is queuing its parts.
    job = get_current_job()
    return django_rq.get_queue(QUEUE_NAME, connection=job.connection if job else None)


def run_job_id(run_id: int) -> str:
    return f"intake-run-{run_id}"


def part_job_id(run_id: int, part_id: str) -> str:
    return f"{run_job_id(run_id)}-{part_id}"


def enqueue_run(run_id: int, job_id: str) -> None:
    """Queue the run's own job (runs.tasks.execute_run). Raises when Redis is unreachable."""
    get_queue().enqueue(
        EXECUTE_RUN, run_id, job_id=job_id, result_ttl=RESULT_TTL, failure_ttl=FAILURE_TTL
    )


def enqueue_parts(
    run_id: int,
    func_path: str,
    calls: Sequence[tuple[str, tuple[Any, ...]]],
    *,
    retries: int = PART_RETRIES,
) -> None:
    """Queue `func_path` with each (job id, args) as a part (runs.tasks.execute_part), tried
    again up to `retries` times when its work horse dies (0: a part that cannot resume).
    Raises when Redis is unreachable."""
    get_queue().enqueue_many(
        [
            Queue.prepare_data(
                EXECUTE_PART,
                args=(run_id, func_path, *args),
                job_id=job_id,
                result_ttl=RESULT_TTL,
                failure_ttl=FAILURE_TTL,
                # A part whose work horse died (or whose database connection broke) is
                # queued again at once, at the front: parts resume where they stopped.
                retry=Retry(max=retries, enqueue_at_front=True) if retries else None,
                meta={ATTEMPTS: retries + 1},
            )
            for job_id, args in calls
        ]
    )


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


@dataclass(frozen=True)
class LostJob:
    """A run's job whose work horse died before finishing it, as RQ reports it."""

    run_id: int
    job_id: str
    # "chunk 3" for a part (from its id); None for the run's own job, which is not retried.
    part: str | None
    # Whether RQ queues the job again, and which attempt of how many that will be.
    retried: bool
    attempt: int
    attempts: int
    # How the horse ended, as the end of a sentence ("was killed by signal 9 (SIGKILL)").
    death: str
    wait_status: int | None


def run_id_of(job: Job) -> int | None:
    """The run whose work `job` is; None for any other job."""
    if job.func_name not in (EXECUTE_RUN, EXECUTE_PART) or not job.args:
        return None
    return int(job.args[0])


def lost_job(job: Job, wait_status: int | None) -> LostJob | None:
    """What the death of the work horse running `job` means for a run; None when `job` is
    not one of a run's jobs. Called before RQ requeues or fails the job."""
    run_id = run_id_of(job)
    if run_id is None:
        return None
    if job.func_name == EXECUTE_RUN:  # queued without a Retry: its listing cannot resume
        part, retried, attempt, attempts = None, False, 1, 1
    else:
        part = job.id.removeprefix(f"{run_job_id(run_id)}-").replace("-", " ")
        retried = job.should_retry
        # RQ reads a job's retries left as None once none are left, as for a job queued
        # without a Retry: the attempts it was queued with tell them apart.
        attempts = int(job.meta.get(ATTEMPTS, PART_RETRIES + 1))
        # When retried, the attempt RQ queues next.
        attempt = attempts - (job.retries_left or 0) + 1 if retried else attempts
    return LostJob(
        run_id=run_id,
        job_id=job.id,
        part=part,
        retried=retried,
        attempt=attempt,
        attempts=attempts,
        death=_death(wait_status),
        wait_status=wait_status,
    )


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
