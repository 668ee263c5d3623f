"""The run's summary: each source's outcome as its listing ends and how far the sources being
listed have come (written under the run row's lock: groups of sources listed at the same time
each write theirs), and the closing summary event, published by whichever stage ends the run
(the preview, or the ingest's last chunk)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from django.db import transaction

from ingestion import vocabulary
from ingestion.pipeline.outcome import SourceOutcome
from ingestion.run_kinds import PREVIEW
from runs import services
from runs.context import RunContext
from runs.models import IngestionRun

# How often, at most, a listing records how far it has come (its row on the run's page).
LISTING_MARK_INTERVAL = 1.0


def publish_summary(ctx: RunContext) -> None:
    """The final summary event (the run's counts), just before the run finishes."""
    run = ctx.run
    run.refresh_from_db()
    counts = run.counts()
    outcomes = vocabulary.outcome_counts(run)
    if run.kind == PREVIEW:
        text = f"Preview: {vocabulary.outcomes_text(outcomes)}. Nothing was written to your jobs."
    else:
        text = f"{vocabulary.outcomes_text(outcomes)}. Jobs: {vocabulary.jobs_text(counts)}."
    ctx.event(
        "run.summary",
        text,
        {"counts": counts, "outcomes": outcomes, "sources": run.summary.get("sources", [])},
    )


def _update_summary(ctx: RunContext, change: Callable[[dict[str, Any]], None]) -> None:
    """Change the run's summary under its row's lock: the groups of a run's sources listed
    at the same time each write theirs into it."""
    run = ctx.run
    with transaction.atomic():
        current = (
            IngestionRun.objects.select_for_update()
            .filter(pk=run.pk)
            .values_list("summary", flat=True)
            .first()
        )
        summary = dict(current or {})
        change(summary)
        services.run_set_summary(run, summary)


def record_outcome(ctx: RunContext, outcome: SourceOutcome, *, order: list[Any]) -> None:
    """A source's listing ended: its outcome joins the summary's, in the run's order
    (`order`: the run's source ids), and it is no longer being listed."""
    _update_summary(ctx, functools.partial(_listed, outcome=outcome, order=order))


def _listed(summary: dict[str, Any], *, outcome: SourceOutcome, order: list[Any]) -> None:
    done = [s for s in summary.get("sources", []) if s.get("sourceId") != outcome.source_id]
    done.append(outcome.as_dict())
    position = {source_id: at for at, source_id in enumerate(order)}
    done.sort(key=lambda s: position.get(s.get("sourceId"), len(order)))
    summary["sources"] = done
    listing = dict(summary.get("listing") or {})
    listing.pop(str(outcome.source_id), None)
    summary["listing"] = listing


class ListingMarks:
    """Records in the run's summary how many postings a source being listed has read
    (`listing`: {source id: postings}, ingestion.vocabulary.listing_rows): when it starts,
    then after a batch at most every LISTING_MARK_INTERVAL seconds."""

    def __init__(self, ctx: RunContext, source_id: int) -> None:
        self.ctx = ctx
        self.key = str(source_id)
        self._last = -LISTING_MARK_INTERVAL

    def listed(self, outcome: SourceOutcome) -> None:
        now = time.monotonic()
        if now - self._last >= LISTING_MARK_INTERVAL:
            self._last = now
            self.mark(outcome.listed)

    def mark(self, listed: int) -> None:
        def change(summary: dict[str, Any]) -> None:
            summary["listing"] = {**(summary.get("listing") or {}), self.key: listed}

        _update_summary(self.ctx, change)
