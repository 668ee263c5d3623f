"""The run's closing summary: written by whichever stage ends the run (the preview, or the
ingest's last chunk)."""

from __future__ import annotations

from ingestion import vocabulary
from ingestion.run_kinds import PREVIEW
from runs.context import RunContext


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
