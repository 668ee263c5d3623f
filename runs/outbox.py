"""The transactional outbox: events for programs outside Intake (docs/events.md).

A change and the event that announces it are written in one transaction: `outbox_append`
adds a row in the caller's transaction, so a change that rolls back takes its event with it,
and a committed change always has one. The relay (runs.relay, `manage.py relay_events`)
publishes the rows to the Redis Stream afterwards, outside the request and the worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runs.models import IngestionRun, OutboxEvent

# Bumped when an event type's payload changes incompatibly; consumers read eventVersion.
EVENT_VERSION = 1

# The run lifecycle's events, by the status a transition moves a run to (runs.services):
# `ingesting` is a phase of a started run, not an event of its own for other programs.
RUN_EVENTS = {
    "pending": "run.requested",
    "initializing": "run.started",
    "finished": "run.finished",
    "error": "run.failed",
    "aborted": "run.aborted",
}


def outbox_append(
    *,
    event_type: str,
    payload: Mapping[str, Any],
    run_id: int | None = None,
    version: int = EVENT_VERSION,
) -> OutboxEvent:
    """Record an event to be published, in the caller's transaction (call it inside the
    `transaction.atomic()` that makes the change)."""
    return OutboxEvent.objects.create(
        event_type=event_type, event_version=version, run_id=run_id, payload=dict(payload)
    )


def outbox_run_event(run: IngestionRun, status: str) -> OutboxEvent | None:
    """The lifecycle event of a run that has just moved to `status` (its fields as of this
    transaction), if that status has one."""
    event_type = RUN_EVENTS.get(status)
    if event_type is None:
        return None
    return outbox_append(
        event_type=event_type,
        run_id=run.pk,
        payload={"run": run.snapshot(), "ownerId": run.owner_id},
    )
