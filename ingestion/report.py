"""A run's report: a JSON summary and a CSV of its items. Built from the database when asked,
so it is the same for a finished, failed or aborted run and never goes stale."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterator
from typing import Any

from asgiref.sync import sync_to_async

from ingestion import run_kinds, selectors, vocabulary
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
# The CSV reads the run's items this many at a time: the memory a download holds, whatever the
# run's size.
CSV_BLOCK_ROWS = 2000
# A cell a spreadsheet would read as a formula (CSV injection): prefixed with a quote.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


def report_summary(run: IngestionRun) -> dict[str, Any]:
    """The run's snapshot and its outcome counts, overall and per source (camelCase)."""
    return {
        "run": run.snapshot(),
        "config": run.config,
        "outcomes": selectors.outcome_counts(run),
        # An ingest's jobs per status the ingesting stage decided (ready, skipped, error).
        "jobs": vocabulary.job_counts(run) if run.kind == run_kinds.INGEST else None,
        "sources": run.summary.get("sources", []),
        "durationSeconds": run.duration_seconds,
    }


def safe_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_STARTS):
        return "'" + text
    return text


def _item_block(run_id: int, after_id: int, limit: int) -> list[tuple[Any, ...]]:
    """The run's items after `after_id`, in id order, `limit` of them (keyset paging: each
    block is one indexed query, so nothing is held open between blocks)."""
    return list(
        RunItem.objects.filter(run_id=run_id, id__gt=after_id)
        .order_by("id")
        .values_list("id", "source_id", "source__company", *CSV_COLUMNS[3:])[:limit]
    )


def report_csv_blocks(run: IngestionRun, *, block_rows: int = CSV_BLOCK_ROWS) -> Iterator[str]:
    """The CSV of the run's items, a block of lines at a time, in bounded memory."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(CSV_COLUMNS)
    yield flush()
    after = 0
    while True:
        rows = _item_block(run.pk, after, block_rows)
        for row in rows:
            writer.writerow([safe_cell(v) for v in row])
        if rows:
            after = rows[-1][0]
            yield flush()
        if len(rows) < block_rows:
            return


async def report_csv_stream(
    run: IngestionRun, *, block_rows: int = CSV_BLOCK_ROWS
) -> AsyncIterator[str]:
    """`report_csv_blocks` as an async iterator, for a StreamingHttpResponse under ASGI: each
    block is read in Django's sync thread, so the event loop is never blocked and the
    response is streamed rather than gathered whole (what Django does with a sync iterator
    under ASGI)."""
    blocks = report_csv_blocks(run, block_rows=block_rows)

    def step() -> str | None:
        return next(blocks, None)

    read = sync_to_async(step)
    while (text := await read()) is not None:
        yield text
