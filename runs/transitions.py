"""The one way a run changes: every status change is a conditional UPDATE whose row count says
whether it won (`run_transition`); every event is appended by `publish_event` in the caller's
transaction and broadcast only after that transaction commits."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from runs import executors, feed, grip
from runs.exceptions import IllegalTransition, RunGone
from runs.models import ACTIVE_STATUSES, TERMINAL_STATUSES, IngestionRun, RunEvent, RunStatus
from runs.outbox import outbox_run_event

# The lifecycle: pending → initializing → ingesting → finished | error | aborted.
# Terminal states have no way out.
TRANSITIONS: dict[str, frozenset[str]] = {
    RunStatus.PENDING: frozenset({RunStatus.INITIALIZING, RunStatus.ABORTED, RunStatus.ERROR}),
    RunStatus.INITIALIZING: frozenset(
        {RunStatus.INGESTING, RunStatus.FINISHED, RunStatus.ERROR, RunStatus.ABORTED}
    ),
    RunStatus.INGESTING: frozenset({RunStatus.FINISHED, RunStatus.ERROR, RunStatus.ABORTED}),
    RunStatus.FINISHED: frozenset(),
    RunStatus.ERROR: frozenset(),
    RunStatus.ABORTED: frozenset(),
}


# --- events ---------------------------------------------------------------------------------


def publish_event(
    run: IngestionRun | int,
    *,
    type: str,
    message: str = "",
    payload: Mapping[str, Any] | None = None,
    require_active: bool = False,
) -> RunEvent:
    """Append an event to the run and broadcast it once the transaction commits.

    The run row is locked while the sequence number is taken, so one run's events are
    numbered in commit order even when several workers write at once, and the snapshot the
    event carries is the run's state as of this transaction. With `require_active`, a run
    that is no longer active refuses the event (RunGone): late writes change nothing.
    """
    run_id = run if isinstance(run, int) else run.pk
    with transaction.atomic():
        updated = IngestionRun.objects.filter(pk=run_id)
        if require_active:
            updated = updated.filter(status__in=ACTIVE_STATUSES)
        if updated.update(last_event_seq=F("last_event_seq") + 1) != 1:
            raise RunGone(f"Run #{run_id} is no longer active; event {type!r} dropped.")
        fresh = IngestionRun.objects.get(pk=run_id)
        event = RunEvent.objects.create(
            run_id=run_id,
            seq=fresh.last_event_seq,
            type=type,
            message=message,
            payload=dict(payload or {}),
            snapshot=fresh.snapshot(),
        )
        envelope = event.envelope()
        transaction.on_commit(lambda: _broadcast(envelope), robust=True)
    if isinstance(run, IngestionRun):
        _copy_state(fresh, into=run)
    return event


def _broadcast(envelope: dict[str, Any]) -> None:
    """Push a committed event to the web processes (Redis) and, when INTAKE_GRIP_URL is
    set, to Pushpin. Neither raises nor waits long: the event is stored already."""
    feed.broadcast(envelope)
    grip.publish(envelope)


def _copy_state(source: IngestionRun, *, into: IngestionRun) -> None:
    for field in source._meta.concrete_fields:
        setattr(into, field.attname, getattr(source, field.attname))


# --- transitions ----------------------------------------------------------------------------

_TRANSITION_MESSAGES: dict[str, str] = {
    RunStatus.INITIALIZING: "A worker picked the run up.",
    RunStatus.INGESTING: "Processing items.",
    RunStatus.FINISHED: "Run finished.",
    RunStatus.ERROR: "Run failed.",
    RunStatus.ABORTED: "Run aborted.",
}


def run_transition(
    run: IngestionRun,
    *,
    to: str,
    expected: Iterable[str] | None = None,
    where: Q | None = None,
    message: str | Callable[[IngestionRun], str] = "",
    error_message: str = "",
    payload: Mapping[str, Any] | None = None,
) -> IngestionRun:
    """Move the run to `to` if, and only if, the lifecycle allows it from the state the row
    is in now. This is the only place a status changes.

    `expected` narrows the states the caller is willing to move from (a worker's "finish"
    only from a running state); `where` adds conditions the row must still meet (the reaper
    checks the heartbeat it judged). A callable `message` is given the row as it was moved
    (read in the same transaction, so its counts are final: no guarded write can add to a
    run once it left the active states). Raises IllegalTransition when the row did not move.
    """
    if to not in TRANSITIONS:
        raise ValueError(f"Unknown run status {to!r}")
    sources = {state for state, targets in TRANSITIONS.items() if to in targets}
    if expected is not None:
        sources &= set(expected)
    now = timezone.now()
    fields: dict[str, Any] = {"status": to}
    if to == RunStatus.INITIALIZING:
        fields["started_at"] = now
        fields["heartbeat_at"] = now
    if to in TERMINAL_STATUSES:
        fields["finished_at"] = now
    if error_message:
        fields["error_message"] = error_message

    with transaction.atomic():
        rows = IngestionRun.objects.filter(pk=run.pk, status__in=sources)
        if where is not None:
            rows = rows.filter(where)
        if rows.update(**fields) != 1:
            current = (
                IngestionRun.objects.filter(pk=run.pk).values_list("status", flat=True).first()
            )
            raise IllegalTransition(run.pk, current, to, terminal=current in TERMINAL_STATUSES)
        if callable(message):
            message = message(IngestionRun.objects.get(pk=run.pk))
        text = message or error_message or _TRANSITION_MESSAGES[to]
        phase = executors.phase(run.kind, to)
        if phase and to != RunStatus.PENDING:
            # The feed says what the run does now, in the words of its badge.
            text = f"{phase}. {text}"
        publish_event(run, type=f"run.{to}", message=text, payload=payload)
        # publish_event refreshed `run`: the outbox event carries its state as moved.
        outbox_run_event(run, to)
    return run
