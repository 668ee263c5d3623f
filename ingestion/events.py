"""Job changes announced to programs outside Intake, through the runs outbox
(runs.outbox; docs/events.md): one event per committed batch and kind of change, carrying
the batch's job ids, not one per job (an ingest of 10,000 postings writes a few dozen rows,
not tens of thousands). Called inside the transaction that writes the batch."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from runs.outbox import outbox_append

JOB_CREATED = "job.created"
JOB_UPDATED = "job.updated"
JOB_EXPIRED = "job.expired"
JOB_DUPLICATE = "job.duplicate"


def jobs_changed(
    event_type: str,
    *,
    run_id: int,
    job_ids: Collection[int],
    status: str,
    **extra: Any,
) -> None:
    """Record one `event_type` event for these jobs, now all in `status` (nothing when there
    are none)."""
    if not job_ids:
        return
    payload: dict[str, Any] = {"jobIds": sorted(job_ids), "count": len(job_ids), "status": status}
    payload.update(extra)
    outbox_append(event_type=event_type, run_id=run_id, payload=payload)


def duplicates_found(*, run_id: int, originals: Mapping[int, int]) -> None:
    """job.duplicate: these jobs were skipped as near-duplicates of the jobs they map to."""
    jobs_changed(
        JOB_DUPLICATE,
        run_id=run_id,
        job_ids=list(originals),
        status="skipped",
        duplicateOf={str(pk): original for pk, original in sorted(originals.items())},
    )
