"""Stale runs: an active run that nothing works on any more (its worker died or stopped
responding, or no worker picked it up) is found and ended.

The read paths (starting a run, abort, the status poll, the run pages) judge the one run they
read with `run_end_if_stale`; the cron process sweeps every active run with `run_reap_stale`;
start-up on the embedded default ends what its previous workers left running
(`run_end_orphaned`). Every end goes through `runs.transitions.run_transition`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from runs import queue
from runs.exceptions import IllegalTransition
from runs.models import ACTIVE_STATUSES, RUNNING_STATUSES, IngestionRun, RunStatus
from runs.transitions import run_transition

logger = logging.getLogger(__name__)


def run_reap_stale(*, now: datetime | None = None) -> list[IngestionRun]:
    """End every active run whose worker stopped responding (see `run_end_if_stale`).

    The scheduled sweep; the read paths (starting a run, abort, the status poll) check the one
    run they look at with `run_end_if_stale`, so a stale run is ended even when no worker or
    scheduler is left to run this."""
    now = now or timezone.now()
    running_cutoff = now - timedelta(seconds=settings.INTAKE_RUN_STALE_AFTER)
    pending_cutoff = now - timedelta(seconds=settings.INTAKE_RUN_PENDING_TIMEOUT)
    candidates = IngestionRun.objects.filter(
        Q(status__in=RUNNING_STATUSES)
        & (
            Q(heartbeat_at__lt=running_cutoff)
            | Q(heartbeat_at__isnull=True, started_at__lt=running_cutoff)
        )
        | Q(status=RunStatus.PENDING, created_at__lt=pending_cutoff)
    )
    return [run for run in candidates if run_end_if_stale(run, now=now)]


def run_active_for_owner(owner: User) -> IngestionRun | None:
    """The owner's active run, after ending it when it is stale: one indexed read when it is
    not. What every place that reports or refuses on "a run is in progress" asks."""
    active = IngestionRun.objects.filter(owner=owner, status__in=ACTIVE_STATUSES).first()
    if active is not None and run_end_if_stale(active):
        return None
    return active


def _silence(run: IngestionRun, now: datetime) -> tuple[float, float] | None:
    """(seconds since the run last showed life, the limit) when past the limit, else None."""
    if run.status == RunStatus.PENDING:
        since, limit = run.created_at, settings.INTAKE_RUN_PENDING_TIMEOUT
    elif run.status in RUNNING_STATUSES:
        since = run.heartbeat_at or run.started_at or run.created_at
        limit = settings.INTAKE_RUN_STALE_AFTER
    else:
        return None
    age = (now - since).total_seconds()
    return (age, limit) if age > limit else None


def run_is_stale(run: IngestionRun, now: datetime) -> bool:
    """Whether `run_end_if_stale(run, now=now)` would end the run (judged without a read)."""
    return _silence(run, now) is not None


def run_end_if_stale(
    run: IngestionRun, *, now: datetime | None = None, abort: bool = False
) -> bool:
    """End this run if it is active and nothing is working on it any more; True when it did
    (`run` then holds its new state).

    A running run is stale when its heartbeat (or its start, when it never beat) is older
    than INTAKE_RUN_STALE_AFTER; a pending one when no worker picked it up within
    INTAKE_RUN_PENDING_TIMEOUT. A stale run ends as `error` saying its worker stopped
    responding, or as `aborted` when an abort was requested (`abort`: it is being requested
    now): the owner asked for it to stop and it has. The end is a conditional UPDATE on the
    heartbeat it was judged by, so a worker that beats at that moment wins and its run is
    left alone.

    Judged on the fields `run` was read with, so it costs nothing for a run that is fresh
    or ended: the hot read paths (the status poll) call it on every request."""
    now = now or timezone.now()
    silence = _silence(run, now)
    if silence is None:
        return False
    age, limit = silence
    payload = {"reason": "stale", "secondsSilent": round(age, 1)}
    if run.status == RunStatus.PENDING:
        ended = _fail_as_read(
            run,
            message=f"No worker picked the run up within {_seconds(age)}; "
            "is an RQ worker running? The run was ended.",
            payload=payload,
            where=Q(status=RunStatus.PENDING),
        )
    else:
        where = Q(heartbeat_at=run.heartbeat_at) if run.heartbeat_at else Q(heartbeat_at=None)
        silent = f"no heartbeat for {_seconds(age)} (limit {_seconds(limit)})"
        if abort or run.abort_requested_at is not None:
            try:
                run_transition(
                    run,
                    to=RunStatus.ABORTED,
                    expected=[run.status],
                    where=where,
                    message=lambda fresh: (
                        f"Aborted at your request after {fresh.items_done:,} items. Its "
                        f"worker had stopped responding ({silent}), so the run was ended "
                        "without waiting for it; finished work is kept."
                    ),
                    payload=payload,
                )
                ended = True
            except IllegalTransition:
                ended = False
        else:
            ended = _fail_as_read(
                run,
                message=f"The worker stopped responding: {silent}. "
                "The run was ended; work it finished is kept.",
                payload=payload,
                where=where,
            )
    if not ended:
        return False  # it moved (beat, finished, aborted) since it was read: leave it be
    job_ids = list(run.queue_job_ids)
    transaction.on_commit(partial(queue.cancel_jobs, job_ids), robust=True)
    run.refresh_from_db()
    logger.warning("Ended stale run %s (%s)", run.pk, run.status)
    return True


def run_end_orphaned(*, message: str) -> list[IngestionRun]:
    """End every running run as `error` with `message`: for start-up when it is certain that
    no worker from before is still alive (the embedded default, whose workers are all
    children of the previous `start`). Pending runs stay: their queued jobs survive in Redis
    and run on the new workers."""
    running = IngestionRun.objects.filter(status__in=RUNNING_STATUSES)
    return [
        run for run in running if _fail_as_read(run, message=message, payload={"reason": "restart"})
    ]


def _fail_as_read(
    run: IngestionRun, *, message: str, payload: Mapping[str, Any], where: Q | None = None
) -> bool:
    """End the run as `error` from the state it was read in; False when it moved since."""
    try:
        run_transition(
            run,
            to=RunStatus.ERROR,
            expected=[run.status],
            where=where,
            error_message=message,
            payload=payload,
        )
    except IllegalTransition:
        return False
    return True


def _seconds(value: float) -> str:
    if value < 10:
        # "2.4 s (limit 2 s)", not "2 s (limit 2 s)" for a run judged past its limit.
        return f"{value:.1f}".rstrip("0").rstrip(".") + " s"
    value = int(round(value))
    if value < 120:
        return f"{value} s"
    return f"{value // 60} min {value % 60} s"
