"""The run's closing summary: written by whichever stage ends the run (the preview, or the
ingest's last chunk)."""

from __future__ import annotations

from ingestion.run_kinds import PREVIEW
from runs.context import RunContext


def publish_summary(ctx: RunContext) -> None:
    """The final summary event (the run's counts), just before the run finishes."""
    run = ctx.run
    run.refresh_from_db()
    counts = run.counts()
    if run.kind == PREVIEW:
        text = (
            f"Preview: {counts['new']:,} new, {counts['updated']:,} updated, "
            f"{counts['expired']:,} would expire, {counts['skipped']:,} duplicate or filtered, "
            f"{counts['failed']:,} invalid or failed. Nothing was written to your jobs."
        )
    else:
        text = (
            f"{counts['new']:,} new, {counts['updated']:,} updated, {counts['ready']:,} ready, "
            f"{counts['skipped']:,} skipped, {counts['expired']:,} expired, "
            f"{counts['failed']:,} failed."
        )
    ctx.event("run.summary", text, {"counts": counts, "sources": run.summary.get("sources", [])})
