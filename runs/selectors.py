"""Reads of runs for views and commands. (The owner's active run is asked of
runs.services.run_active_for_owner: it ends a stale one rather than report it.)"""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db.models import QuerySet

from runs.models import IngestionRun


def runs_for_owner(
    owner: User, *, status: str | None = None, kind: str | None = None
) -> QuerySet[IngestionRun]:
    runs = IngestionRun.objects.filter(owner=owner).order_by("-created_at", "-id")
    if status:
        runs = runs.filter(status=status)
    if kind:
        runs = runs.filter(kind=kind)
    return runs
