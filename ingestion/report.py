"""A run's report: a JSON summary and a CSV of its items. Built from the database when asked,
so it is the same for a finished, failed or aborted run and never goes stale."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from ingestion import selectors
from ingestion.models import RunItem
from runs.models import IngestionRun

CSV_COLUMNS = [
    "item_id",
    "source_id",
    "company",
    "row",
    "external_id",
    "title",
    "url",
    "outcome",
    "job_status",
    "job_id",
    "reason",
]
# A cell a spreadsheet would read as a formula (CSV injection): prefixed with a quote.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


def report_summary(run: IngestionRun) -> dict[str, Any]:
    """The run's snapshot and its outcome counts, overall and per source (camelCase)."""
    return {
        "run": run.snapshot(),
        "config": run.config,
        "outcomes": selectors.outcome_counts(run),
        "sources": run.summary.get("sources", []),
        "durationSeconds": run.duration_seconds,
    }


def safe_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_STARTS):
        return "'" + text
    return text


def report_csv_lines(run: IngestionRun) -> Iterator[str]:
    """The CSV of the run's items, a line at a time (a 50,000-item run is streamed)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(CSV_COLUMNS)
    yield flush()
    items = (
        RunItem.objects.filter(run=run)
        .select_related("source")
        .order_by("id")
        .values_list(
            "id",
            "source_id",
            "source__company",
            "row",
            "external_id",
            "title",
            "url",
            "outcome",
            "job_status",
            "job_id",
            "reason",
        )
    )
    for row in items.iterator(chunk_size=2000):
        writer.writerow([safe_cell(v) for v in row])
        yield flush()
