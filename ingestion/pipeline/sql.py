"""Bulk statements for the pipeline's hot writes, on the current connection and transaction.

Django's PostgreSQL cursor quotes every parameter into the SQL text in Python and turns
psycopg's prepared statements off; for an executemany of 1,000 rows of 2 KB postings that was
most of the write's cost (docs/performance.md). Here the same statements go through a psycopg
server-binding cursor with prepared statements on: parsed and planned once per batch, the
rows sent as parameters in a pipeline."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from django.db import connection
from django.utils import timezone


@contextlib.contextmanager
def bulk_cursor() -> Iterator[Any]:
    """A cursor for executemany/COPY in the current transaction: a psycopg server-binding
    cursor with prepared statements on PostgreSQL, Django's own cursor elsewhere."""
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            yield cursor
            return
        import psycopg

        conn = connection.connection
        threshold = conn.prepare_threshold
        conn.prepare_threshold = 0
        try:
            with psycopg.Cursor(conn) as raw:
                yield raw
        finally:
            conn.prepare_threshold = threshold


def executemany(sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """`sql` (with %s placeholders) once per row, in one round of the pipeline."""
    if rows:
        with bulk_cursor() as cursor:
            cursor.executemany(sql, rows)


_ITEM_COLUMNS = (
    "run_id", "source_id", "job_id", "external_id", "title", "url", "row", "outcome",
    "job_status", "reason", "attempts", "created_at", "updated_at",
)  # fmt: skip


def insert_items(items: list[Any]) -> None:
    """Insert RunItems: one COPY on PostgreSQL (a preview writes an item per posting, and
    bulk_create spent more time building 50,000 items' SQL than the database spent storing
    them); bulk_create elsewhere."""
    from ingestion.models import RunItem

    if connection.vendor != "postgresql":
        RunItem.objects.bulk_create(items)
        return
    now = timezone.now()
    with bulk_cursor() as cursor:
        sql = f"COPY ingestion_runitem ({', '.join(_ITEM_COLUMNS)}) FROM STDIN"
        with cursor.copy(sql) as copy:
            for item in items:
                copy.write_row(
                    (
                        item.run_id,
                        item.source_id,
                        item.job_id,
                        item.external_id,
                        item.title,
                        item.url,
                        item.row,
                        item.outcome,
                        item.job_status,
                        item.reason,
                        item.attempts,
                        now,
                        now,
                    )  # fmt: skip
                )
