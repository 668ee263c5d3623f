"""A source's health: what its last listing did, and pausing a source that keeps failing.

A schedule reads its boards every few hours with nobody watching: a board that is gone (a
company moved off Greenhouse, a token mistyped) would fail every time, for ever, each time
spending the owner's quota. After INTAKE_SOURCE_PAUSE_AFTER failed listings in a row the
source is paused: disabled (schedules and the default selection leave it out) with the reason
kept on the row, shown on Configure and in the admin, until its user enables it again
(services.source_update forgives its failures then)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from ingestion.models import Source


def source_record_listing(source: Source, *, error: str, listed: int | None) -> str:
    """Record one listing of `source` by a run: when, whether it failed and why, how many
    postings it listed when it was complete (`listed`, else None). A failure adds one to its
    failures in a row, a success resets them. Returns the reason when this listing paused
    the source, else ""."""
    now = timezone.now()
    fields: dict[str, Any] = {
        "last_fetched_at": now,
        "last_fetch_ok": not error,
        "last_fetch_error": error,
        # F(): two runs of one owner never overlap, but an admin may edit the row meanwhile.
        "failures_in_row": F("failures_in_row") + 1 if error else 0,
    }
    if listed is not None:
        fields["last_listed_count"] = listed
    # update(), not save(): the source's own settings may be edited while the run goes on.
    Source.objects.filter(pk=source.pk).update(**fields)
    failures = Source.objects.filter(pk=source.pk).values_list("failures_in_row", flat=True)
    fields["failures_in_row"] = failures.first() or 0
    for key, value in fields.items():
        setattr(source, key, value)
    limit = settings.INTAKE_SOURCE_PAUSE_AFTER
    if not error or not limit or source.failures_in_row < limit:
        return ""
    reason = (
        f"its listing failed {source.failures_in_row} times in a row (last: "
        f"{error.strip().rstrip('.')})."
    )
    # Conditional: only an enabled source is paused, once, whoever else writes the row.
    paused = Source.objects.filter(pk=source.pk, enabled=True, failures_in_row__gte=limit).update(
        enabled=False, paused_at=now, paused_reason=reason
    )
    if paused != 1:
        return ""
    source.enabled, source.paused_at, source.paused_reason = False, now, reason
    return reason
