"""Writes to the run lifecycle. Views, tasks, commands and admin actions all call these: one
code path per action, whichever door it comes through.

A status changes only through `runs.transitions.run_transition`, and every event is appended by
`runs.transitions.publish_event`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from runs import executors, queue
from runs.exceptions import (
    IdempotencyMismatch,
    IllegalTransition,
    RunError,
    RunGone,
    RunInProgress,
    RunNotActive,
)
from runs.models import (
    ACTIVE_STATUSES,
    COUNT_FIELDS,
    RUNNING_STATUSES,
    IngestionRun,
    RunStatus,
)
from runs.outbox import outbox_run_event
from runs.stale import run_active_for_owner, run_end_if_stale
from runs.transitions import publish_event, run_transition

logger = logging.getLogger(__name__)


# --- starting -------------------------------------------------------------------------------


def run_start(
    *,
    owner: User,
    kind: str,
    config: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
    request_fingerprint: str = "",
    preview: IngestionRun | None = None,
) -> IngestionRun:
    """Create a pending run and queue its work for after the transaction commits.

    The same `idempotency_key` returns the same run, whatever its state, unless both that
    run and this call carry a `request_fingerprint` (a digest of the request) and they
    differ: IdempotencyMismatch. A second active run for the owner is refused with
    RunInProgress naming the active one; the database's conditional unique constraint
    decides races between concurrent starts.
    """
    if executors.get_executor(kind) is None:
        known = ", ".join(executors.kinds())
        raise RunError(f"Unknown run kind {kind!r}; expected one of {known}.")
    if idempotency_key is not None:
        idempotency_key = idempotency_key.strip()
        if not idempotency_key or len(idempotency_key) > 255:
            raise RunError("An idempotency key must be 1 to 255 characters.")
        existing = _run_with_key(owner, idempotency_key)
        if existing:
            return _same_request(existing, request_fingerprint)
    active = run_active_for_owner(owner)
    if active:
        if idempotency_key is not None and active.idempotency_key == idempotency_key:
            # A concurrent start with this key committed after the lookup above.
            return _same_request(active, request_fingerprint)
        raise RunInProgress(active)

    try:
        with transaction.atomic():
            run = IngestionRun.objects.create(
                owner=owner,
                kind=kind,
                config=dict(config or {}),
                idempotency_key=idempotency_key,
                request_fingerprint=request_fingerprint if idempotency_key else "",
                preview=preview,
            )
            job_id = queue.run_job_id(run.pk)
            run.queue_job_ids = [job_id]
            run.save(update_fields=["queue_job_ids"])
            publish_event(run, type="run.created", message="Run queued; waiting for a worker.")
            outbox_run_event(run, RunStatus.PENDING)
            run_id = run.pk
            transaction.on_commit(lambda: _enqueue_run(run_id, job_id))
    except IntegrityError:
        # Lost a race to a concurrent start: report the winner, as the constraint intends.
        if idempotency_key is not None:
            existing = _run_with_key(owner, idempotency_key)
            if existing:
                return _same_request(existing, request_fingerprint)
        active = IngestionRun.objects.filter(owner=owner, status__in=ACTIVE_STATUSES).first()
        if active:
            raise RunInProgress(active) from None
        raise
    return run


def _run_with_key(owner: User, idempotency_key: str) -> IngestionRun | None:
    return IngestionRun.objects.filter(owner=owner, idempotency_key=idempotency_key).first()


def _same_request(run: IngestionRun, fingerprint: str) -> IngestionRun:
    # A run made without a fingerprint (a page's form) cannot be told apart: it is the one.
    if fingerprint and run.request_fingerprint and fingerprint != run.request_fingerprint:
        raise IdempotencyMismatch(run)
    return run


def _enqueue_run(run_id: int, job_id: str) -> None:
    try:
        queue.enqueue_run(run_id, job_id)
    except Exception as exc:  # Redis down: the run must not sit pending forever
        logger.exception("Could not queue run %s", run_id)
        run = IngestionRun.objects.get(pk=run_id)
        with contextlib.suppress(IllegalTransition):
            run_transition(
                run,
                to=RunStatus.ERROR,
                expected=[RunStatus.PENDING],
                error_message=f"Could not queue the run: the queue (Redis) is unreachable ({exc}).",
            )


def run_enqueue_parts(
    run: IngestionRun,
    func_path: str,
    parts: list[tuple[str, tuple[Any, ...]]],
    *,
    retries: int = queue.PART_RETRIES,
) -> list[str]:
    """Queue parts of a running run's work (see runs.tasks.execute_part) after commit, each
    tried again up to `retries` times when its work horse dies."""
    job_ids = [queue.part_job_id(run.pk, part_id) for part_id, _ in parts]
    with transaction.atomic():
        current = (
            IngestionRun.objects.select_for_update()
            .filter(pk=run.pk, status__in=RUNNING_STATUSES)
            .values_list("queue_job_ids", flat=True)
            .first()
        )
        if current is None:
            raise RunGone(f"Run #{run.pk} is no longer running; its parts were not queued.")
        run.queue_job_ids = [*current, *job_ids]
        IngestionRun.objects.filter(pk=run.pk).update(queue_job_ids=run.queue_job_ids)
        calls = [(job_id, args) for job_id, (_, args) in zip(job_ids, parts, strict=True)]
        transaction.on_commit(partial(_enqueue_parts, run.pk, func_path, calls, retries))
    return job_ids


def _enqueue_parts(
    run_id: int, func_path: str, calls: list[tuple[str, tuple[Any, ...]]], retries: int
) -> None:
    try:
        queue.enqueue_parts(run_id, func_path, calls, retries=retries)
    except Exception as exc:  # Redis down: end the run rather than wait for parts never run
        logger.exception("Could not queue the parts of run %s", run_id)
        with contextlib.suppress(RunGone):
            run_fail(
                IngestionRun.objects.get(pk=run_id),
                message=f"Could not queue work: the queue (Redis) is unreachable ({exc}).",
            )


def run_set_summary(run: IngestionRun, summary: Mapping[str, Any]) -> None:
    """Record what the executor reports beyond the counters (guarded like every worker
    write: RunGone when the run is no longer active)."""
    if (
        IngestionRun.objects.filter(pk=run.pk, status__in=ACTIVE_STATUSES).update(
            summary=dict(summary)
        )
        != 1
    ):
        raise RunGone(f"Run #{run.pk} is no longer active; summary dropped.")
    run.summary = dict(summary)


# --- worker-side writes (all guarded by the run still being active) -------------------------


def run_heartbeat(run: IngestionRun) -> bool:
    """Beat the heartbeat. Returns whether an abort was requested; raises RunGone when the run
    is no longer active (reaped or finished elsewhere), so the worker stops."""
    now = timezone.now()
    beat = IngestionRun.objects.filter(
        pk=run.pk, status__in=RUNNING_STATUSES, abort_requested_at__isnull=True
    ).update(heartbeat_at=now)
    if beat == 1:
        run.heartbeat_at = now
        return False
    # Not beaten: the run ended elsewhere (run_abort_requested raises RunGone) or an abort
    # was requested, in which case it still beats while it winds down.
    aborted = run_abort_requested(run)
    IngestionRun.objects.filter(pk=run.pk, status__in=RUNNING_STATUSES).update(heartbeat_at=now)
    return aborted


def run_beat(run: IngestionRun) -> bool:
    """The heartbeat thread's beat (RunContext.beating): False once the run is no longer
    running or an abort was requested, when the thread leaves the beating to the work's own
    checkpoints. Touches only the row, never `run` (it belongs to another thread)."""
    return (
        IngestionRun.objects.filter(
            pk=run.pk, status__in=RUNNING_STATUSES, abort_requested_at__isnull=True
        ).update(heartbeat_at=timezone.now())
        == 1
    )


def run_abort_requested(run: IngestionRun) -> bool:
    """Read-only twin of run_heartbeat for the checks between beats: whether an abort was
    requested; RunGone when the run is no longer running."""
    state = IngestionRun.objects.filter(pk=run.pk).values("status", "abort_requested_at").first()
    if state is None or state["status"] not in RUNNING_STATUSES:
        raise RunGone(f"Run #{run.pk} is no longer running.")
    run.abort_requested_at = state["abort_requested_at"]
    return run.abort_requested_at is not None


def run_update_progress(
    run: IngestionRun,
    *,
    done: int | None = None,
    total: int | None = None,
    increments: Mapping[str, int] | None = None,
    counts: Mapping[str, int] | None = None,
    outcomes: Mapping[str, int] | None = None,
    force_event: bool = False,
) -> bool:
    """Record progress and counts, and publish a throttled `run.progress` event.

    `increments` adds to counters (safe when several workers share a run); `counts` sets
    them. Keys are field names (`jobs_ready`) or their short names (`ready`). `outcomes` adds
    to the run's counts per outcome (its row is locked meanwhile). Progress events
    go out at most every INTAKE_PROGRESS_INTERVAL seconds per run, across all its workers,
    unless `force_event`. Returns whether an event was published. Raises RunGone when the
    run is no longer active.
    """
    with transaction.atomic():
        # The row, locked until the caller's transaction ends (an UPDATE would lock it as
        # long): what is added here to the counters it holds is exact, so one UPDATE writes
        # them, and `run` takes the row from it rather than from a second read.
        current = IngestionRun.objects.select_for_update().filter(pk=run.pk).first()
        if current is None or current.status not in ACTIVE_STATUSES:
            raise RunGone(f"Run #{run.pk} is no longer active; progress dropped.")
        now = timezone.now()
        fields: dict[str, Any] = {"heartbeat_at": now}
        if done is not None:
            fields["items_done"] = done
        if total is not None:
            fields["total_jobs"] = total
        for key, value in (counts or {}).items():
            fields[_count_field(key)] = value
        for key, value in (increments or {}).items():
            field = _count_field(key) if key not in {"items_done", "total_jobs"} else key
            fields[field] = getattr(current, field) + value
        if outcomes:
            merged = dict(current.outcome_counts or {})
            for name, value in outcomes.items():
                merged[name] = merged.get(name, 0) + value
            fields["outcome_counts"] = merged
        published = current.progress_published_at
        won = (
            force_event
            or published is None
            or published <= now - timedelta(seconds=settings.INTAKE_PROGRESS_INTERVAL)
        )
        if won:
            fields["progress_published_at"] = now
        IngestionRun.objects.filter(pk=run.pk).update(**fields)
        for name, value in fields.items():
            setattr(current, name, value)
        for column in IngestionRun._meta.concrete_fields:
            setattr(run, column.attname, getattr(current, column.attname))
        if not won:
            return False
        done_text = (
            f"{run.items_done:,} of {run.total_jobs:,}" if run.total_jobs else f"{run.items_done:,}"
        )
        rate = run.rate_per_second
        rate_text = f" ({rate:,.0f}/s)" if rate else ""
        publish_event(
            run,
            type="run.progress",
            message=f"{done_text} done{rate_text}",
            payload={"done": run.items_done, "total": run.total_jobs, "ratePerSecond": rate},
            require_active=True,
        )
    return True


def _count_field(key: str) -> str:
    if key in COUNT_FIELDS:
        return key
    for field, short in COUNT_FIELDS.items():
        if short == key:
            return field
    raise ValueError(f"Unknown run counter {key!r}")


def run_finish(
    run: IngestionRun,
    *,
    status: str = RunStatus.FINISHED,
    message: str | Callable[[IngestionRun], str] = "",
) -> IngestionRun:
    """End a running run as finished or aborted (a worker's last write)."""
    if status not in (RunStatus.FINISHED, RunStatus.ABORTED):
        raise ValueError("run_finish ends a run as finished or aborted; use run_fail for errors")
    try:
        return run_transition(run, to=status, expected=RUNNING_STATUSES, message=message)
    except IllegalTransition as exc:
        raise RunGone(str(exc)) from exc


def run_fail(run: IngestionRun, *, message: str) -> IngestionRun:
    """End an active run as error with a message saying why."""
    try:
        return run_transition(
            run, to=RunStatus.ERROR, expected=ACTIVE_STATUSES, error_message=message
        )
    except IllegalTransition as exc:
        raise RunGone(str(exc)) from exc


# --- abort ----------------------------------------------------------------------------------


def run_request_abort(run: IngestionRun) -> IngestionRun:
    """Ask the run to stop.

    A pending run (still queued) is aborted at once and its queued job cancelled. A running
    one gets `abort_requested_at` and stops at its worker's next checkpoint, keeping what it
    finished; one whose worker stopped responding (heartbeat older than
    INTAKE_RUN_STALE_AFTER) has no checkpoint coming and is ended as aborted at once. Asking
    again, or asking an already aborted run, changes nothing (idempotent) unless the run has
    gone stale meanwhile; asking a finished or failed run is refused with RunNotActive.
    """
    try:
        run_transition(
            run,
            to=RunStatus.ABORTED,
            expected=[RunStatus.PENDING],
            message="Aborted before a worker picked it up.",
        )
    except IllegalTransition:
        pass
    else:
        job_ids = list(run.queue_job_ids)
        transaction.on_commit(lambda: queue.cancel_jobs(job_ids), robust=True)
        return run

    run.refresh_from_db()
    if run.status in RUNNING_STATUSES and run_end_if_stale(run, abort=True):
        return run
    now = timezone.now()
    with transaction.atomic():
        requested = IngestionRun.objects.filter(
            pk=run.pk, status__in=RUNNING_STATUSES, abort_requested_at__isnull=True
        ).update(abort_requested_at=now)
        if requested == 1:
            publish_event(
                run,
                type="run.abort_requested",
                message="Abort requested; stopping at the next checkpoint. Finished work is kept.",
            )
            return run
    run.refresh_from_db()
    if run.status in RUNNING_STATUSES or run.status == RunStatus.ABORTED:
        return run
    raise RunNotActive(
        f"Run #{run.pk} is already {run.status}; only a pending or running run can be aborted."
    )


def aborted_message(run: IngestionRun) -> str:
    """What an aborted run says: the items it finished, as the row counts them."""
    return f"Aborted at your request after {run.items_done:,} items; finished work is kept."
